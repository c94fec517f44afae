"""What loading benchmark code fresh for every run costs, per task and per run.

In one process, no Dask (the cost is on the worker): ``runner.execute_batch``
over tiny one-sample payloads with dtf's per-run loader (dtf_core.codeload)
against the same batch with the callable looked up in a plain dict (what
workers did before: import once per process, then cache); the first load of a
run (read, compile, execute the module); and the alternative, a child process
per task (or per batch) that imports the module.

    .venv/bin/python scripts/bench/fresh_code.py [--tasks 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from dtf_core import codeload, model
from dtf_core.worker import benchmark, runner

HERE = os.path.dirname(os.path.abspath(__file__))


def payloads(run_id: str, root: str, n: int) -> list[model.TaskPayload]:
    spec = model.TaskSpec(
        task_id="tiny", name="tiny", kind=model.TaskKind.BENCHMARK, root=root, timeout=60,
        retries=0, function="_tiny:tiny", repeat=1, warmup=0,
    )  # fmt: skip
    return [model.TaskPayload(run_id, spec, 1, key="b", code_commit="0" * 40) for _ in range(n)]


def per_task_us(batch: list[model.TaskPayload], rounds: int) -> float:
    runner.execute_batch(batch[:1])
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        runner.execute_batch(batch)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / len(batch) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    batch = payloads("bench-fresh", HERE, args.tasks)

    fresh = per_task_us(batch, args.rounds)
    # Before: one import per process, a dict lookup per task, no fingerprint.
    sys.path.insert(0, HERE)
    cached: dict[str, Any] = {"_tiny:tiny": importlib.import_module("_tiny").tiny}

    class _Space:
        def fingerprint(self, module: str) -> str:
            return ""

    real = codeload.load_callable
    benchmark.codeload.load_callable = lambda run, root, fn: (cached[fn], _Space())  # type: ignore[assignment,misc,return-value]
    try:
        old = per_task_us(batch, args.rounds)
    finally:
        benchmark.codeload.load_callable = real  # type: ignore[misc]
        sys.path.remove(HERE)

    with tempfile.TemporaryDirectory() as tmp:
        big = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(1000))
        with open(os.path.join(tmp, "big.py"), "w") as fh:
            fh.write(big)
        first_small, first_big, changed_big = [], [], []
        for r in range(args.rounds * 4):
            t0 = time.perf_counter()
            codeload.load_callable(f"first{r}", HERE, "_tiny:tiny")
            first_small.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            codeload.load_callable(f"first{r}", tmp, "big:f1")
            first_big.append(time.perf_counter() - t0)
            codeload.forget(f"first{r}")
            with open(os.path.join(tmp, "big.py"), "w") as fh:
                fh.write(big + f"# edit {r}\n")  # a new source: compiled again
            t0 = time.perf_counter()
            codeload.load_callable(f"edit{r}", tmp, "big:f1")
            changed_big.append(time.perf_counter() - t0)
            codeload.forget(f"edit{r}")

    codeload.load_callable("hit", HERE, "_tiny:tiny")  # the first load, not timed
    hits = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for _ in range(args.tasks):
            codeload.load_callable("hit", HERE, "_tiny:tiny")[1].fingerprint("_tiny")
        hits.append((time.perf_counter() - t0) / args.tasks)
    codeload.forget("hit")

    child = []
    for _ in range(args.rounds * 2):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import _tiny; _tiny.tiny()"], cwd=HERE, check=True)
        child.append(time.perf_counter() - t0)

    rows = [
        ("in-process, import once per process (before)", f"{old:.1f} us/task"),
        ("in-process, fresh per run (dtf_core.codeload)", f"{fresh:.1f} us/task"),
        (
            "  loader lookup + fingerprint (cache hit)",
            f"{statistics.median(hits) * 1e6:.1f} us/task",
        ),
        ("  first load of a run: 5-line module", f"{statistics.median(first_small) * 1e3:.2f} ms"),
        (
            "  first load, 3,000-line module, unchanged",
            f"{statistics.median(first_big) * 1e3:.2f} ms",
        ),
        (
            "  first load, 3,000-line module, edited",
            f"{statistics.median(changed_big) * 1e3:.2f} ms",
        ),
        ("child process per task (python -c import)", f"{statistics.median(child) * 1e3:.0f} ms"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"| {name:<{width}} | {value:>14} |")


if __name__ == "__main__":
    main()
