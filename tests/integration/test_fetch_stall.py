"""No head-of-line blocking: a host that vanishes while its result is being
fetched costs only its own tasks.

Two real worker processes on 127.0.0.1. One stops itself (SIGSTOP) the moment
its first result is fetched (tests/support/stall_fetch.py): to the scheduler
and the coordinator that is a host whose link was cut right after it finished
a task, noticed only after ``worker-ttl``. Meanwhile the other worker keeps
finishing tasks, and the coordinator must keep recording them; at the end
every task passed exactly once (the vanished host's result is recomputed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.factories import suite_of, task_spec
from support.procs import free_port

from dtf_core.cluster import embedded as cluster
from dtf_core.events import Event, TaskFinished
from dtf_core.run.coordinator import Coordinator
from dtf_core.store import Store

pytestmark = [pytest.mark.slow]
PY = sys.executable
STALL = Path(__file__).resolve().parents[1] / "support" / "stall_fetch.py"
TTL = 10.0  # seconds before the scheduler gives up on the stopped worker


def _worker(
    port: int, name: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    return subprocess.Popen(
        [PY, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
         "--no-nanny", "--name", name, "--no-dashboard", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip


@pytest.mark.timeout(180)
def test_a_vanished_host_does_not_stop_the_recording_of_the_others(tmp_path: Path) -> None:
    port = free_port()
    mark = tmp_path / "stalled-at"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": f"{TTL:g}s"}
    scheduler = [PY, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                 "--port", str(port), "--no-dashboard"]  # fmt: skip
    procs = [
        subprocess.Popen(scheduler, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    ]
    try:
        procs.append(_worker(port, "healthy"))
        stall_env = {**os.environ, "DTF_TEST_STALL_MARK": str(mark)}
        procs.append(_worker(port, "vanishing", "--preload", str(STALL), env=stall_env))
        tasks = [
            task_spec(f"t{i:02d}", command=["sleep", "0.3"], root=tmp_path, timeout=60, retries=2)
            for i in range(30)
        ]
        recorded: list[float] = []

        def listen(event: Event) -> None:
            if isinstance(event, TaskFinished):
                recorded.append(time.time())

        with (
            Store(tmp_path / "f.duckdb") as store,
            cluster.open_cluster(f"tcp://127.0.0.1:{port}") as handle,
        ):
            handle.client.wait_for_workers(2, timeout=60)
            coord = Coordinator(
                handle.client, store, embedded=False, unschedulable_timeout=60, listeners=[listen]
            )
            result = coord.run(suite_of(tasks, path=tmp_path / "suite.toml"))
            rows = store.tasks(result.run_id)
            attempts = store.attempts(result.run_id)
        assert mark.exists(), "the vanishing worker never had a result fetched: make the run longer"
        stalled_at = float(mark.read_text())
        # Before worker-ttl nobody knows the host is gone, so every task the
        # healthy worker finished in that window was recorded only because the
        # stalled fetch did not hold up the others.
        during = [t for t in recorded if stalled_at < t < stalled_at + TTL - 1]
        assert len(during) >= 3, (stalled_at, recorded)
        assert result.status == "passed", [
            (a["task_id"], a["attempt"], a["outcome"], a["message"][:150])
            for a in attempts
            if a["outcome"] != "passed"
        ]
        assert len(rows) == 30 and all(t["status"] == "passed" for t in rows)
        passed = [a["task_id"] for a in attempts if a["outcome"] == "passed"]
        assert sorted(passed) == sorted(t["task_id"] for t in rows)  # each exactly once
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)  # our own children; works on a stopped one
            p.wait(timeout=10)
