"""The pytest-shaped end of a run (`reporting.terminal`), table-style from summary dicts."""

from __future__ import annotations

import pytest

from dtf_core.reporting.terminal import counts_line, short_summary

FAIL = {"nodeid": "tests/test_a.py::test_x[1]", "outcome": "failed", "task_id": "pytest-1",
        "message": "AssertionError: boom\nassert 1 == 2", "details": "def test_x():\n>  assert 1 == 2\nE  assert 1 == 2"}  # fmt: skip
ERR = {"nodeid": "tests/test_b.py::test_y", "outcome": "error", "task_id": "pytest-2",
       "message": "RuntimeError: setup broke", "details": "fixture broke"}  # fmt: skip
TASK = {
    "nodeid": None,
    "task_id": "bench[n=1]",
    "category": "timeout",
    "message": "timed out after 5s",
}


@pytest.mark.parametrize(
    ("counts", "line"),
    [
        ({"passed": 50, "failed": 1}, "1 failed, 50 passed"),
        ({"errors": 2, "passed": 1}, "1 passed, 2 errors"),
        ({"errors": 1}, "1 error"),
        ({"timeouts": 1, "cancelled": 3}, "1 timed out, 3 cancelled"),
        ({}, "no tests ran"),
    ],
)
def test_counts_line_uses_pytest_words_and_order(counts: dict, line: str) -> None:
    assert counts_line(counts) == line


def test_failed_and_error_lines_with_first_line_of_message() -> None:
    text = short_summary({"failures": [FAIL, ERR, TASK], "counts": {"failed": 2, "errors": 1},
                          "duration_s": 1.5}, width=80)  # fmt: skip
    lines = text.splitlines()
    assert "FAILED tests/test_a.py::test_x[1] - AssertionError: boom" in lines
    assert "ERROR tests/test_b.py::test_y - RuntimeError: setup broke" in lines
    assert "FAILED bench[n=1] - timed out after 5s" in lines
    assert "short test summary info" in text and "FAILURES" in text
    assert "E  assert 1 == 2" in text  # the traceback of the first failure
    assert lines[-1].strip("= ") == "2 failed, 1 error in 1.50s"


@pytest.mark.parametrize("tb", ["no", "line"])
def test_tb_no_prints_no_tracebacks(tb: str) -> None:
    text = short_summary({"failures": [FAIL], "counts": {"failed": 1}}, tb=tb)
    assert "FAILURES" not in text and "E  assert" not in text
    assert "FAILED tests/test_a.py::test_x[1] - AssertionError: boom" in text


def test_only_the_first_few_tracebacks() -> None:
    many = [dict(FAIL, nodeid=f"t.py::test_{i}", details=f"tb {i}") for i in range(5)]
    text = short_summary({"failures": many, "counts": {"failed": 5}}, limit=2)
    assert "tb 0" in text and "tb 1" in text and "tb 2" not in text
    assert "3 more failure(s)" in text
    assert sum(ln.startswith("FAILED ") for ln in text.splitlines()) == 5


def test_a_green_run_is_just_the_counts_line() -> None:
    text = short_summary({"failures": [], "counts": {"passed": 3}, "duration_s": 0.2})
    assert text.splitlines() == [text] and "3 passed in 0.20s" in text
