"""The CI regression gate as a pipeline runs it: a history imported with the real CLI,
then `regressions` / `trends` / `compare --fail-on-regression` in subprocesses, with the
filters that scope them (`--benchmark`, `--since`, `--branch`). The detector itself is
tested on many seeds in tests/unit/test_adaptive_floor.py; here: exit codes and messages."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

DAY = 86400.0
MAIN_RUNS = 60


def write_history(path: Path) -> dict[str, str]:
    """main: 60 daily runs up to an hour ago; `quiet` (1 % run-to-run noise) is 3 % slower
    in the last 8, `noisy` is pure 3 % noise with 8 % outlier runs, `drift` creeps up
    0.4 % a run. exp: 20 runs, earlier, pure noise. Returns {run id: commit} of main."""
    rng = np.random.default_rng(7)
    now = time.time()
    rows, commits = [], {}

    def run(run_id: str, t: float, branch: str, i: int, slow: bool) -> None:
        commit = f"{run_id:0>12}"
        level = {
            "quiet": 1.0 * (1 + 0.01 * rng.standard_normal()) * (1.03 if slow else 1.0),
            "noisy": 1.0 * (1 + 0.03 * rng.standard_normal()) * (1.4 if rng.random() < 0.08 else 1),
            "drift": 1.0 * (1 + 0.01 * rng.standard_normal()) * (1 + 0.004 * i),
        }
        for bench, v in level.items():
            for k in range(5):  # samples of one run agree closely: the run is the unit
                rows.append([bench, '{"n": 1}', "x86 2c", run_id, t + k, commit, branch,
                             v * (1 + 0.002 * rng.standard_normal()), "s"])  # fmt: skip
        if branch == "main":
            commits[run_id] = commit

    for i in range(20):
        run(f"e{i:03d}", now - (MAIN_RUNS + 30 - i) * DAY, "exp", 0, False)  # no drift
    for i in range(MAIN_RUNS):
        run(f"m{i:03d}", now - (MAIN_RUNS - i) * DAY + 3600, "main", i, i >= MAIN_RUNS - 8)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["benchmark", "params", "hardware", "run_id", "timestamp", "commit", "branch",
                    "value", "unit"])  # fmt: skip
        w.writerows(rows)
    return commits


def cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-m", "dtf_core.cli", *argv], capture_output=True,
                          text=True, cwd=cwd, timeout=180, env=env)  # fmt: skip


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    d = tmp_path_factory.mktemp("gate")
    commits = write_history(d / "h.csv")
    res = cli("import", "--db", "h.duckdb", "h.csv", cwd=d)
    assert res.returncode == 0, res.stderr
    return d, commits


@pytest.mark.timeout(400)
def test_regressions_gate_catches_3_percent_on_a_quiet_series_and_not_noise(history):
    d, commits = history
    res = cli("regressions", "--db", "h.duckdb", "--fail-on-regression", "--format", "json",
              cwd=d)  # fmt: skip
    assert res.returncode == 1, res.stderr
    gate = [line for line in res.stderr.splitlines() if line.startswith("regression: quiet")]
    assert len(gate) == 1, res.stderr
    first_slow = f"m{MAIN_RUNS - 8:03d}"
    last_fast = f"m{MAIN_RUNS - 9:03d}"
    # the culprit range: from the last run at the old level to the first at the new one
    assert gate[0].endswith(f"in {commits[last_fast]}..{commits[first_slow]}"), gate[0]
    assert " +3." in gate[0] or " +2." in gate[0]
    assert "noisy" not in res.stderr
    changes = json.loads(res.stdout)["changes"]
    assert {c["benchmark"] for c in changes if c["kind"] == "regression"} >= {"quiet"}

    # the filters scope the gate: pure noise, another branch, too short a window
    for scope in (["--benchmark", "noisy"], ["--branch", "exp"], ["--since", "4d"]):
        res = cli("regressions", "--db", "h.duckdb", "--fail-on-regression", *scope, cwd=d)
        assert res.returncode == 0, (scope, res.stderr)
        assert res.stderr == ""
    res = cli("regressions", "--db", "h.duckdb", "--fail-on-regression", "--branch", "main",
              "--benchmark", "q*", cwd=d)  # fmt: skip
    assert res.returncode == 1 and res.stderr.startswith("regression: quiet[n=1] on x86 2c +")


@pytest.mark.timeout(300)
def test_trends_and_compare_gates_with_the_same_filters(history):
    d, commits = history
    res = cli("trends", "--db", "h.duckdb", "--fail-on-regression", "--branch", "main",
              "--benchmark", "drift", cwd=d)  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith("worsening: drift[n=1] on x86 2c +")
    for scope in (["--benchmark", "noisy"], ["--branch", "exp"]):
        res = cli("trends", "--db", "h.duckdb", "--fail-on-regression", *scope, cwd=d)
        assert res.returncode == 0, (scope, res.stderr)

    before = f"m{MAIN_RUNS - 9:03d}"
    res = cli("compare", "--db", "h.duckdb", "--branch", "main", "--baseline", f"run:{before}",
              "--benchmark", "quiet", "--min-effect", "0.02", "--fail-on-regression", cwd=d)  # fmt: skip
    assert res.returncode == 1, res.stderr
    last = f"m{MAIN_RUNS - 1:03d}"
    assert res.stderr.startswith("regression: quiet[n=1] on x86 2c +")
    assert res.stderr.rstrip().endswith(
        f"vs baseline run {before} in {commits[before]}..{commits[last]}"
    )
    # the automatic baseline of the latest main run is the run before it: both slow, no gate
    res = cli("compare", "--db", "h.duckdb", "--branch", "main", "--benchmark", "quiet",
              "--min-effect", "0.02", "--fail-on-regression", cwd=d)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stderr.startswith(f"baseline: run m{MAIN_RUNS - 2:03d} (main, ")
