"""Analysis and ingestion at scale: 1,000,000 samples (200 benchmarks x 5,000 runs).

* Analysis: wall time of a full ``trends`` + ``regressions`` pass (per-run
  medians in SQL, change points and trends of every series) against the
  floor, a bare DuckDB ``GROUP BY`` over the same table computing the same
  per-run medians and fetching them to NumPy. Goal: <= 3 s and <= 10x the floor.
  The coarsest ``GROUP BY`` (one row per series) is printed for context.
* Ingestion: samples/s of ``Store.import_samples`` (runs, tasks, attempts and
  samples in one transaction) against DuckDB's own bulk insert of the same
  frame (``CREATE TABLE AS SELECT * FROM frame``). Goal: ratio >= 0.5.

    .venv/bin/python scripts/bench/analysis.py [--benchmarks 200] [--runs 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from dtf_core.analysis.changepoints import find_changes
from dtf_core.analysis.history import load_history
from dtf_core.analysis.trends import find_trends
from dtf_core.store import Store, StoreReader

ROOT = Path(__file__).resolve().parents[2]


def _seed():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("seed_history", ROOT / "scripts/seed_history.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def best_of(rounds: int, fn: Callable[[], object]) -> list[float]:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--benchmarks", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    frame, truth = _seed().make_history(
        args.benchmarks, args.runs, samples=1, seed=7, machines=[("bench-box", True)]
    )
    n = len(frame)
    tmp = tempfile.mkdtemp(prefix="dtf-bench-")

    # ---- ingestion (fresh files each round; median) ----
    def via_store(i: list[int] = [0]) -> None:  # noqa: B006 - a round counter
        i[0] += 1
        with Store(os.path.join(tmp, f"store-{i[0]}.duckdb")) as s:
            s.import_samples(frame, suite="bench", source="bench")

    def via_duckdb(i: list[int] = [0]) -> None:  # noqa: B006
        i[0] += 1
        con = duckdb.connect(os.path.join(tmp, f"raw-{i[0]}.duckdb"))
        con.register("frame", frame)
        con.execute("CREATE TABLE samples AS SELECT * FROM frame")
        con.close()

    raw_in = statistics.median(best_of(args.rounds, via_duckdb))
    dtf_in = statistics.median(best_of(args.rounds, via_store))

    # ---- analysis on the first store file ----
    db = os.path.join(tmp, "store-1.duckdb")
    con = duckdb.connect(db, read_only=True)
    floor_sql = (
        "SELECT run_id, benchmark, params, hardware, median(value) AS v FROM samples GROUP BY ALL"
    )
    floor = statistics.median(best_of(args.rounds, lambda: con.execute(floor_sql).fetchnumpy()))
    coarse_sql = (
        "SELECT benchmark, params, hardware, count(*), avg(value) FROM samples GROUP BY ALL"
    )
    coarse = statistics.median(best_of(args.rounds, lambda: con.execute(coarse_sql).fetchall()))
    con.close()

    found: dict[str, int] = {}

    def full_pass() -> None:
        with StoreReader(db) as s:
            hist = load_history(s)
        changes = find_changes(hist)
        trends = find_trends(hist)
        at = {
            (c["benchmark"], json.dumps(c["params"], sort_keys=True), c["run_id"]) for c in changes
        }
        hits = sum((t["benchmark"], json.dumps(t["params"], sort_keys=True), t["run_id"]) in at
                   for t in truth)  # fmt: skip
        found.update(series=len(hist.keys), points=hist.n_points, changes=len(changes),
                     hits=hits, trends=sum(t["verdict"] != "stable" for t in trends))  # fmt: skip

    analysis = best_of(args.rounds, full_pass)
    wall = statistics.median(analysis)

    print(f"{n:,} samples, {found['series']} series x {args.runs:,} runs; "
          f"{len(truth)} injected shifts, {found['hits']} found at their run, "
          f"{found['changes'] - found['hits']} other shifts; "
          f"{found['trends']} non-stable trends. Median of {args.rounds} rounds.")  # fmt: skip
    print()
    print(f"| {'analysis':<44} | {'wall s':>7} | {'x floor':>7} |")
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 9}|")
    print(f"| {'GROUP BY run x series, median (the floor)':<44} | {floor:7.3f} | {1:7.2f} |")
    print(f"| {'dtf trends + regressions, full pass':<44} | {wall:7.3f} | {wall / floor:7.2f} |")
    print(f"| {'(context) GROUP BY series, avg':<44} | {coarse:7.3f} | {coarse / floor:7.2f} |")
    print()
    print(f"| {'ingestion':<44} | {'wall s':>7} | {'samples/s':>10} | {'ratio':>5} |")
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 12}|{'-' * 7}|")
    print(f"| {'DuckDB CREATE TABLE AS SELECT * FROM frame':<44} | {raw_in:7.3f} |"
          f" {n / raw_in:10,.0f} | {1:5.2f} |")  # fmt: skip
    print(f"| {'Store.import_samples (runs + samples)':<44} | {dtf_in:7.3f} |"
          f" {n / dtf_in:10,.0f} | {raw_in / dtf_in:5.2f} |")  # fmt: skip
    print()
    print("analysis rounds:", ", ".join(f"{t:.3f}" for t in analysis))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
