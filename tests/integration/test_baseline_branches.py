"""Baselines that follow branches, in a real DuckDB file written by the real writer, and
the CLI that uses them as a user (or a CI job) runs it: real subprocesses, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from support.factories import task_spec

from dtf_core import model
from dtf_core.analysis import baseline
from dtf_core.analysis.baseline import BaselineSpec
from dtf_core.store import MIGRATIONS, Store, StoreReader

T0 = 1_796_000_000.0  # 2026-11-30 00:53 UTC
HW_A, HW_B = "x86_64 EPYC 2 cores", "arm64 Graviton 4 cores"
SUITE = "bench"


def add_run(s: Store, run_id: str, t: float, *, branch: str | None, hw: str = HW_A,
            status: str = "passed", scale: float = 1.0, target: str | None = None,
            default: str | None = None, seed: int = 0) -> None:  # fmt: skip
    """One run of a one-benchmark suite, as the coordinator writes it."""
    meta = {"commit": f"{run_id:0<12}", "branch": branch, "target_branch": target,
            "default_branch": default}  # fmt: skip
    s.create_run(run_id, SUITE, "/s/bench.toml", {k: v for k, v in meta.items() if v}, t)
    spec = task_spec("mm[n=64]", "benchmark", "mm", params={"n": 64}, function="b:mm")
    s.add_tasks(run_id, [spec])
    values = scale * np.random.default_rng(seed).lognormal(0.0, 0.01, 20)
    s.add_attempt(
        model.AttemptResult(run_id=run_id, task_id=spec.task_id, attempt=1, outcome="passed",
                            hardware=hw, samples=[float(v) for v in values], started_at=t)
    )  # fmt: skip
    s.finish_task(run_id, model.TaskFinal(spec.task_id, "passed", attempts=1))
    s.flush()
    s.finish_run(run_id, status, t + 1)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("baseline") / "dtf.duckdb"
    with Store(path) as s:
        add_run(s, "m1", T0 + 100, branch="main", seed=1)
        add_run(s, "m2", T0 + 200, branch="main", hw=HW_B, seed=2)
        add_run(s, "m3", T0 + 300, branch="main", seed=3)
        add_run(s, "r1", T0 + 350, branch="release", seed=4)
        add_run(s, "m4", T0 + 390, branch="main", status="failed", seed=5)  # not a baseline
        add_run(s, "f1", T0 + 450, branch="feat", seed=6)
        add_run(s, "m5", T0 + 480, branch="main", hw=HW_B, seed=7)  # other hardware
        # the pull request's run, 10 % slower than everything before it
        add_run(s, "pr", T0 + 500, branch="feat", target="main", default="main", scale=1.1,
                seed=8)  # fmt: skip
        add_run(s, "pr-rel", T0 + 510, branch="feat", target="release", default="main", seed=9)
        add_run(s, "lone", T0 + 520, branch="feat", target="gone", default="gone", seed=10)
        add_run(s, "nogit", T0 + 530, branch=None, seed=11)
        add_run(s, "nogit2", T0 + 540, branch=None, seed=12)
    return path


@pytest.mark.parametrize(
    ("run", "spec", "chosen", "reason"),
    [
        ("pr", None, "m3", "latest passed on target branch main"),
        ("pr-rel", None, "r1", "latest passed on target branch release"),
        ("lone", None, "pr-rel", "latest passed on the run's own branch feat"),
        ("nogit2", None, "nogit", "latest passed on runs with no branch recorded, like this one"),
        ("nogit", None, None, None),
        ("pr", "branch:release", "r1", "latest passed on branch release, as --baseline asked"),
        ("pr", "latest", "f1", "latest passed on any branch, as --baseline latest asked"),
        ("pr", "run:m2", "m2", "given with --baseline"),
    ],
)
def test_selection_on_a_real_file(db, run, spec, chosen, reason):
    with StoreReader(db) as s:
        got = baseline.select(s, run, baseline.parse(spec))
    assert got.run_id == chosen
    if reason:
        assert got.reason == reason
    if chosen == "m3":
        assert (got.branch, got.commit) == ("main", "m30000000000")


def test_candidates_are_the_newest_passed_per_branch_on_the_same_hardware(db):
    with StoreReader(db) as s:
        got = s.baseline_candidates("pr")
        row = s.run_branches("pr")
    assert [(c["run_id"], c["branch"]) for c in got] == [
        ("f1", "feat"),
        ("r1", "release"),
        ("m3", "main"),
    ]  # fmt: skip: m4 failed, m2/m5 ran on other hardware, later runs are later
    assert (row["branch"], row["target_branch"], row["default_branch"]) == ("feat", "main", "main")


def test_branches_of_older_files_come_from_their_metadata(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at DOUBLE)")
    for v, sql in enumerate(MIGRATIONS[:4], start=1):
        con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?, 0)", [v])
    meta = {"branch": "fix", "ci": {"provider": "github", "target_branch": "main"}}
    con.execute("INSERT INTO runs VALUES ('old', 's', NULL, 'passed', 1, 2, ?)", [json.dumps(meta)])
    con.close()
    with Store(path) as s:
        assert s.schema_version() == len(MIGRATIONS)
        row = s.run_branches("old")
    assert row is not None
    assert (row["branch"], row["target_branch"], row["default_branch"]) == ("fix", "main", None)


def cli(*argv: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-m", "dtf_core.cli", *argv], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, env=env)  # fmt: skip


@pytest.mark.timeout(300)
def test_compare_report_and_bad_baselines_as_a_user_runs_them(db, tmp_path):
    d = str(db)
    res = cli("compare", "--db", d, "--run", "pr", "--format", "json", "--fail-on-regression",
              cwd=tmp_path)  # fmt: skip
    assert res.returncode == 1, res.stderr
    lines = res.stderr.splitlines()
    assert lines[0] == "baseline: run m3 (main, 2026-11-30, latest passed on target branch main)"
    assert lines[1].startswith("regression: mm[n=64] on x86_64 EPYC 2 cores +10.")
    assert lines[1].endswith("vs baseline run m3 in m30000000000..pr0000000000")
    doc = json.loads(res.stdout)
    assert doc["baseline"] == "m3" and doc["counts"]["regressed"] == 1

    # --branch picks the latest run on it; the filters narrow what can fail the gate
    res = cli("compare", "--db", d, "--branch", "feat", "--benchmark", "other*",
              "--fail-on-regression", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "Compare `lone` with baseline `pr-rel`" in res.stdout

    res = cli("report", "--db", d, "--run", "pr", "--baseline", "branch:release", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "## Compared with `r1`" in res.stdout
    assert "baseline: run r1 (release, 2026-11-30, latest passed on branch release, as" in (
        res.stdout
    )
    assert "no tunable settings" in res.stdout  # mm declares no `tune`

    for bad in ("tag:v1", "branch:", "run: x"):
        res = cli("compare", "--db", d, "--baseline", bad, cwd=tmp_path)
        assert res.returncode == 2, (bad, res.stderr)
        assert res.stderr.count("\n") == 1 and "branch:NAME, run:ID or latest" in res.stderr
        assert "Traceback" not in res.stderr
    suite = Path(__file__).resolve().parents[2] / "configs/examples/quickstart.toml"
    res = cli("run", str(suite), "--db", "never.duckdb", "--baseline", "tag:x", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert not (tmp_path / "never.duckdb").exists()  # refused before anything started
    res = cli("report", "--db", d, "--baseline", "run:nope", cwd=tmp_path)
    assert res.returncode == 2 and "no run 'nope'" in res.stderr and res.stdout == ""
    res = cli("compare", "--db", d, "--run", "nogit", cwd=tmp_path)  # nothing to compare with
    assert res.returncode == 0
    assert res.stderr.startswith("baseline: none (no earlier passed run of suite bench")


def test_summary_names_the_baseline_it_used(db):
    from dtf_core import reporting

    with StoreReader(db) as s:
        auto = reporting.build_summary(s, "pr")["analysis"]
        rel = reporting.build_summary(s, "pr", BaselineSpec("branch", "release"))["analysis"]
        html = reporting.render_html(reporting.build_summary(s, "nogit"))
    assert auto["baseline"] == "m3" and auto["comparison"]["counts"]["regressed"] == 1
    assert rel["baseline_choice"]["reason"].startswith("latest passed on branch release")
    assert "baseline: none (no earlier passed run" in html
