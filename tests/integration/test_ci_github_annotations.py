"""A failing assertion in a real pytest run becomes a GitHub ``::error`` at its file and line,
in a simulated pull-request job: from the traceback as dtf stores it (JUnit XML text parsed by
dtf_core.testing.junitxml into ``details``), and end to end, `dtf-core test` in a subprocess
with the environment GitHub Actions sets for a pull request."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest

from dtf_core.context import ci_context
from dtf_core.reporting import ci
from dtf_core.store import StoreReader
from dtf_core.testing.junitxml import parse_junit

SUITE = """\
def helper(x):
    return x * 2


def test_ok():
    assert helper(1) == 2


def test_bad():
    value = helper(2)
    assert value == 5, "helper doubled wrongly"
"""


def test_pull_request_job_gets_an_error_annotation_at_the_failing_assertion(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_math.py").write_text(SUITE)
    xml = tmp_path / "junit.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = [r for r in parse_junit(xml) if r.outcome == "failed"]
    assert [r.nodeid for r in failed] == ["tests/test_math.py::test_bad"]
    summary = {
        "run_id": "r-42",
        "status": "failed",
        "failures": [
            {
                "task_id": "t1",
                "nodeid": r.nodeid,
                "outcome": r.outcome,
                "category": "test-failure",
                "message": r.message,
                "details": r.details,
                "worker": "w1",
            }
            for r in failed
        ],
    }
    outputs = tmp_path / "github_output"
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_REF": "refs/pull/7/merge",
        "GITHUB_REF_NAME": "7/merge",
        "GITHUB_HEAD_REF": "fix-math",
        "GITHUB_BASE_REF": "main",
        "GITHUB_SHA": "a" * 40,
        "GITHUB_REPOSITORY": "acme/calc",
        "GITHUB_RUN_ID": "99",
        "GITHUB_OUTPUT": str(outputs),
    }
    assert ci_context(env)["branch"] == "fix-math"
    out = io.StringIO()
    assert ci.emit_github(summary, env, out, root=str(tmp_path))
    (line,) = out.getvalue().splitlines()
    assert line.startswith(
        "::error file=tests/test_math.py,line=11,title=tests/test_math.py%3A%3Atest_bad::"
    ), line
    assert "helper doubled wrongly" in line
    assert outputs.read_text() == "run-id=r-42\nstatus=failed\nexit-code=1\nregressions=0\n"


def test_outside_github_actions_nothing_is_printed(tmp_path):
    out = io.StringIO()
    summary = {"run_id": "r", "status": "failed", "failures": [{"nodeid": "a.py::t"}]}
    assert not ci.emit_github(summary, {"GITLAB_CI": "true"}, out)
    assert out.getvalue() == ""


SHA = "0123456789abcdef0123456789abcdef01234567"


def pull_request_env(tmp_path):
    """What GitHub Actions sets for a `pull_request` job (PR #7, fix-math into main)."""
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": 7, "pull_request": {
        "number": 7, "head": {"ref": "fix-math", "sha": SHA}, "base": {"ref": "main"}}}))  # fmt: skip
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "GITLAB", "CI_", "JENKINS", "BUILD_"))
           and k not in ("CI", "BRANCH_NAME", "CHANGE_ID")}  # fmt: skip
    return {
        **env, "PYTHONUNBUFFERED": "1", "CI": "true", "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REF": "refs/pull/7/merge", "GITHUB_REF_NAME": "7/merge",
        "GITHUB_HEAD_REF": "fix-math", "GITHUB_BASE_REF": "main", "GITHUB_SHA": SHA,
        "GITHUB_REPOSITORY": "acme/calc", "GITHUB_RUN_ID": "99",
        "GITHUB_SERVER_URL": "https://github.com", "GITHUB_WORKSPACE": str(tmp_path),
        "GITHUB_OUTPUT": str(tmp_path / "github_output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "step_summary.md"),
    }  # fmt: skip


@pytest.mark.timeout(300)
def test_dtf_core_test_in_a_pull_request_job(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_math.py").write_text(SUITE)
    (tmp_path / "reports").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "dtf_core.cli", "test", "tests", "--db", "h.duckdb",
         "--workers", "1", "--pr-comment", "reports/pr.md"],
        cwd=tmp_path, env=pull_request_env(tmp_path), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stdout.splitlines() if ln.startswith("::error")]
    # Line 11 is `assert value == 5, ...` in SUITE: the failing assertion, not the `def`.
    assert errors == [
        "::error file=tests/test_math.py,line=11,title=tests/test_math.py%3A%3Atest_bad::"
        + errors[0].split("::", 2)[2]
    ], proc.stdout
    assert "helper doubled wrongly" in errors[0]

    summary = (tmp_path / "step_summary.md").read_text()
    assert "tests/test_math.py::test_bad" in summary
    assert "github: branch `fix-math` -> `main`, PR #7, commit `0123456789ab`" in summary

    outputs = dict(
        line.split("=", 1) for line in (tmp_path / "github_output").read_text().splitlines()
    )
    assert outputs["status"] == "failed" and outputs["exit-code"] == "1"
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", outputs["run-id"]), outputs

    with StoreReader(tmp_path / "h.duckdb") as store:
        meta = store.get_run(outputs["run-id"])["metadata"]
    assert (meta["branch"], meta["commit"]) == ("fix-math", SHA)  # not 7/merge, not git's HEAD
    assert meta["ci"]["pr"] == "7" and meta["ci"]["target_branch"] == "main"

    comment = (tmp_path / "reports" / "pr.md").read_text()
    assert "1 passed, 1 failed" in comment
    assert "| `tests/test_math.py::test_bad` |" in comment and "helper doubled wrongly" in comment
