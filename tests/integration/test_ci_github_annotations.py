"""A failing assertion in a real pytest run becomes a GitHub ``::error`` at its file and line,
in a simulated pull-request job (the traceback travels the way dtf stores it: JUnit XML text
parsed by dtf_core.testing.junitxml into ``details``)."""

from __future__ import annotations

import io
import subprocess
import sys

from dtf_core.context import ci_context
from dtf_core.reporting import ci
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
    assert outputs.read_text() == "run-id=r-42\nstatus=failed\n"


def test_outside_github_actions_nothing_is_printed(tmp_path):
    out = io.StringIO()
    summary = {"run_id": "r", "status": "failed", "failures": [{"nodeid": "a.py::t"}]}
    assert not ci.emit_github(summary, {"GITLAB_CI": "true"}, out)
    assert out.getvalue() == ""
