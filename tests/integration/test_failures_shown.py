"""Failures where a pytest user looks: the end of `dtf-core test`/`run` has pytest's
"short test summary info", and -x / --maxfail stop the whole run, not one chunk."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SLOW_FILE = """\
import time

import pytest


@pytest.mark.parametrize("i", range(6))
def test_slow(i):
    time.sleep(0.5)
"""


def _dtf(root: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # dtf's own options first: after a `--` everything is pytest's.
        [sys.executable, "-m", "dtf_core.cli", args[0], "--db", "h.duckdb", "--json", "s.json",
         *args[1:]],
        cwd=root, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


@pytest.mark.timeout(300)
def test_the_end_of_a_run_lists_every_failure_as_pytest_does(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_ok():
                pass

            def test_bad():
                value = 1
                assert value == 2, "value should be two"

            @pytest.fixture
            def broken():
                raise RuntimeError("setup broke")

            def test_error(broken):
                pass
            """
        )
    )
    serial = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "."],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    serial_lines = sorted(re.findall(r"^(?:FAILED|ERROR) \S+", serial.stdout, re.MULTILINE))
    out = _dtf(tmp_path, "test", ".", "--workers", "2", "--tb", "short")
    assert out.returncode == 1, out.stderr
    err = out.stderr
    assert "short test summary info" in err
    ours = sorted(re.findall(r"^(?:FAILED|ERROR) \S+", err, re.MULTILINE))
    assert ours == serial_lines == ["ERROR test_a.py::test_error", "FAILED test_a.py::test_bad"]
    assert "FAILED test_a.py::test_bad - AssertionError: value should be two" in err
    assert re.search(r"test_a.py:\d+: in test_bad", err)  # the traceback (--tb short)
    assert re.search(r"=+ 1 failed, 1 passed, 1 error in [\d.]+s =+", err), err

    # --tb no: the summary lines without tracebacks.
    out = _dtf(tmp_path, "test", ".", "--workers", "2", "--tb", "no")
    assert "FAILED test_a.py::test_bad" in out.stderr and "in test_bad" not in out.stderr


@pytest.mark.timeout(400)
@pytest.mark.parametrize("flag", [["-x"], ["--", "--maxfail=1"]])
def test_exitfirst_stops_the_whole_run(tmp_path: Path, flag: list[str]) -> None:
    # The failing test is the longest unit (4 s), so with history it leads the first
    # chunk; three files of 3 s each fill the other: with history, one chunk per
    # worker thread (docs/testing.md), both running when the failure streams in
    # (its file sorts first, so pytest runs it first in its chunk).
    (tmp_path / "test_afail.py").write_text(
        "import time\n\ndef test_fails_late():\n    time.sleep(4)\n    assert False\n"
    )
    for name in ("b", "c", "d"):
        (tmp_path / f"test_{name}.py").write_text(SLOW_FILE)
    first = _dtf(tmp_path, "test", ".", "--workers", "2")  # history for the planner
    assert first.returncode == 1, first.stderr
    assert json.loads((tmp_path / "s.json").read_text())["counts"]["passed"] == 18

    out = _dtf(tmp_path, "test", ".", "--workers", "2", *flag)
    assert out.returncode == 1, out.stderr
    # Two with the collection cached (-x); pytest options after `--` are another
    # collection, listed afresh: whole files, four chunks.
    assert re.search(r"in [24] chunk\(s\)", out.stderr), out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    counts = summary["counts"]
    assert counts["failed"] == 1, (counts, out.stderr)
    # The run stopped when the failure streamed in: the other chunk stopped after its
    # current test, and what it never started is not counted as passed.
    assert counts["passed"] < 18, (counts, out.stderr)
    assert "FAILED test_afail.py::test_fails_late" in out.stderr


@pytest.mark.timeout(300)
def test_maxfail_on_a_suite_of_commands(tmp_path: Path) -> None:
    tasks = "\n".join(
        f'[[task]]\nname = "c{i}"\nkind = "command"\n'
        f'command = ["python", "-c", "import sys, time; time.sleep({0.2 if i < 2 else 2}); '
        f'sys.exit({1 if i < 2 else 0})"]\n'
        for i in range(8)
    )
    (tmp_path / "suite.toml").write_text(f'[suite]\nname = "cmds"\n\n{tasks}')
    out = _dtf(tmp_path, "run", "suite.toml", "--workers", "2", "--maxfail", "2")
    assert out.returncode == 1, out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    statuses = [t["status"] for t in summary["tasks"]]
    assert statuses.count("failed") == 2, statuses
    assert statuses.count("cancelled") >= 4, statuses  # the 2 s tasks never all ran
    assert "short test summary info" in out.stderr
