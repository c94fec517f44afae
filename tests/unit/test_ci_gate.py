"""GitHub annotations from stored tracebacks, and the regression gate's verdict."""

from __future__ import annotations

from dtf_core.reporting import ci

LONG_TB = """\
def test_x():
>       assert compute() == 3
E       assert 2 == 3

tests/test_a.py:8: AssertionError"""

DEEP_TB = """\
tests/test_a.py:12: in test_y
    helper()
src/lib.py:40: in helper
    raise ValueError("bad")
E   ValueError: bad"""


def test_location_from_the_traceback_prefers_the_test_file():
    assert ci.failure_location({"nodeid": "tests/test_a.py::test_x", "details": LONG_TB}) == (
        "tests/test_a.py",
        8,
    )
    assert ci.failure_location({"nodeid": "tests/test_a.py::test_y", "details": DEEP_TB}) == (
        "tests/test_a.py",
        12,
    )
    assert ci.failure_location({"nodeid": "other.py::t", "details": DEEP_TB}) == ("src/lib.py", 40)


def test_location_falls_back_to_the_def_line(tmp_path):
    (tmp_path / "t.py").write_text("import os\n\n\ndef test_z(x):\n    pass\n")
    f = {"nodeid": "t.py::test_z[1-2]", "details": ""}
    assert ci.failure_location(f, str(tmp_path)) == ("t.py", 4)
    assert ci.failure_location(f) == ("t.py", 1)
    assert ci.failure_location({"nodeid": None, "task_id": "bench-1"}) == ("bench-1", 1)


def test_annotations_escape_and_accept_the_test_command_summary():
    summary = {
        "failures": ["a.py::t"],  # what `dtf-core test` leaves in `failures`
        "failure_details": [
            {"nodeid": "a.py::t[x,y]", "message": "100% wrong\nsecond line", "details": ""}
        ],
    }
    (line,) = ci.github_annotations(summary)
    assert line == "::error file=a.py,line=1,title=a.py%3A%3At[x%2Cy]::100%25 wrong%0Asecond line"


def _change(kind, at, commit="c2", prev="c1", bench="mm", change=0.04):
    return {
        "benchmark": bench, "params": {"n": 1}, "hardware": "cpu", "unit": "s",
        "started_at": at, "kind": kind, "change": change, "before": 1.0,
        "after": 1.0 + change, "p_value": 1e-5, "commit": commit, "previous_commit": prev,
        "run_id": "r2", "previous_run_id": "r1",
    }  # fmt: skip


def test_gate_fails_on_an_open_regression_and_names_the_commit_range():
    code, lines = ci.regression_gate([_change("regression", 10, "b" * 40, "a" * 40)])
    assert code == 1
    assert lines == [
        "regression: mm[n=1] on cpu +4.0 % (1 -> 1.04 s, p=1e-05) in aaaaaaaaaaaa..bbbbbbbbbbbb"
    ]


def test_gate_passes_when_a_later_shift_undid_the_regression_or_nothing_regressed():
    undone = [_change("regression", 10), _change("improvement", 20, change=-0.04)]
    assert ci.regression_gate(undone) == (0, [])
    assert ci.regression_gate([]) == (0, [])
    other = [_change("regression", 10), _change("improvement", 20, bench="other")]
    assert ci.regression_gate(other)[0] == 1


def test_culprit_range_without_commits_names_the_runs():
    assert ci.culprit_range({"run_id": "r2", "previous_run_id": "r1"}) == (
        "runs r1..r2 (no commit recorded)"
    )


def test_trend_gate():
    rows = [
        {"benchmark": "a", "verdict": "stable"},
        {"benchmark": "b", "verdict": "worsening", "change_over_window": 0.08,
         "last_change": {"commit": "d" * 40}},
    ]  # fmt: skip
    assert ci.trend_gate(rows) == (
        1,
        ["worsening: b +8.0 % over the window, last shift at commit dddddddddddd"],
    )
