"""End to end: a real embedded cluster, real worker processes, a real DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dtf_core import spec
from dtf_core.cluster import embedded as cluster
from dtf_core.run.coordinator import Coordinator
from dtf_core.store import Store, StoreReader

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "examples" / "quickstart.toml"
DTF = [sys.executable, "-m", "dtf_core.cli"]


def dtf(*args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [*DTF, *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout, env=env
    )


@pytest.mark.timeout(240)
def test_quickstart_end_to_end(tmp_path: Path) -> None:
    db = tmp_path / "q.duckdb"
    out = dtf(
        "run",
        str(QUICKSTART),
        "--db",
        str(db),
        "--json",
        str(tmp_path / "s.json"),
        "--junit",
        str(tmp_path / "j.xml"),
        "--report",
        str(tmp_path / "r.md"),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "GPU=1 (tagged, not detected)" in out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["status"] == "passed"
    assert summary["counts"]["failed"] == 0
    assert summary["counts"]["passed"] > 10
    # The GPU task ran on the worker tagged GPU=1, and only there.
    with StoreReader(db) as store:
        tasks = {t["task_id"]: t for t in store.tasks(summary["run_id"])}
        workers = {w["name"]: w for w in store.workers(summary["run_id"])}
    gpu_tasks = [t for t in tasks.values() if "GPU" in json.dumps(t["requires"])]
    assert gpu_tasks
    gpu_workers = {n for n, w in workers.items() if "GPU" in json.dumps(w["resources"])}
    assert gpu_workers
    for t in gpu_tasks:
        assert t["status"] == "passed"
        assert t["worker"] in gpu_workers or any(
            t["worker"] == w["address"] for n, w in workers.items() if n in gpu_workers
        )
    # The report rebuilt from the database says the same as the one written by the run.
    again = dtf("report", "--db", str(db), "--format", "json")
    assert again.returncode == 0, again.stderr
    rebuilt = json.loads(again.stdout)
    assert rebuilt["counts"] == summary["counts"]
    assert rebuilt["run_id"] == summary["run_id"]
    assert "<testsuites" in (tmp_path / "j.xml").read_text()
    assert "quickstart" in (tmp_path / "r.md").read_text()


BAD = sorted((ROOT / "tests" / "data" / "bad").glob("*.toml"))


def test_bad_suite_in_a_real_process(tmp_path: Path) -> None:
    db = tmp_path / "never.duckdb"
    out = dtf("run", str(BAD[0]), "--db", str(db), timeout=60)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not db.exists()


def test_bad_options_exit_2(tmp_path: Path) -> None:
    out = dtf(
        "run", str(QUICKSTART), "--db", str(tmp_path / "x.duckdb"), "-r", "GPU=-1", timeout=60
    )
    assert out.returncode == 2
    assert "GPU" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x.duckdb").exists()
    out = dtf("report", "--db", str(tmp_path / "missing.duckdb"), timeout=60)
    assert out.returncode != 0 and "Traceback" not in out.stderr


# --------------------------------------------------------------------------- in-process runs

SUITE = """
[suite]
name = "faults"

[defaults]
timeout = "20s"
retries = 2

[[task]]
name = "ok"
kind = "command"
command = ["python", "-c", "print('fine')"]

[[task]]
name = "fails"
kind = "command"
command = ["python", "-c", "import sys; print('broken', file=sys.stderr); sys.exit(3)"]

[[task]]
name = "slow"
kind = "command"
timeout = "1s"
command = ["python", "-c", "import time; time.sleep(30)"]

[[task]]
name = "needs-foo"
kind = "command"
requires = { FOO = 1 }
command = ["python", "-c", "print('never')"]

[[task]]
name = "gpu"
kind = "command"
requires = { GPU = 1 }
command = ["python", "-c", "import os; print(os.environ['DTF_WORKER'])"]

[[task]]
name = "flaky"
kind = "command"
rerun_failures = 1
command = ["python", "-c", "import os, sys; p = 'flaky.marker'; ok = os.path.exists(p); open(p, 'w').close(); sys.exit(0 if ok else 1)"]

[[task]]
name = "bench"
kind = "benchmark"
function = "benchfns:work"
params = { n = [10, 100] }
repeat = 5
warmup = 1
"""


@pytest.fixture(scope="module")
def embedded():
    plans = cluster.plan_workers(2, 1, [{}, {"GPU": 1}])
    with cluster.open_cluster(None, plans=plans) as handle:
        yield handle


def _write_suite(tmp_path: Path, text: str = SUITE) -> Path:
    (tmp_path / "benchfns.py").write_text(
        textwrap.dedent(
            """
            def work(n):
                return sum(range(n))
            """
        )
    )
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


@pytest.mark.timeout(120)
def test_outcomes_retries_routing(embedded, tmp_path: Path) -> None:
    suite = spec.load_suite(_write_suite(tmp_path))
    with Store(tmp_path / "r.duckdb") as store:
        coord = Coordinator(embedded.client, store, embedded=True)
        result = coord.run(suite)
        tasks = {t["task_id"]: t for t in store.tasks(result.run_id)}
        attempts = store.attempts(result.run_id)
        workers = {w["address"]: w for w in store.workers(result.run_id)}
    assert result.status == "failed"
    assert tasks["ok"]["status"] == "passed"
    assert tasks["fails"]["status"] == "failed"
    assert tasks["fails"]["category"] == "test-failure"
    assert tasks["fails"]["attempts"] == 1  # genuine failures are not retried by default
    assert tasks["slow"]["status"] == "timed_out"
    assert tasks["needs-foo"]["status"] == "unschedulable"
    assert "FOO=1" in tasks["needs-foo"]["message"]
    assert tasks["gpu"]["status"] == "passed"
    gpu_worker = tasks["gpu"]["worker"]
    assert gpu_worker in ("dtf-1",) or "GPU" in json.dumps(workers.get(gpu_worker, {}))
    assert tasks["flaky"]["status"] == "passed" and tasks["flaky"]["flaky"]
    assert tasks["flaky"]["attempts"] == 2
    assert tasks["bench[n=10]"]["status"] == "passed"
    # Every accepted task has exactly one final state, and every attempt one row.
    assert len(tasks) == len(suite.tasks)
    keys = [(a["task_id"], a["attempt"]) for a in attempts]
    assert len(keys) == len(set(keys))
    # The timed-out command's process is gone (killed with its group on the worker).
    slow = next(a for a in attempts if a["task_id"] == "slow")
    assert slow["wall_s"] < 10


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_worker_killed_mid_task_is_retried_elsewhere(embedded, tmp_path: Path) -> None:
    # First attempt kills its own worker process (the command's parent); the
    # nanny brings the worker back and the task runs again as worker-lost.
    text = """
[suite]
name = "killer"
[[task]]
name = "kill-worker-once"
kind = "command"
retries = 2
command = ["python", "-c", "import os, signal; p = 'killed.marker'; done = os.path.exists(p); open(p, 'w').close(); done or os.kill(os.getppid(), signal.SIGKILL)"]
"""
    suite = spec.load_suite(_write_suite(tmp_path, text))
    with Store(tmp_path / "k.duckdb") as store:
        result = Coordinator(embedded.client, store, embedded=True).run(suite)
        (task,) = store.tasks(result.run_id)
        attempts = store.attempts(result.run_id)
    assert task["status"] == "passed", attempts
    assert task["attempts"] >= 2
    assert attempts[0]["category"] == "worker-lost"
    embedded.client.wait_for_workers(2, timeout=30)
