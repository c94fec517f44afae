"""Dispatch overhead: N tiny benchmark tasks through dtf vs raw client.map + gather.

Both sides run on the same embedded cluster (2 worker processes, 1 thread each,
127.0.0.1), alternating, so the machine's state is the same for both. dtf's
wall time includes writing every sample, attempt and task row to DuckDB.

    .venv/bin/python scripts/bench/dispatch.py [--tasks 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import cloudpickle

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _tiny  # noqa: E402

from dtf_core.cluster import embedded as cluster  # noqa: E402
from dtf_core.model import Suite, TaskKind, TaskSpec  # noqa: E402
from dtf_core.run.coordinator import Coordinator  # noqa: E402
from dtf_core.store import Store  # noqa: E402

# Raw Dask must ship the function by value: workers do not have scripts/bench on sys.path.
cloudpickle.register_pickle_by_value(_tiny)


def make_suite(n: int) -> Suite:
    tasks = [
        TaskSpec(
            task_id=f"tiny[i={i}]",
            name="tiny",
            kind=TaskKind.BENCHMARK,
            root=HERE,
            timeout=60.0,
            retries=0,
            function="_tiny:tiny",
            params={"i": i},
            repeat=1,
            warmup=0,
        )
        for i in range(n)
    ]
    return Suite(name="dispatch", path=os.path.join(HERE, "dispatch.py"), tasks=tasks)


def run_raw(client, n: int) -> float:
    t0 = time.perf_counter()
    futures = client.map(_tiny.tiny, range(n), pure=False)
    client.gather(futures)
    return time.perf_counter() - t0


def run_dtf(client, store: Store, n: int) -> tuple[float, int, str]:
    suite = make_suite(n)
    coord = Coordinator(client, store, embedded=True)
    t0 = time.perf_counter()
    result = coord.run(suite)
    elapsed = time.perf_counter() - t0
    samples = len(store.benchmark_samples(result.run_id))
    return elapsed, samples, result.status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    plans = cluster.plan_workers(2, 1, [])
    raw_times: list[float] = []
    dtf_times: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        Store(os.path.join(tmp, "bench.duckdb")) as store,
        cluster.open_cluster(None, plans=plans) as handle,
    ):
        client = handle.client
        run_raw(client, 200)  # warm both paths: imports, connections
        run_dtf(client, store, 200)
        for r in range(args.rounds):
            raw_times.append(run_raw(client, args.tasks))
            t, samples, status = run_dtf(client, store, args.tasks)
            dtf_times.append(t)
            if samples != args.tasks or status != "passed":
                sys.exit(f"round {r}: {samples} samples stored (status {status}), not {args.tasks}")
    raw, dtf = statistics.median(raw_times), statistics.median(dtf_times)
    print(
        f"dispatch: {args.tasks} tiny tasks, 2 worker processes x 1 thread, median of {args.rounds}"
    )
    print(f"| {'path':<32} | {'wall s':>8} | {'tasks/s':>9} | {'ratio':>6} |")
    print(f"|{'-' * 34}|{'-' * 10}|{'-' * 11}|{'-' * 8}|")
    rows = [
        ("raw client.map + gather", raw, 1.0),
        ("dtf run (all samples in DuckDB)", dtf, dtf / raw),
    ]
    for name, wall, ratio in rows:
        print(f"| {name:<32} | {wall:8.3f} | {args.tasks / wall:9.0f} | {ratio:6.2f} |")
    print("raw rounds:", ", ".join(f"{t:.3f}" for t in raw_times))
    print("dtf rounds:", ", ".join(f"{t:.3f}" for t in dtf_times))


if __name__ == "__main__":
    main()
