"""Dispatch overhead: N tiny benchmark tasks through dtf vs raw Dask doing the same Dask work.

dtf ships in-process benchmark tasks in batches (``dtf.batch``: 20 Dask tasks for 5,000
benchmarks on 2 threads). The fair baseline is raw Dask running **the same batches**
(``client.map`` over the same slices, each a loop of the same calls): the difference is
dtf's own cost (payloads, timing each call, results into DuckDB), reported per task in
microseconds. Raw Dask with one task per benchmark is shown too: what batching saves.

All in-process rows run on one embedded cluster (2 worker processes, 1 thread each,
127.0.0.1), alternating, so the machine's state is the same for all. The whole-process
rows start a fresh ``dtf-core run`` of the same suite against fresh raw scripts that
start a LocalCluster of the same shape and map the same batches, or one Dask task per
benchmark (what a user without dtf would write): what a user waits for, start-up
included, alternating per round, with each process's CPU seconds (its workers included).

    .venv/bin/python scripts/bench/dispatch.py [--tasks 5000] [--rounds 3]
        [--whole-tasks 2000] [--skip-in-process] [--skip-whole]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time

import cloudpickle

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _tiny  # noqa: E402
from _measure import spread, timed_process  # noqa: E402

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
        {work}
    print("raw PASSED")
"""
SAME_BATCHES = (
    "out = client.gather(client.map(_tiny.tiny_batch, {batches!r}, pure=False)); "
    "assert sum(map(len, out)) == {n}"
)
ONE_EACH = (
    "out = client.gather(client.map(_tiny.tiny, range({n}), pure=False)); assert len(out) == {n}"
)

WHOLE = {
    "pdtf": "whole process: dtf-core run",
    "prawb": "whole process: raw script, same batches",
    "praw1": "whole process: raw script, one Dask task each",
}


def whole_process_commands(tmp: str, n: int) -> dict[str, list[str]]:
    """A fresh `dtf-core run` of n tiny benchmarks and two fresh raw scripts doing the
    same: the same batches through client.map, and one Dask task per benchmark."""
    suite = os.path.join(tmp, "dispatch.toml")
    with open(suite, "w") as f:
        f.write(SUITE.format(items=list(range(n))))
    tiny = os.path.join(tmp, "_tiny.py")
    with open(_tiny.__file__) as src, open(tiny, "w") as f:
        f.write(src.read())
    cmds = {"pdtf": [sys.executable, "-m", "dtf_core.cli", "run", suite, "-q"]}
    cmds["pdtf"] += ["--db", os.path.join(tmp, "whole.duckdb")]
    for key, work in (("prawb", SAME_BATCHES), ("praw1", ONE_EACH)):
        script = os.path.join(tmp, f"{key}.py")
        with open(script, "w") as f:
            body = work.format(batches=batches(n, 2), n=n)
            f.write(RAW_PROCESS.format(here=tmp, tiny=tiny, work=body))
        cmds[key] = [sys.executable, script]
    return cmds


def run_dtf(client, store: Store, n: int) -> tuple[float, int, str]:
    suite = make_suite(n)
    coord = Coordinator(client, store, embedded=True)
    t0 = time.perf_counter()
    result = coord.run(suite)
    elapsed = time.perf_counter() - t0
    samples = len(store.benchmark_samples(result.run_id))
    return elapsed, samples, result.status


def in_process(n: int, rounds: int, times: dict[str, list[float]]) -> None:
    """dtf's Coordinator and raw Dask on one embedded cluster, alternating."""
    plans = cluster.plan_workers(2, 1, [])
    threads = sum(p.nthreads for p in plans)
    with (
        tempfile.TemporaryDirectory() as tmp,
        Store(os.path.join(tmp, "bench.duckdb")) as store,
        cluster.open_cluster(None, plans=plans) as handle,
    ):
        client = handle.client
        run_raw(client, 200)  # warm every path: imports, connections
        run_raw_batched(client, 200, threads)
        run_dtf(client, store, 200)
        for r in range(rounds):
            times["raw1"].append(run_raw(client, n))
            times["rawb"].append(run_raw_batched(client, n, threads))
            t, samples, status = run_dtf(client, store, n)
            times["dtf"].append(t)
            if samples != n or status != "passed":
                sys.exit(f"round {r}: {samples} samples stored (status {status}), not {n}")


