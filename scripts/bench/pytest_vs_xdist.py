"""A real third-party suite: serial pytest vs pytest-xdist vs `dtf-core test`.

The suite is the test suite that ships inside an installed package (networkx by
default: ~5,500 tests, pure Python, installable from PyPI). All four runs use
the same interpreter, the same arguments and the package's own directory, on
this machine, one after another:

    .venv/bin/pip install networkx==3.4.2 pytest-xdist
    .venv/bin/python scripts/bench/pytest_vs_xdist.py [--package networkx] [--workers 2]

dtf's first run has no history (a fresh database); the second reuses it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
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


def timed(argv: list[str], cwd: str) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", default="networkx")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-serial", action="store_true")
    args = ap.parse_args()
    spec = importlib.util.find_spec(args.package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"{args.package} is not installed: pip install {args.package}")
    pkg_dir = next(iter(spec.submodule_search_locations))
    cwd = os.path.dirname(pkg_dir)
    py = sys.executable
    common = ["-q", "-p", "no:cacheprovider", args.package]
    rows: list[tuple[str, float, dict[str, int]]] = []
    if not args.skip_serial:
        wall, out = timed([py, "-m", "pytest", *common], cwd)
        rows.append(("serial pytest", wall, pytest_counts(out.stdout)))
    wall, out = timed([py, "-m", "pytest", "-n", str(args.workers), *common], cwd)
    rows.append((f"pytest -n {args.workers}", wall, pytest_counts(out.stdout)))
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.duckdb")
        for label in ("dtf-core test (no history)", "dtf-core test (history)"):
            js = os.path.join(tmp, "s.json")
            argv = [py, "-m", "dtf_core.cli", "test", args.package, "--workers",
                    str(args.workers), "--db", db, "--json", js, "-q"]  # fmt: skip
            wall, out = timed(argv, cwd)
            try:
                with open(js) as fh:
                    counts = json.load(fh)["counts"]
            except OSError:
                sys.exit(f"dtf-core test wrote no summary:\n{out.stderr[-3000:]}")
            rows.append((label, wall, {k: counts.get(k, 0) for k in OUTCOMES}))
    xdist = rows[-3][1]
    reference = rows[0][2]
    total = sum(reference.values())
    print(f"{args.package}: {total} tests, {args.workers} workers, {os.cpu_count()} cores")
    print(f"| {'run':<28} | {'wall s':>7} | {'vs xdist':>8} | counts match serial | counts |")
    print(f"|{'-' * 30}|{'-' * 9}|{'-' * 10}|{'-' * 21}|{'-' * 8}|")
    for name, wall, counts in rows:
        match = "yes" if counts == reference else "NO"
        brief = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        print(f"| {name:<28} | {wall:7.1f} | {wall / xdist:8.2f} | {match:<19} | {brief} |")


if __name__ == "__main__":
    main()
