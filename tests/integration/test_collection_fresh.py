"""`dtf-core test` runs what pytest collects now, whatever the collection cache says.

The reported bug: a suite parametrized from a data file ran three times; before
the third run the data file gained ten cases, one failing. Serial pytest said
`1 failed, 50 passed`; dtf said `41 passed` and exited 0, because the cached
node ids were dispatched and the cache fingerprint never looked at the data file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TEST_DATA = """\
import json, pathlib, time

import pytest

CASES = json.loads((pathlib.Path(__file__).parent / "cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[str(c["n"]) for c in CASES])
def test_case(case):
    time.sleep(0.05)  # enough work that the planner splits this file over chunks
    assert case["ok"], f"case {case['n']} is marked bad"
"""

TEST_OTHER = """\
import time


def test_other_one():
    time.sleep(0.05)


def test_other_two():
    time.sleep(0.05)
"""


def _cases(n: int, bad: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    return json.dumps([{"n": i, "ok": i not in bad} for i in range(n)])


def _serial(root: Path) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    line = [ln for ln in out.stdout.strip().splitlines() if " in " in ln][-1]
    return {w: int(n) for n, w in re.findall(r"(\d+) (passed|failed|error|skipped)", line)}


def _dtf(root: Path, *extra: str) -> tuple[int, dict[str, int], str]:
    out = subprocess.run(
        [sys.executable, "-m", "dtf_core.cli", "test", "tests", "--workers", "2",
         "--db", "h.duckdb", "--json", "s.json", *extra],
        cwd=root, capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    counts = json.loads((root / "s.json").read_text())["counts"]
    got = {k: v for k, v in counts.items() if k in ("passed", "failed", "error", "skipped") and v}
    return out.returncode, got, out.stderr


@pytest.mark.timeout(600)
def test_a_data_file_that_grows_between_runs_changes_what_runs(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_data.py").write_text(TEST_DATA)
    (tests / "test_other.py").write_text(TEST_OTHER)
    (tests / "cases.json").write_text(_cases(39))

    # Runs 1 and 2 fill the cache and the history the planner splits by.
    for _ in range(2):
        code, got, err = _dtf(tmp_path)
        assert code == 0, err
        assert got == _serial(tmp_path) == {"passed": 41}, err

    # The data file gains ten cases, one of them failing; no .py file changes.
    (tests / "cases.json").write_text(_cases(49, bad={45}))
    expected = _serial(tmp_path)
    assert expected == {"passed": 50, "failed": 1}
    code, got, err = _dtf(tmp_path)
    assert got == expected, err
    assert code == 1, err
    # The planner did split the run: the data file's tests were spread over chunks.
    assert int(re.search(r"(\d+) chunk\(s\)", err).group(1)) > 1, err

    # Cases vanish: no "not found" errors, the counts follow pytest again.
    (tests / "cases.json").write_text(_cases(20))
    expected = _serial(tmp_path)
    code, got, err = _dtf(tmp_path)
    assert (code, got) == (0, expected), err

    # --no-cache: the same counts without the cache.
    code, got, err = _dtf(tmp_path, "--no-cache")
    assert (code, got) == (0, expected), err
