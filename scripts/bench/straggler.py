"""Straggler mitigation: a suite of half-second commands on two workers, one of
them throttled to about 1 % of a CPU and still heart-beating.

Each task is a command that spins for ``--cpu`` seconds of CPU time (CPU, not
wall time: a sleeping task is not slowed by a throttled CPU). The slow worker's
tasks are held to ~1 % of a CPU by stop/continue cycles at real-time priority
(``tests/support/throttle.py``); the worker itself still answers the scheduler.

Rows (wall time of the run, and its ratio to the first row):

* healthy alone: the suite on one healthy worker;
* healthy + slow, without mitigation: ``--speculation off`` (the health
  monitor still watches; what a run did before dtf moved and copied stragglers);
* healthy + slow, with mitigation: the default.

Goal: with mitigation <= 1.1x healthy alone.

    .venv/bin/python scripts/bench/straggler.py [--tasks 60] [--cpu 0.5] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from dtf_core.cluster import embedded as cluster
from dtf_core.model import Suite, TaskKind, TaskSpec
from dtf_core.run.coordinator import Coordinator
from dtf_core.store import Store

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from support.throttle import Throttle  # noqa: E402

SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {cpu}: pass\n"


def suite(n: int, cpu: float, root: str) -> Suite:
    tasks = [
        TaskSpec(
            task_id=f"spin[i={i}]", name="spin", kind=TaskKind.COMMAND, root=root,
            timeout=3600.0, retries=0, params={"i": i},
            command=[sys.executable, "-c", SPIN.format(cpu=cpu)],
        )
        for i in range(n)
    ]  # fmt: skip
    return Suite("straggler", os.path.join(root, "suite.toml"), tasks)


def one_run(n: int, cpu: float, workers: int, slow: bool, speculation: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        plans = cluster.plan_workers(workers, 1, [])
        with cluster.open_cluster(None, plans=plans) as handle, Store(Path(tmp) / "s.db") as store:
            coord = Coordinator(handle.client, store, embedded=True, speculation=speculation)
            if not slow:
                return coord.run(suite(n, cpu, tmp)).duration_s
            by_name = {w["name"]: a for a, w in cluster.current_workers(handle.client).items()}
            address = by_name["dtf-1"]
            pid = int(handle.client.run(os.getpid, workers=[address])[address])
            with Throttle(pid):
                return coord.run(suite(n, cpu, tmp)).duration_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=60)
    ap.add_argument("--cpu", type=float, default=0.5, help="CPU seconds per task")
    ap.add_argument("--rounds", type=int, default=1, help="runs per row (the median is shown)")
    args = ap.parse_args()
    rows = [
        ("healthy alone", 1, False, True),
        ("healthy + slow, without mitigation", 2, True, False),
        ("healthy + slow, with mitigation", 2, True, True),
    ]
    # Rounds interleave the rows, so that a machine getting busier or quieter
    # during the benchmark moves every row alike.
    walls: list[list[float]] = [[] for _ in rows]
    for _ in range(args.rounds):
        for i, (_, workers, slow, spec) in enumerate(rows):
            walls[i].append(one_run(args.tasks, args.cpu, workers, slow, spec))
    print(f"{args.tasks} tasks of {args.cpu:g} CPU-s; the slow worker at ~1 % of a CPU; "
          f"median of {args.rounds} round(s)\n")  # fmt: skip
    print("| scenario | wall (s) | vs healthy alone |")
    print("|---|---:|---:|")
    base = statistics.median(walls[0])
    for (label, *_), w in zip(rows, walls, strict=True):
        wall = statistics.median(w)
        print(f"| {label} | {wall:.1f} | {wall / base:.2f}x |")


if __name__ == "__main__":
    main()
