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


def test_html_and_json_reports_carry_the_ci_context_too():
    import json

    from dtf_core.reporting.html import render_html
    from dtf_core.reporting.jsonout import render_json

    ci = ci_context(
        {
            "GITLAB_CI": "true", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "fix<it>",
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main", "CI_MERGE_REQUEST_IID": "3",
            "CI_COMMIT_SHA": "0123456789abcdef", "CI_JOB_URL": "https://gl.example/j/5",
        }
    )  # fmt: skip
    html = render_html(_summary({"ci": ci}))
    assert (
        "<p class='muted'>gitlab: branch <code>fix&lt;it&gt;</code> -&gt; <code>main</code>, "
        "MR !3, commit <code>0123456789ab</code>, <a href='https://gl.example/j/5'>job</a></p>"
    ) in html
    assert json.loads(render_json(_summary({"ci": ci})))["metadata"]["ci"]["pr"] == "3"
    assert "gitlab" not in render_html(_summary({}))
