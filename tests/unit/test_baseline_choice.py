"""The baseline rule, table-style: which run a run is compared with, and the reason given."""

from __future__ import annotations

import pytest

from dtf_core.analysis.baseline import AUTO, BaselineSpec, choose, parse
from dtf_core.errors import OptionError
from dtf_core.reporting.render import baseline_line


def cand(run_id: str, branch: str | None, t: float) -> dict:
    return {"run_id": run_id, "branch": branch, "started_at": t, "status": "passed",
            "commit": f"c-{run_id}"}  # fmt: skip


CANDIDATES = [cand("m1", "main", 10.0), cand("r1", "release", 20.0), cand("f1", "feat", 30.0),
              cand("n1", None, 40.0)]  # fmt: skip


def run(branch=None, target=None, default=None) -> dict:
    return {"run_id": "me", "suite": "s", "started_at": 100.0, "branch": branch,
            "target_branch": target, "default_branch": default}  # fmt: skip


CASES = [
    # (run, spec, chosen, reason)
    (run("feat", "release", "main"), AUTO, "r1", "latest passed on target branch release"),
    (run("feat", "nowhere", "main"), AUTO, "m1", "latest passed on default branch main"),
    (run("feat", None, "gone"), AUTO, "f1", "latest passed on the run's own branch feat"),
    (run("main", None, "main"), AUTO, "m1", "latest passed on default branch main"),
    (run(None), AUTO, "n1", "latest passed on runs with no branch recorded, like this one"),
    (run("feat", "release"), BaselineSpec("branch", "main"), "m1",
     "latest passed on branch main, as --baseline asked"),
    (run("feat", "release"), BaselineSpec("latest"), "n1",
     "latest passed on any branch, as --baseline latest asked"),
]  # fmt: skip


@pytest.mark.parametrize(("me", "spec", "chosen", "reason"), CASES)
def test_choose(me, spec, chosen, reason):
    got = choose(me, CANDIDATES, spec)
    assert (got.run_id, got.reason) == (chosen, reason)
    assert got.commit == f"c-{chosen}"
    assert got.spec == str(spec)


def test_nothing_to_choose_says_where_it_looked():
    got = choose(run("feat", "release", "main"), [cand("x", "other", 1.0)])
    assert got.run_id is None
    assert got.reason == (
        "no earlier passed run of suite s on the same hardware (target branch release, "
        "default branch main, the run's own branch feat)"
    )
    assert choose(run("feat"), [], BaselineSpec("branch", "main")).reason.endswith("on branch main")
    assert choose(run("feat"), [], BaselineSpec("latest")).run_id is None


def test_newest_per_branch_wins_whatever_the_order():
    older, newer = cand("m0", "main", 5.0), cand("m2", "main", 50.0)
    assert choose(run("main"), [older, newer]).run_id == "m2"
    assert choose(run("main"), [newer, older]).run_id == "m2"


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        (None, AUTO),
        ("auto", AUTO),
        ("latest", BaselineSpec("latest")),
        ("branch:main", BaselineSpec("branch", "main")),
        ("branch:feature/x", BaselineSpec("branch", "feature/x")),
        ("run:20261130-101500-abc123", BaselineSpec("run", "20261130-101500-abc123")),
        ("r41", BaselineSpec("run", "r41")),  # a bare id: the old spelling
    ],
)
def test_parse(text, spec):
    assert parse(text) == spec


@pytest.mark.parametrize("text", ["", "branch:", "run:", "tag:v1", "branch:a b", "lat est"])
def test_parse_refuses_in_one_line(text):
    with pytest.raises(OptionError) as info:
        parse(text)
    assert "branch:NAME, run:ID or latest" in str(info.value)
    assert "\n" not in str(info.value)


def test_the_sentence():
    chosen = choose(run("feat", "main"), [cand("41", "main", 1796000000.0)])
    assert baseline_line(chosen.to_dict()) == (
        "baseline: run 41 (main, 2026-11-30, latest passed on target branch main)"
    )
    none = choose(run("feat"), [])
    assert baseline_line(none.to_dict()).startswith("baseline: none (no earlier passed run")
