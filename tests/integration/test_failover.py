"""Faults with real processes: scheduler kill -9 (three times), coordinator kill -9 + resume.

Every process a test starts is killed by pid (or by the process group it leads)
in a finally block; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from support.procs import free_port

from dtf_core import spec
from dtf_core.cluster import embedded as cluster
from dtf_core.run.coordinator import Coordinator
from dtf_core.store import Store, StoreReader

pytestmark = [pytest.mark.slow]
PY = sys.executable


def _suite(tmp_path: Path, n: int, sleep: float) -> Path:
    tasks = "\n".join(
        f'[[task]]\nname = "t{i:03d}"\nkind = "command"\n'
        f'command = ["python", "-c", "import time; time.sleep({sleep})"]\n'
        for i in range(n)
    )
    path = tmp_path / "suite.toml"
    path.write_text(f'[suite]\nname = "faults"\n[defaults]\ntimeout = "60s"\nretries = 2\n{tasks}')
    return path


def _start_scheduler(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [PY, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _worker_loop(port: int, name: str) -> subprocess.Popen:
    # What systemd's Restart=always does for a plain `dask worker`: Dask workers
    # exit when their scheduler dies and never reconnect by themselves.
    cmd = (
        f"while true; do {PY} -m distributed.cli.dask_worker tcp://127.0.0.1:{port} "
        f"--nthreads 1 --no-nanny --name {name} --death-timeout 60 >/dev/null 2>&1; "
        "sleep 0.2; done"
    )
    return subprocess.Popen(["bash", "-c", cmd], start_new_session=True)


@pytest.mark.timeout(180)
def test_scheduler_killed_three_times_every_result_exactly_once(tmp_path: Path) -> None:
    port = free_port()
    sched = _start_scheduler(port)
    loops = [_worker_loop(port, f"w{i}") for i in range(2)]
    kills: list[float] = []
    try:
        suite = spec.load_suite(_suite(tmp_path, 200, 0.05))
        with (
            Store(tmp_path / "f.duckdb") as store,
            cluster.open_cluster(f"tcp://127.0.0.1:{port}") as handle,
        ):
            handle.client.wait_for_workers(2, timeout=30)
            coord = Coordinator(handle.client, store, embedded=False, unschedulable_timeout=30)
            box: dict = {}
            runner = threading.Thread(target=lambda: box.update(r=coord.run(suite)), daemon=True)
            runner.start()
            for _ in range(3):
                time.sleep(2.0)
                if not runner.is_alive():
                    break
                sched.kill()
                sched.wait(timeout=10)
                kills.append(time.monotonic())
                time.sleep(0.5)
                sched = _start_scheduler(port)
            runner.join(timeout=150)
            assert not runner.is_alive(), "the run did not finish"
            result = box["r"]
            tasks = store.tasks(result.run_id)
            attempts = store.attempts(result.run_id)
        assert len(kills) == 3, "the run ended before three kills: make it longer"
        assert result.status == "passed", [
            (a["task_id"], a["attempt"], a["outcome"], a["message"][:150])
            for a in attempts
            if a["outcome"] != "passed"
        ][:8]
        assert len(tasks) == 200 and all(t["status"] == "passed" for t in tasks)
        passed = [(a["task_id"], a["attempt"]) for a in attempts if a["outcome"] == "passed"]
        assert len(passed) == 200 and len({t for t, _ in passed}) == 200  # exactly once
        lost = [a for a in attempts if "scheduler" in (a["message"] or "")]
        assert lost, [
            (a["outcome"], a["category"], a["message"])
            for a in attempts
            if a["outcome"] != "passed"
        ][:10]
    finally:
        sched.kill()
        for loop in loops:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(loop.pid, signal.SIGKILL)
        sched.wait(timeout=10)


@pytest.mark.timeout(180)
def test_coordinator_kill_9_then_resume_finishes_the_run(tmp_path: Path) -> None:
    suite = _suite(tmp_path, 12, 1.0)
    db = tmp_path / "c.duckdb"
    proc = subprocess.Popen(
        [PY, "-m", "dtf_core.cli", "run", str(suite), "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    children: list[psutil.Process] = []
    run_id = None
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            m = re.search(r"run (\S+): suite", line)
            run_id = run_id or (m.group(1) if m else None)
            if re.search(r"\[4/12\]", line):
                break
            assert time.monotonic() < deadline
        assert run_id
        time.sleep(0.7)  # let a flush land, so that some results are committed
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.kill()
        proc.wait(timeout=10)
        # Its embedded workers lose their scheduler and exit by themselves.
        _, alive = psutil.wait_procs(children, timeout=45)
        assert not alive, f"left behind: {[p.pid for p in alive]}"

        with StoreReader(db) as store:
            before = {t["task_id"]: t["status"] for t in store.tasks(run_id)}
            assert store.get_run(run_id)["status"] == "running"
        done_before = {t for t, s in before.items() if s == "passed"}
        assert 0 < len(done_before) < 12

        out = subprocess.run(
            [PY, "-m", "dtf_core.cli", "run", "--resume", run_id, "--db", str(db)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        with StoreReader(db) as store:
            tasks = {t["task_id"]: t for t in store.tasks(run_id)}
            attempts = store.attempts(run_id)
            assert store.get_run(run_id)["status"] == "passed"
        assert len(tasks) == 12 and all(t["status"] == "passed" for t in tasks.values())
        # Results committed before the kill were not run or written again.
        for task_id in done_before:
            assert [a["attempt"] for a in attempts if a["task_id"] == task_id] == [1]
        keys = [(a["task_id"], a["attempt"]) for a in attempts]
        assert len(keys) == len(set(keys))
        again = subprocess.run(
            [PY, "-m", "dtf_core.cli", "run", "--resume", run_id, "--db", str(db)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert again.returncode == 2 and "already ended" in again.stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()


@pytest.mark.timeout(120)
def test_hung_worker_is_found_by_worker_ttl_and_its_task_runs_elsewhere(tmp_path: Path) -> None:
    import dask.config

    # A worker that stops answering (SIGSTOP: a hung machine, a debugger) is only
    # noticed through worker-ttl; dtf's embedded default is 30 s, shortened here.
    with dask.config.set({"dtf.embedded.worker-ttl": "3s"}):
        plans = cluster.plan_workers(2, 1, [])
        handle_cm = cluster.open_cluster(None, plans=plans)
        handle = handle_cm.__enter__()
    stopped: list[int] = []
    try:
        text = (
            '[suite]\nname = "hang"\n[[task]]\nname = "long"\nkind = "command"\nretries = 2\n'
            'command = ["python", "-c", "import os, time; open(os.environ[\'DTF_WORKER\'] + '
            "'.ran', 'w').close(); time.sleep(4)\"]\n"
        )
        (tmp_path / "s.toml").write_text(text)
        suite = spec.load_suite(tmp_path / "s.toml")
        pids = handle.client.run(os.getpid)  # worker address -> pid

        def stop_the_busy_worker() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ran = list(tmp_path.glob("*.ran"))
                if ran:
                    name = ran[0].name.removesuffix(".ran")
                    info = cluster.current_workers(handle.client)
                    addr = next(a for a, w in info.items() if w["name"] == name)
                    stopped.append(pids[addr])
                    os.kill(pids[addr], signal.SIGSTOP)
                    return
                time.sleep(0.05)

        threading.Thread(target=stop_the_busy_worker, daemon=True).start()
        t0 = time.monotonic()
        with Store(tmp_path / "h.duckdb") as store:
            result = Coordinator(handle.client, store, embedded=True).run(suite)
            attempts = store.attempts(result.run_id)
        took = time.monotonic() - t0
        assert stopped, "the task never started"
        assert result.status == "passed", attempts
        assert attempts[0]["category"] == "worker-lost"
        assert attempts[-1]["outcome"] == "passed"
        assert took < 60  # ttl (3 s) + detection + a 4 s rerun, with room for a slow CI
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        handle_cm.__exit__(None, None, None)
