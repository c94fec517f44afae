"""`dtf-core plan` against real Dask clusters (a LocalCluster with and without a worker tagged
GPU=1): what a suite or a pytest tree needs, and exit 2 naming the resource no worker has."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from distributed import LocalCluster

from dtf_core.cli import main

SUITE = """
[suite]
name = "planned"
[[task]]
name = "bench"
kind = "benchmark"
function = "bench:work"
[[task]]
name = "on-gpu"
kind = "command"
requires = { GPU = 1 }
command = ["python", "-c", "print(1)"]
"""
# Planning validates without importing submitted code: this module must never run.
BENCH = "raise SystemExit('bench.py was imported')\n\n\ndef work():\n    pass\n"
TESTS = {
    "tests/test_cpu.py": "def test_a():\n    pass\n\n\ndef test_b():\n    pass\n",
    "tests/test_gpu.py": """
        import pytest

        @pytest.mark.dtf(GPU=1)
        def test_kernel():
            pass
        """,
}


def cluster(**resources: float) -> LocalCluster:
    return LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
        dashboard_address=":0", resources=resources or None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def clusters() -> Iterator[dict[str, str]]:
    with cluster() as cpu, cluster(GPU=1) as gpu:
        yield {"cpu": cpu.scheduler_address, "gpu": gpu.scheduler_address}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "suite.toml").write_text(SUITE)
    (tmp_path / "bench.py").write_text(BENCH)
    for name, text in TESTS.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


def plan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dtf_core.cli", "plan", *args], cwd=cwd, capture_output=True,
        text=True, timeout=180, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


@pytest.mark.timeout(300)
def test_a_suite_on_clusters_with_and_without_a_gpu(project: Path, clusters) -> None:
    no_gpu = plan("suite.toml", "--scheduler", clusters["cpu"], cwd=project)
    assert no_gpu.returncode == 2, no_gpu.stdout + no_gpu.stderr
    assert no_gpu.stderr.strip().splitlines() == [
        f"dtf-core: error: 1 of 2 unit(s) can never be scheduled on {clusters['cpu']}: "
        "on-gpu: no worker has GPU=1"
    ]
    lines = no_gpu.stdout.splitlines()
    assert [ln.split()[:2] for ln in lines[:2]] == [["benchmark", "bench"], ["command", "on-gpu"]]
    assert "ok on" in lines[0] and lines[1].endswith("NEVER: no worker has GPU=1")

    with_gpu = plan("suite.toml", "--scheduler", clusters["gpu"], "--format", "json", cwd=project)
    assert with_gpu.returncode == 0, with_gpu.stderr
    doc = json.loads(with_gpu.stdout)
    assert doc["schedulable"] is True
    (worker,) = doc["workers"]
    assert worker["resources"] == {"GPU": 1.0}
    gpu_task = next(u for u in doc["units"] if u["name"] == "on-gpu")
    assert gpu_task["runnable"] and gpu_task["workers"] == [worker["name"]]


@pytest.mark.timeout(300)
def test_a_pytest_tree_names_the_file_that_cannot_run(project: Path, clusters) -> None:
    out = plan("tests", "--scheduler", clusters["cpu"], "--format", "json", cwd=project)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "tests/test_gpu.py: no worker has GPU=1" in out.stderr
    units = {u["name"]: u for u in json.loads(out.stdout)["units"]}
    assert units["tests/test_cpu.py"]["tests"] == 2 and units["tests/test_cpu.py"]["runnable"]
    assert units["tests/test_gpu.py"]["missing"] == {"GPU": 1.0}


def test_without_a_cluster_it_says_what_it_would_need(project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    res = CliRunner().invoke(main, ["plan", "suite.toml"])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[-2:] == [
        "no cluster given: 2 unit(s) would need",
        "  a worker with GPU=1: 1 unit(s)",
    ]
    broken = CliRunner().invoke(main, ["plan", "missing.toml"])
    assert broken.exit_code == 2 and "missing.toml" in broken.stderr
