"""A real third-party suite: serial pytest vs pytest-xdist vs `dtf-core test`.

The suite is the test suite that ships inside an installed package (networkx by
default: ~5,500 tests, pure Python, installable from PyPI). All four runs use
the same interpreter, the same arguments and the package's own directory, on
this machine, one after another:

    .venv/bin/pip install networkx==3.4.2 pytest-xdist
    .venv/bin/python scripts/bench/pytest_vs_xdist.py [--package networkx] [--rounds 3]

dtf's first run has no history (a fresh database and cache); the second reuses
it. With --rounds N, xdist and both dtf runs are repeated N times, interleaved
(a shared machine drifts: each round measures all three under the same load),
and the table shows the median wall time of each, with the range.

--subset networkx/algorithms runs only that part of the suite (a quick look on
a busy machine); --keep-db PATH keeps the last round's database, to see per
chunk where the time went (attempts.wall_s against the sum of its tests);
--timeline PATH prints that from a kept database and exits. --xdist-freeze adds
a `pytest -n` row whose workers gc.freeze() after collection as dtf's plugin
does (_gcfreeze.py), to show what part of the difference that is.
--variant ENV=VALUE adds a history run with a setting changed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "errors")


def pytest_counts(output: str) -> dict[str, int]:
    lines = [ln for ln in output.strip().splitlines() if re.search(r"\d+ \w+.* in [\d.]+s", ln)]
    counts = dict.fromkeys(OUTCOMES, 0)
    if lines:
        for n, word in re.findall(r"(\d+) (\w+)", lines[-1]):
            key = "errors" if word in ("error", "errors") else word
            if key in counts:
                counts[key] = int(n)
    return counts


CPU: dict[str, list[float]] = {}


def timed(
    argv: list[str], cwd: str, label: str = "", env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess]:
    """Wall time; the CPU seconds of the whole process tree (user + system, as
    reaped: Dask's nanny waits for its worker, the worker for its pytest) go
    to CPU[label]. On two cores CPU spent beside the tests slows the tests."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    CPU.setdefault(label, []).append(cpu)
    return wall, out


def timeline(db: str) -> None:
    """Per run of a kept database: each chunk's start and end (from the run's
    start), wall time, tests, the sum of their durations, and the rest (process
    start, conftest imports, collection, teardown); then per worker the time
    no chunk ran between the run's start and end."""
    import duckdb

    con = duckdb.connect(db, read_only=True)
    runs = con.execute("SELECT run_id, started_at, finished_at FROM runs ORDER BY started_at")
    for run_id, r0, r1 in runs.fetchall():
        rows = con.execute(
            """SELECT a.task_id, a.worker, a.started_at, a.finished_at, a.wall_s,
                      count(t.nodeid), coalesce(sum(t.duration_s), 0)
               FROM attempts a LEFT JOIN test_results t USING (run_id, task_id, attempt)
               WHERE a.run_id = ? GROUP BY ALL ORDER BY a.started_at""",
            [run_id],
        ).fetchall()
        print(f"run {run_id}: {r1 - r0:.1f} s, {len(rows)} pytest processes")
        print("| chunk | worker | start s | end s | wall s | tests | tests s | rest s |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        busy: dict[str, float] = {}
        for task, worker, t0, t1, wall, n, dur in rows:
            busy[worker] = busy.get(worker, 0.0) + (t1 - t0)
            print(f"| {task} | {worker} | {t0 - r0:.1f} | {t1 - r0:.1f} | {wall:.1f} | {n} "
                  f"| {dur:.1f} | {wall - dur:.1f} |")  # fmt: skip
        idle = ", ".join(f"{w} {r1 - r0 - b:.1f} s" for w, b in sorted(busy.items()))
        print(f"no chunk running: {idle}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", default="networkx")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--xdist-freeze", action="store_true", help="add a pytest -n + gc.freeze row")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="ENV=VALUE",
        help="one more history run per round with this environment variable set "
        "(e.g. DASK_DTF__PYTEST__CHUNKS_PER_THREAD=1); history runs alternate who goes first",
    )
    ap.add_argument("--skip-serial", action="store_true")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved repetitions")
    ap.add_argument(
        "--subset",
        default=None,
        help="a path inside the package's directory, e.g. networkx/algorithms (a quick look)",
    )
    ap.add_argument("--keep-db", default=None, help="keep the last round's database here")
    ap.add_argument("--timeline", default=None, help="per chunk, from a kept database")
    args = ap.parse_args()
    if args.timeline:
        timeline(args.timeline)
        return
    spec = importlib.util.find_spec(args.package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"{args.package} is not installed: pip install {args.package}")
    pkg_dir = next(iter(spec.submodule_search_locations))
    cwd = os.path.dirname(pkg_dir)
    py = sys.executable
    target = args.subset or args.package
    common = ["-q", "-p", "no:cacheprovider", target]
    rows: list[tuple[str, list[float], dict[str, int]]] = []
    if not args.skip_serial:
        wall, out = timed([py, "-m", "pytest", *common], cwd, "serial pytest")
        rows.append(("serial pytest", [wall], pytest_counts(out.stdout)))
    xdist_label = f"pytest -n {args.workers}"
    variants = {f"dtf-core test (history, {v})": dict([v.split("=", 1)]) for v in args.variant}
    frozen = f"pytest -n {args.workers} + gc.freeze"
    labels = (xdist_label, "dtf-core test (no history)", "dtf-core test (history)", *variants)
    walls: dict[str, list[float]] = {k: [] for k in labels}
    counts_of: dict[str, dict[str, int]] = {}
    for n in range(args.rounds):
        wall, out = timed([py, "-m", "pytest", "-n", str(args.workers), *common], cwd, xdist_label)
        walls[xdist_label].append(wall)
        counts_of[xdist_label] = pytest_counts(out.stdout)
        if args.xdist_freeze:
            here = os.path.dirname(os.path.abspath(__file__))
            env = {**os.environ, "PYTHONPATH": here}
            argv = [py, "-m", "pytest", "-n", str(args.workers), "-p", "_gcfreeze", *common]
            wall, out = timed(argv, cwd, frozen, env)
            walls.setdefault(frozen, []).append(wall)
            counts_of[frozen] = pytest_counts(out.stdout)
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "bench.duckdb")  # the collection cache lives beside it
            # The history runs (plain and each variant) take turns going first.
            later = list(labels[2:])
            later = later[n % len(later) :] + later[: n % len(later)]
            for label in [labels[1], *later]:
                js = os.path.join(tmp, "s.json")
                argv = [py, "-m", "dtf_core.cli", "test", target, "--workers",
                        str(args.workers), "--db", db, "--json", js, "-q"]  # fmt: skip
                env = {**os.environ, **variants.get(label, {})}
                wall, out = timed(argv, cwd, label, env)
                try:
                    with open(js) as fh:
                        counts = json.load(fh)["counts"]
                except OSError:
                    sys.exit(f"dtf-core test wrote no summary:\n{out.stderr[-3000:]}")
                walls[label].append(wall)
                counts_of[label] = {k: counts.get(k, 0) for k in OUTCOMES}
            if args.keep_db:
                shutil.copy(db, args.keep_db)
    shown = labels[:1] + ((frozen,) if args.xdist_freeze else ()) + labels[1:]
    rows += [(k, walls[k], counts_of[k]) for k in shown]
    xdist = statistics.median(walls[xdist_label])
    reference = rows[0][2]
    total = sum(reference.values())
    print(f"{target}: {total} tests, {args.workers} workers, {os.cpu_count()} cores, "
          f"{args.rounds} round(s), median wall time (range)")  # fmt: skip
    print(
        f"| {'run':<28} | {'wall s':>17} | {'vs xdist':>8} | CPU s | counts match serial | counts |"
    )
    print(f"|{'-' * 30}|{'-' * 19}|{'-' * 10}|{'-' * 7}|{'-' * 21}|{'-' * 8}|")
    for name, ws, counts in rows:
        med = statistics.median(ws)
        spread = f"{med:6.1f} ({min(ws):.0f}-{max(ws):.0f})" if len(ws) > 1 else f"{med:6.1f}"
        match = "yes" if counts == reference else "NO"
        brief = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        cpu = statistics.median(CPU.get(name, [0.0]))
        cells = f"| {name:<28} | {spread:>17} | {med / xdist:8.2f} | {cpu:5.0f} |"
        print(f"{cells} {match:<19} | {brief} |")


if __name__ == "__main__":
    main()
