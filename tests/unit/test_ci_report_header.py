"""The Markdown report (the GitHub step summary) says which CI job, branch and PR ran."""

from __future__ import annotations

from dtf_core.context import ci_context
from dtf_core.reporting.counts import COUNT_KEYS
from dtf_core.reporting.markdown import render_markdown


def _summary(metadata):
    return {
        "run_id": "r1", "suite": "s", "status": "passed", "started_at": 0.0,
        "duration_s": 1.0, "counts": {**dict.fromkeys(COUNT_KEYS, 0), "tasks": {}},
        "failures": [], "flaky": [], "slowest": [], "benchmarks": [], "workers": [],
        "metadata": metadata,
    }  # fmt: skip


def test_header_names_the_pull_request():
    ci = ci_context(
        {
            "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_REF": "refs/pull/7/merge", "GITHUB_HEAD_REF": "fix-it",
            "GITHUB_BASE_REF": "main", "GITHUB_SHA": "0123456789abcdef",
            "GITHUB_REPOSITORY": "acme/calc", "GITHUB_RUN_ID": "99",
        }
    )  # fmt: skip
    md = render_markdown(_summary({"ci": ci}))
    line = "github: branch `fix-it` -> `main`, PR #7, commit `0123456789ab`, " + (
        "[job](https://github.com/acme/calc/actions/runs/99)"
    )
    assert md.split("## Counts")[0].splitlines()[4] == line


def test_no_ci_no_line():
    head = render_markdown(_summary({})).split("## Counts")[0]
    assert head == render_markdown({**_summary({}), "metadata": None}).split("## Counts")[0]
    assert "branch" not in head
