"""Recovery after a scheduler kill -9, and the cost of the faults to the whole run.

An external `dask scheduler` and two workers in relaunch loops (what systemd's
Restart=always does) on 127.0.0.1. A suite of short command tasks runs once
undisturbed, then again while the scheduler is killed `--kills` times and
restarted at once (as a supervisor would). Recovery = kill -> the next task
that completes.

    .venv/bin/python scripts/bench/failover.py [--kills 5] [--tasks 400]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from dtf_core.cluster import embedded as cluster
from dtf_core.events import Event, TaskFinished
from dtf_core.model import Suite, TaskKind, TaskSpec
from dtf_core.run.coordinator import Coordinator
from dtf_core.store import Store

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_scheduler(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [PY, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def worker_loop(port: int, name: str) -> subprocess.Popen:
    cmd = (
        f"while true; do {PY} -m distributed.cli.dask_worker tcp://127.0.0.1:{port} "
        f"--nthreads 1 --no-nanny --name {name} >/dev/null 2>&1; sleep 0.2; done"
    )
    return subprocess.Popen(["bash", "-c", cmd], start_new_session=True)


def suite(n: int, root: str) -> Suite:
    tasks = [
        TaskSpec(
            task_id=f"t{i:04d}",
            name="t",
            kind=TaskKind.COMMAND,
            root=root,
            timeout=60,
            retries=2,
            command=["python", "-c", "import time; time.sleep(0.05)"],
        )
        for i in range(n)
    ]
    return Suite(name="failover", path=os.path.join(root, "failover"), tasks=tasks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=400)
    ap.add_argument("--interval", type=float, default=3.0, help="seconds between kills")
    args = ap.parse_args()
    port = free_port()
    sched = start_scheduler(port)
    loops = [worker_loop(port, f"w{i}") for i in range(2)]
    recoveries: list[float] = []
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            Store(os.path.join(tmp, "f.duckdb")) as store,
            cluster.open_cluster(f"tcp://127.0.0.1:{port}") as handle,
        ):
            handle.client.wait_for_workers(2, timeout=60)
            t0 = time.perf_counter()
            base = Coordinator(handle.client, store).run(suite(args.tasks, tmp))
            undisturbed = time.perf_counter() - t0
            finished: list[float] = []

            def listen(event: Event) -> None:
                if isinstance(event, TaskFinished):
                    finished.append(time.monotonic())

            coord = Coordinator(handle.client, store, listeners=[listen])
            box: dict = {}
            t0 = time.perf_counter()
            th = threading.Thread(target=lambda: box.update(r=coord.run(suite(args.tasks, tmp))))
            th.start()
            kills: list[float] = []
            for _ in range(args.kills):
                time.sleep(args.interval)
                if not th.is_alive():
                    break
                sched.kill()
                sched.wait()
                kills.append(time.monotonic())
                sched = start_scheduler(port)
            th.join()
            faulted = time.perf_counter() - t0
            for k in kills:
                after = [f for f in finished if f > k]
                if after:
                    recoveries.append(min(after) - k)
            result = box["r"]
            exactly_once = len(store.tasks(result.run_id)) == args.tasks
    finally:
        sched.kill()
        for lp in loops:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(lp.pid, signal.SIGKILL)
    print(f"failover: {args.tasks} tasks x 50 ms, 2 workers, {len(recoveries)} scheduler kills")
    print("| measure | value |")
    print("|---|---|")
    print(f"| recovery kill -> next task done, median | {statistics.median(recoveries):.2f} s |")
    print(f"| recovery, worst | {max(recoveries):.2f} s |")
    print(f"| undisturbed run | {undisturbed:.1f} s (status {base.status}) |")
    print(f"| run with kills | {faulted:.1f} s (status {result.status}) |")
    print(f"| overhead | {faulted - undisturbed:+.1f} s ({faulted / undisturbed:.2f}x) |")
    print(f"| every task exactly once | {'yes' if exactly_once else 'NO'} |")


if __name__ == "__main__":
    main()
