"""Write a realistic benchmark history into a dtf database, to try the analysis and the TUI.

    .venv/bin/python scripts/seed_history.py                    # .dtf/dtf.duckdb
    .venv/bin/python scripts/seed_history.py --db /tmp/h.duckdb --runs 3000 --truth truth.json

Each run is a nightly run on one machine (round robin over the hardware), with
every benchmark that the machine can run (GPU benchmarks only on the GPU box).
Values are log-normal with 1-4 % noise, 1 % heavy outliers (1.5x-4x: GC,
frequency drops), a slow drift on a few series, and injected level shifts
(regressions and improvements of 8-30 %) at known runs. ``--truth`` writes the
injected shifts as JSON, to check ``dtf-core regressions`` against.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from dtf_core.store import Store

FAMILIES: list[tuple[str, str, dict[str, list[Any]], bool]] = [
    # (name, unit, params, gpu only)
    ("matmul", "s", {"n": [256, 1024, 4096], "dtype": ["f32", "f64"]}, False),
    ("conv2d", "s", {"model": ["resnet50", "vit_b16"], "batch": [1, 32]}, True),
    ("train_step", "s", {"model": ["resnet50", "bert_base"], "batch": [8, 64]}, True),
    ("inference", "items/s", {"model": ["resnet50", "bert_base", "gpt2"], "batch": [1, 16]}, True),
    ("json_parse", "s", {"size": ["1kb", "1mb"]}, False),
    ("sort", "s", {"n": [1_000, 1_000_000]}, False),
    ("fft", "s", {"n": [4096, 65536]}, False),
    ("tokenize", "ops/s", {"lang": ["en", "zh"]}, False),
    ("memcpy", "GB/s", {"size": ["64kb", "64mb"]}, False),
    ("startup", "s", {}, False),
    ("gzip", "s", {"level": [1, 6, 9]}, False),
    ("regex", "s", {"pattern": ["simple", "backtrack"]}, False),
    ("sql_query", "s", {"rows": [1_000, 100_000], "index": [True, False]}, False),
    ("http_roundtrip", "s", {"payload": ["small", "large"]}, False),
]
HARDWARE = [("x86_64 EPYC 7B13 2c", False), ("arm64 Graviton3 4c", False), ("x86_64 A100", True)]


def benchmark_keys(count: int) -> list[dict[str, Any]]:
    """``count`` benchmark x params keys, cycling through the families with suffixes."""
    keys: list[dict[str, Any]] = []
    round_ = 0
    while len(keys) < count:
        for name, unit, grid, gpu in FAMILIES:
            combos: list[dict[str, Any]] = [{}]
            for k, values in sorted(grid.items()):
                combos = [{**c, k: v} for c in combos for v in values]
            for params in combos:
                full = name if round_ == 0 else f"{name}_v{round_ + 1}"
                keys.append({"benchmark": full, "params": params, "unit": unit, "gpu": gpu})
        round_ += 1
    return keys[:count]


def make_history(
    benchmarks: int = 200,
    runs: int = 2000,
    samples: int = 3,
    hardware: int = 3,
    seed: int = 1,
    start: float | None = None,  # default: so that the last run is about now
    every: float = 6 * 3600.0,
    shift_share: float = 0.1,
    machines: list[tuple[str, bool]] | None = None,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The frame ``Store.import_samples`` takes, and the injected shifts.

    ``machines``: (hardware label, has a GPU) pairs instead of the first
    ``hardware`` of :data:`HARDWARE`.
    """
    rng = np.random.default_rng(seed)
    keys = benchmark_keys(benchmarks)
    hws = machines or HARDWARE[: max(1, hardware)]
    run_ids = np.array([f"nightly-{i:05d}" for i in range(runs)], dtype=object)
    run_hw = np.arange(runs) % len(hws)
    if start is None:
        start = time.time() - runs * every
    t0 = start + np.arange(runs) * every + rng.uniform(0, 600, runs)
    commits = np.array([f"{rng.integers(0, 2**63):016x}{i:08x}" for i in range(runs)], dtype=object)
    parts, truth = [], []
    for ki, key in enumerate(keys):
        base = float(rng.lognormal(-5, 2))
        if key["unit"] != "s":
            base = float(rng.lognormal(6, 1))
        for hi, (hw, has_gpu) in enumerate(hws):
            if key["gpu"] and not has_gpu:
                continue
            on = np.flatnonzero(run_hw == hi)
            m = len(on)
            level = np.ones(m) * base * (1 + 0.3 * hi)
            if rng.uniform() < 0.05:  # slow drift, up to +-10 % over the history
                level *= 1 + rng.uniform(-0.1, 0.1) * np.linspace(0, 1, m)
            if rng.uniform() < shift_share and m > 40:
                at = int(rng.integers(20, m - 10))
                size = float(rng.uniform(0.08, 0.3) * rng.choice([-1, 1]))
                level[at:] *= 1 + size
                truth.append(
                    {"benchmark": key["benchmark"], "params": key["params"], "hardware": hw,
                     "run_id": run_ids[on[at]], "change": size}
                )  # fmt: skip
            cv = rng.uniform(0.01, 0.04)
            vals = level[:, None] * rng.lognormal(0, cv, (m, samples))
            outliers = rng.uniform(size=vals.shape) < 0.01
            slow = rng.uniform(1.5, 4.0, vals.shape)
            vals = np.where(outliers, vals / slow if key["unit"] != "s" else vals * slow, vals)
            parts.append((ki, hw, on, vals))
    frames = []
    for ki, hw, on, vals in parts:
        key = keys[ki]
        params = json.dumps(key["params"], sort_keys=True)
        label = key["benchmark"]
        if key["params"]:
            label += "[" + ",".join(f"{k}={v}" for k, v in sorted(key["params"].items())) + "]"
        m, s = vals.shape
        rix = np.repeat(on, s)
        frames.append(
            pd.DataFrame(
                {
                    "run_id": run_ids[rix],
                    "timestamp": t0[rix],
                    "commit": commits[rix],
                    "branch": "main",
                    "python": "3.12.4",
                    "benchmark": key["benchmark"],
                    "params": params,
                    "hardware": hw,
                    "task_id": label,
                    "idx": np.tile(np.arange(s, dtype=np.int32), m),
                    "value": vals.ravel(),
                    "unit": key["unit"],
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    frame["higher_is_better"] = pd.array([pd.NA] * len(frame), dtype="boolean")
    return frame, truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=".dtf/dtf.duckdb")
    ap.add_argument("--benchmarks", type=int, default=200, help="benchmark x params keys")
    ap.add_argument("--runs", type=int, default=1500)
    ap.add_argument(
        "--samples",
        type=int,
        default=5,
        help="samples per benchmark per run (5: enough for compare)",
    )
    ap.add_argument("--hardware", type=int, default=3, choices=[1, 2, 3])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--truth", default=None, help="write the injected shifts here (JSON)")
    args = ap.parse_args(argv)
    began = time.perf_counter()
    frame, truth = make_history(
        args.benchmarks, args.runs, args.samples, args.hardware, seed=args.seed
    )
    with Store(args.db) as store:
        runs, n = store.import_samples(frame, suite="seed", source="scripts/seed_history.py")
    print(
        f"{args.db}: {runs} runs, {n:,} samples, {len(truth)} injected shifts "
        f"in {time.perf_counter() - began:.1f} s"
    )
    if args.truth:
        with open(args.truth, "w", encoding="utf-8") as fh:
            json.dump(truth, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
