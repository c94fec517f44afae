"""The headless progress view: plain lines for logs, a bar on a terminal."""

from __future__ import annotations

import io

from dtf_core.events import (
    AttemptFailed,
    ClusterChanged,
    RunFinished,
    RunStarted,
    TaskFinished,
    TestsProgress,
)
from dtf_core.run.progress import ProgressView


def _events() -> list:
    return [
        RunStarted("r1", "demo", 2),
        TestsProgress("r1", "pytest-1", {"passed": 3, "failed": 1}),
        AttemptFailed("r1", "cmd", 1, "worker-lost", "worker died", "dtf-0", retry_in=0.4),
        ClusterChanged("r1", "scheduler-lost", "lost the connection to the scheduler"),
        TaskFinished(
            "r1",
            "pytest-1",
            "failed",
            "test-failure",
            "1 test(s) failed, first: t.py::x",
            1.5,
            "dtf-1",
            False,
            1,
            2,
            eta_s=3.0,
        ),
        TaskFinished("r1", "cmd", "passed", None, "", 0.2, "dtf-0", True, 2, 2),
        RunFinished("r1", "failed", {"failed": 1, "passed": 1}, 2.0),
    ]


def test_plain_lines_for_logs() -> None:
    out = io.StringIO()
    with ProgressView(out, live=False) as view:
        for e in _events():
            view(e)
    text = out.getvalue()
    assert "run r1: suite 'demo', 2 task(s)" in text
    assert "tests so far: 3 passed, 1 failed" in text
    assert "retry  cmd attempt 1 failed (worker-lost): worker died; again in 0.4s" in text
    assert "cluster: lost the connection to the scheduler" in text
    assert "[1/2] failed        pytest-1 (1.50s on dtf-1) [ETA 3s]: 1 test(s) failed" in text
    assert "[2/2] passed        cmd (0.20s on dtf-0) flaky" in text
    assert "run r1 FAILED in 2.0s: 1 failed, 1 passed" in text
    assert "\x1b[" not in text  # no terminal escapes in a log


def test_live_bar_prints_only_what_needs_attention() -> None:
    out = io.StringIO()
    with ProgressView(out, live=True) as view:
        for e in _events():
            view(e)
    text = out.getvalue()
    assert "pytest-1" in text and "1 test(s) failed" in text
    assert "run r1 FAILED" in text
