"""Whole-process start-up: a one-task suite through `dtf-core run` vs a raw LocalCluster script.

What a user waits for from pressing Enter to the prompt. Both sides are fresh Python
processes that start a 2-process cluster (1 thread each) on 127.0.0.1, run one command task
(`python -c pass` in a subprocess) and close. dtf also opens its DuckDB file, stores the
run and prints its line; the raw script does nothing else. Rounds alternate so that both
sides see the same machine; medians with the range. CPU s is each process's CPU with
every process it waited for (its workers, the task's subprocess): what a busy machine
does not stretch.

    .venv/bin/python scripts/bench/startup.py [--rounds 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _measure import spread, timed_process

SUITE = """
[suite]
name = "startup"
[cluster]
workers = {workers}
threads_per_worker = 1
[[task]]
name = "smoke"
kind = "command"
command = ["python", "-c", "pass"]
"""

# The raw side: what a user would write with Dask alone for the same work.
RAW = """
import subprocess, sys
from distributed import Client, LocalCluster

def task():
    return subprocess.run([sys.executable, "-c", "pass"]).returncode

if __name__ == "__main__":
    with LocalCluster(n_workers={workers}, threads_per_worker=1, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        assert client.submit(task).result() == 0
    print("raw PASSED")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        suite = os.path.join(tmp, "startup.toml")
        with open(suite, "w") as f:
            f.write(SUITE.format(workers=args.workers))
        raw = os.path.join(tmp, "raw.py")
        with open(raw, "w") as f:
            f.write(RAW.format(workers=args.workers))
        dtf_cmd = [sys.executable, "-m", "dtf_core.cli", "run", suite, "-q"]
        dtf_cmd += ["--db", os.path.join(tmp, "dtf.duckdb")]
        sides = {
            "python -c pass (interpreter only)": [sys.executable, "-c", "print('PASSED')"],
            "raw LocalCluster script": [sys.executable, raw],
            "dtf-core run (one-task suite)": dtf_cmd,
        }
        times: dict[str, list[float]] = {name: [] for name in sides}
        cpus: dict[str, list[float]] = {name: [] for name in sides}
        for cmd in sides.values():  # warm the file cache; not counted
            timed_process(cmd, tmp)
        for r in range(args.rounds):
            order = list(sides.items())
            if r % 2:
                order.reverse()
            for name, cmd in order:
                wall, cpu = timed_process(cmd, tmp)
                times[name].append(wall)
                cpus[name].append(cpu)
    raw = "raw LocalCluster script"
    raw_med, raw_cpu = statistics.median(times[raw]), statistics.median(cpus[raw])
    print(
        f"startup: {args.workers} worker processes x 1 thread, one command task, "
        f"median (min-max) of {args.rounds} alternated rounds"
    )
    print(f"| {'process':<36} | {'wall s':>18} | {'vs raw':>6} | {'CPU s':>18} | {'vs raw':>6} |")
    print(f"|{'-' * 38}|{'-' * 20}|{'-' * 8}|{'-' * 20}|{'-' * 8}|")
    for name, xs in times.items():
        ratio = statistics.median(xs) / raw_med
        cpu_ratio = statistics.median(cpus[name]) / raw_cpu
        print(
            f"| {name:<36} | {spread(xs):>18} | {ratio:6.2f} "
            f"| {spread(cpus[name]):>18} | {cpu_ratio:6.2f} |"
        )
    for name, xs in times.items():
        print(f"{name}: wall " + ", ".join(f"{t:.2f}" for t in xs))
        print(f"{name}: CPU  " + ", ".join(f"{t:.2f}" for t in cpus[name]))


if __name__ == "__main__":
    main()
