"""No head-of-line blocking: a host that vanishes (or crawls) while its result
is being fetched costs only its own tasks.

Two real worker processes on 127.0.0.1. One stalls the first fetch of a result
from it (tests/support/stall_fetch.py): either it stops itself (SIGSTOP), which
to the scheduler and the coordinator is a host whose link was cut right after
it finished a task, noticed only after ``worker-ttl``; or it answers that one
fetch seconds late while staying in the cluster. Meanwhile the other worker
keeps finishing tasks, and the coordinator must keep recording them; the
stalled fetch is set aside and tried again (the slow host answers the second
try; the vanished host's task is computed again once Dask gives the host up);
at the end every task passed exactly once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dask.config
import pytest
from support.factories import suite_of, task_spec
from support.procs import free_port, wait_for

from dtf_core.cluster import embedded as cluster
from dtf_core.events import Event, TaskFinished
from dtf_core.run.coordinator import Coordinator
from dtf_core.store import Store

pytestmark = [pytest.mark.slow]
PY = sys.executable
STALL = Path(__file__).resolve().parents[1] / "support" / "stall_fetch.py"
STALL_S = 10.0  # worker-ttl for the vanished host; the delay for the slow one


def _worker(port: int, name: str, *extra: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [PY, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
         "--no-nanny", "--name", name, "--no-dashboard", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip


@pytest.mark.timeout(180)
@pytest.mark.parametrize("host", ["vanished", "slow"])
def test_a_stalled_fetch_does_not_stop_the_recording_of_the_others(
    tmp_path: Path, host: str
) -> None:
    port = free_port()
    mark = tmp_path / "stalled-at"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": f"{STALL_S:g}s"}
    stall_env = {**os.environ, "DTF_TEST_STALL_MARK": str(mark)}
    if host == "slow":
        stall_env["DTF_TEST_STALL_SECONDS"] = f"{STALL_S:g}"
    scheduler = [PY, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                 "--port", str(port), "--no-dashboard"]  # fmt: skip
    procs = [
        subprocess.Popen(scheduler, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    ]
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1), 60, "the scheduler")
        procs.append(_worker(port, "healthy", env=os.environ.copy()))
        procs.append(_worker(port, "stalling", "--preload", str(STALL), env=stall_env))
        tasks = [
            task_spec(f"t{i:02d}", command=["sleep", "0.3"], root=tmp_path, timeout=60, retries=2)
            for i in range(30)
        ]
        recorded: dict[str, float] = {}

        def listen(event: Event) -> None:
            if isinstance(event, TaskFinished):
                recorded[event.task_id] = time.time()

        with (
            Store(tmp_path / "f.duckdb") as store,
            cluster.open_cluster(f"tcp://127.0.0.1:{port}") as handle,
            # The slow host's fetch times out and is tried again, longer, before it answers.
            dask.config.set({"dtf.result-fetch.timeout": "2s"}),
        ):
            handle.client.wait_for_workers(2, timeout=60)
            coord = Coordinator(
                handle.client, store, embedded=False, unschedulable_timeout=60, listeners=[listen]
            )
            result = coord.run(suite_of(tasks, path=tmp_path / "suite.toml"))
            rows = store.tasks(result.run_id)
            attempts = store.attempts(result.run_id)
        assert mark.exists(), "the stalling worker never had a result fetched: make the run longer"
        at, _, keys = mark.read_text().partition(" ")
        stalled_at = float(at)
        (stalled,) = [t["task_id"] for t in rows if f"-{t['task_id']}-a" in keys]
        # Until the stall ends (worker-ttl, or the late answer) the stalled
        # fetch is unanswered, so every task recorded in that window was
        # recorded only because that fetch did not hold up the others.
        during = [t for t in recorded.values() if stalled_at < t < stalled_at + STALL_S - 1]
        assert len(during) >= 3, (stalled_at, sorted(recorded.values()))
        assert result.status == "passed", [
            (a["task_id"], a["attempt"], a["outcome"], a["message"][:150])
            for a in attempts
            if a["outcome"] != "passed"
        ]
        assert len(rows) == 30 and all(t["status"] == "passed" for t in rows)
        passed = [a["task_id"] for a in attempts if a["outcome"] == "passed"]
        assert sorted(passed) == sorted(t["task_id"] for t in rows)  # each exactly once
        if host == "slow":
            # The fetch was tried again while the first one still hung, from the
            # host that had it: not computed again.
            assert recorded[stalled] < stalled_at + STALL_S - 1
            assert [a["attempt"] for a in attempts if a["task_id"] == stalled] == [1]
        else:
            # Nothing could fetch it before the scheduler gave the host up.
            assert recorded[stalled] > stalled_at + STALL_S - 1
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)  # our own children; works on a stopped one
            p.wait(timeout=10)
