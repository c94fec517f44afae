"""Dispatch overhead: N tiny benchmark tasks through dtf vs raw Dask doing the same Dask work.

dtf ships in-process benchmark tasks in batches (``dtf.batch``: 20 Dask tasks for 5,000
benchmarks on 2 threads). The fair baseline is raw Dask running **the same batches**
(``client.map`` over the same slices, each a loop of the same calls): the difference is
dtf's own cost (payloads, timing each call, results into DuckDB), reported per task in
microseconds. Raw Dask with one task per benchmark is shown too: what batching saves.

All in-process rows run on one embedded cluster (2 worker processes, 1 thread each,
127.0.0.1), alternating, so the machine's state is the same for all. The whole-process row
starts a fresh ``dtf-core run`` of the same suite against a fresh raw script that starts a
LocalCluster and maps the same batches: what a user waits for.

    .venv/bin/python scripts/bench/dispatch.py [--tasks 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import cloudpickle

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _tiny  # noqa: E402

from dtf_core import config  # noqa: E402
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


def batches(n: int, threads: int) -> list[list[int]]:
    """The slices dtf's coordinator makes of n benchmark tasks (run/coordinator.py)."""
    n_batches = min(n, threads * int(config.get("batch.per-thread")))
    size = min(max(1, math.ceil(n / max(1, n_batches))), int(config.get("batch.max-size")))
    return [list(range(i, min(n, i + size))) for i in range(0, n, size)]


def run_raw(client, n: int) -> float:
    t0 = time.perf_counter()
    futures = client.map(_tiny.tiny, range(n), pure=False)
    client.gather(futures)
    return time.perf_counter() - t0


def run_raw_batched(client, n: int, threads: int) -> float:
    t0 = time.perf_counter()
    futures = client.map(_tiny.tiny_batch, batches(n, threads), pure=False)
    client.gather(futures)
    return time.perf_counter() - t0


SUITE = """
[suite]
name = "dispatch"
[cluster]
workers = 2
threads_per_worker = 1
[[task]]
name = "tiny"
kind = "benchmark"
function = "_tiny:tiny"
params = {{ i = {items} }}
repeat = 1
warmup = 0
"""

RAW_PROCESS = """
import sys
sys.path.insert(0, {here!r})
import _tiny
from distributed import Client, LocalCluster
if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        client.upload_file({tiny!r})
        out = client.gather(client.map(_tiny.tiny_batch, {batches!r}, pure=False))
        assert sum(map(len, out)) == {n}
    print("raw PASSED")
"""


def whole_process(tmp: str, n: int) -> tuple[float, float]:
    """Seconds for a fresh `dtf-core run` and a fresh raw script, each end to end."""
    suite = os.path.join(tmp, "dispatch.toml")
    with open(suite, "w") as f:
        f.write(SUITE.format(items=list(range(n))))
    with open(_tiny.__file__) as src, open(os.path.join(tmp, "_tiny.py"), "w") as f:
        f.write(src.read())
    raw = os.path.join(tmp, "raw.py")
    with open(raw, "w") as f:
        f.write(
            RAW_PROCESS.format(
                here=tmp, tiny=os.path.join(tmp, "_tiny.py"), batches=batches(n, 2), n=n
            )
        )
    db = os.path.join(tmp, "whole.duckdb")
    walls = []
    for cmd in (
        [sys.executable, "-m", "dtf_core.cli", "run", suite, "-q", "--db", db],
        [sys.executable, raw],
    ):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600)
        walls.append(time.perf_counter() - t0)
        if out.returncode != 0 or "PASSED" not in out.stdout:
            sys.exit(f"{cmd} failed (rc {out.returncode}):\n{out.stdout}\n{out.stderr}")
    return walls[0], walls[1]


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
    n = args.tasks
    plans = cluster.plan_workers(2, 1, [])
    threads = sum(p.nthreads for p in plans)
    times: dict[str, list[float]] = {"raw1": [], "rawb": [], "dtf": [], "pdtf": [], "praw": []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        Store(os.path.join(tmp, "bench.duckdb")) as store,
        cluster.open_cluster(None, plans=plans) as handle,
    ):
        client = handle.client
        run_raw(client, 200)  # warm every path: imports, connections
        run_raw_batched(client, 200, threads)
        run_dtf(client, store, 200)
        for r in range(args.rounds):
            times["raw1"].append(run_raw(client, n))
            times["rawb"].append(run_raw_batched(client, n, threads))
            t, samples, status = run_dtf(client, store, n)
            times["dtf"].append(t)
            if samples != n or status != "passed":
                sys.exit(f"round {r}: {samples} samples stored (status {status}), not {n}")
        for _ in range(args.rounds):
            pdtf, praw = whole_process(tmp, n)
            times["pdtf"].append(pdtf)
            times["praw"].append(praw)
    med = {k: statistics.median(v) for k, v in times.items()}
    n_batches = len(batches(n, threads))
    print(
        f"dispatch: {n} tiny benchmark tasks, 2 worker processes x 1 thread, "
        f"median (min-max) of {args.rounds} alternated rounds"
    )
    print(f"| {'path':<44} | {'Dask tasks':>10} | {'wall s':>19} | {'vs same batches':>15} |")
    print(f"|{'-' * 46}|{'-' * 12}|{'-' * 21}|{'-' * 17}|")
    rows = [
        ("raw client.map, same batches as dtf", n_batches, "rawb", "rawb"),
        ("dtf Coordinator.run (all samples in DuckDB)", n_batches, "dtf", "rawb"),
        ("raw client.map, one Dask task per benchmark", n, "raw1", "rawb"),
        ("whole process: raw script, same batches", n_batches, "praw", "praw"),
        ("whole process: dtf-core run", n_batches, "pdtf", "praw"),
    ]
    for name, tasks, key, base in rows:
        xs = times[key]
        cell = f"{med[key]:.3f} ({min(xs):.3f}-{max(xs):.3f})"
        print(f"| {name:<44} | {tasks:>10} | {cell:>19} | {med[key] / med[base]:>15.2f} |")
    own = (med["dtf"] - med["rawb"]) / n * 1e6
    print(f"dtf's own cost per task: {own:.0f} us (dtf minus raw with the same batches, / {n})")
    for key, xs in times.items():
        print(f"{key} rounds: " + ", ".join(f"{t:.3f}" for t in xs))


if __name__ == "__main__":
    main()