def whole_processes(
    n: int, rounds: int, times: dict[str, list[float]], cpus: dict[str, list[float]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmds = whole_process_commands(tmp, n)
        for r in range(rounds):
            order = list(cmds.items())
            for key, cmd in order[::-1] if r % 2 else order:
                wall, cpu = timed_process(cmd, tmp)
                times[key].append(wall)
                cpus[key].append(cpu)
            os.remove(os.path.join(tmp, "whole.duckdb"))  # each run starts from an empty file


def cell(xs: list[float]) -> str:
    return spread(xs, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--whole-tasks", type=int, default=None, help="default: --tasks")
    ap.add_argument("--skip-in-process", action="store_true")
    ap.add_argument("--skip-whole", action="store_true")
    args = ap.parse_args()
    n, wn = args.tasks, args.whole_tasks or args.tasks
    times: dict[str, list[float]] = {k: [] for k in ("raw1", "rawb", "dtf", *WHOLE)}
    cpus: dict[str, list[float]] = {k: [] for k in WHOLE}
    if not args.skip_in_process:
        in_process(n, args.rounds, times)
    if not args.skip_whole:
        whole_processes(wn, args.rounds, times, cpus)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    if not args.skip_in_process:
        nb = len(batches(n, 2))
        print(
            f"dispatch in process: {n} tiny benchmark tasks, 2 worker processes x 1 thread, "
            f"one cluster, median (min-max) of {args.rounds} alternated rounds"
        )
        print(f"| {'path':<44} | {'Dask tasks':>10} | {'wall s':>23} | {'vs same batches':>15} |")
        print(f"|{'-' * 46}|{'-' * 12}|{'-' * 25}|{'-' * 17}|")
        for name, tasks, key in (
            ("raw client.map, same batches as dtf", nb, "rawb"),
            ("dtf Coordinator.run (all samples in DuckDB)", nb, "dtf"),
            ("raw client.map, one Dask task per benchmark", n, "raw1"),
        ):
            ratio = med[key] / med["rawb"]
            print(f"| {name:<44} | {tasks:>10} | {cell(times[key]):>23} | {ratio:>15.2f} |")
        own = (med["dtf"] - med["rawb"]) / n * 1e6
        print(f"dtf's own cost per task: {own:.0f} us (dtf minus raw with the same batches, / {n})")
    if not args.skip_whole:
        nb = len(batches(wn, 2))
        print(
            f"\ndispatch as whole processes (start-up included): {wn} tiny benchmark tasks, "
            f"median (min-max) of {args.rounds} alternated rounds"
        )
        head = f"| {'process':<46} | {'Dask tasks':>10} | {'wall s':>23} | {'CPU s':>23} |"
        print(head + f" {'dtf vs it':>9} |")
        print(f"|{'-' * 48}|{'-' * 12}|{'-' * 25}|{'-' * 25}|{'-' * 11}|")
        for key, tasks in (("prawb", nb), ("praw1", wn), ("pdtf", nb)):
            vs = "" if key == "pdtf" else f"{med['pdtf'] / med[key]:.2f}"
            print(
                f"| {WHOLE[key]:<46} | {tasks:>10} | {cell(times[key]):>23} "
                f"| {cell(cpus[key]):>23} | {vs:>9} |"
            )
        own = (med["pdtf"] - med["prawb"]) / wn * 1e6
        print(f"dtf's own cost per task, start-up included: {own:.0f} us (vs same batches)")
    for key, xs in times.items():
        if xs:
            print(f"{key} rounds: " + ", ".join(f"{t:.3f}" for t in xs))


if __name__ == "__main__":
    main()
