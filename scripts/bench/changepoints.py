"""Recall and false alarms of the change-point detector on labelled histories.

Each history is a series of per-run medians: ``--samples`` samples per run
with per-sample noise of 1-5 % (normal, drawn per series), 8 % outlier runs
(the whole run slow, x1.1-1.6: a noisy neighbour) and 1-3 level shifts of
3-12 % (either sign) at least 15 runs apart. Pure-noise series have no shift.
A found change point is a hit when it lies within ``--tolerance`` runs of a
true one (each true one matched once).

Detectors: dtf with the old fixed 5 % floor, a fixed 2 % floor, and the
adaptive floor (the default), and, when ``ruptures`` is installed (it is not a
dependency: ``pip install ruptures`` into your venv), PELT with the L2 and L1
costs and the penalty BIC-style from the series' own robust noise, the
calibration PELT needs. Seeded: the same command prints the same table.

    .venv/bin/python scripts/bench/changepoints.py [--series 200] [--noise-series 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dtf_core.analysis.changepoints import ChangePointOptions, detect, run_noise

Detector = Callable[[np.ndarray], list[int]]


@dataclass
class Labelled:
    x: np.ndarray
    truth: list[int]


def history(rng: np.random.Generator, *, shifts: bool, samples: int) -> Labelled:
    n = int(rng.integers(60, 241))
    sigma = rng.uniform(0.01, 0.05)
    level = np.ones(n)
    truth: list[int] = []
    if shifts:
        k = min(int(rng.integers(1, 4)), n // 15 - 1)
        # k + 1 segments of at least 15 runs; the slack spread at random among them
        gaps = 15 + rng.multinomial(n - 15 * (k + 1), np.full(k + 1, 1.0 / (k + 1)))
        truth = [int(c) for c in np.cumsum(gaps)[:-1]]
        for cp in truth:
            level[cp:] *= 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.03, 0.12)
    raw = level[:, None] * (1.0 + sigma * rng.standard_normal((n, samples)))
    x = np.median(raw, axis=1)
    slow = rng.random(n) < 0.08
    x[slow] *= rng.uniform(1.1, 1.6, int(slow.sum()))
    return Labelled(x=100.0 * x, truth=truth)


def matches(found: list[int], truth: list[int], tol: int) -> int:
    left, hits = list(truth), 0
    for f in found:
        near = [t for t in left if abs(t - f) <= tol]
        if near:
            left.remove(min(near, key=lambda t: abs(t - f)))
            hits += 1
    return hits


def dtf(opts: ChangePointOptions) -> Detector:
    return lambda x: [c.index for c in detect(x, opts)]


def pelt(model: str, beta: float) -> Detector | None:
    try:
        import ruptures  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None

    def run(x: np.ndarray) -> list[int]:
        sd = run_noise(x) * float(np.median(x))
        scale = sd * sd if model == "l2" else sd
        algo = ruptures.Pelt(model=model, min_size=5, jump=1).fit(x)
        bkps = algo.predict(pen=max(beta * scale * math.log(len(x)), 1e-9))
        return [int(b) for b in bkps[:-1]]

    return run


def evaluate(det: Detector, shifted: list[Labelled], noise: list[Labelled], tol: int) -> list[str]:
    tp = fp = fn = 0
    for h in shifted:
        found = det(h.x)
        hit = matches(found, h.truth, tol)
        tp, fp, fn = tp + hit, fp + len(found) - hit, fn + len(h.truth) - hit
    alarms = sum(1 for h in noise if det(h.x))
    prec = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return [f"{prec:.3f}", f"{rec:.3f}", f"{f1:.3f}", f"{20 * alarms / len(noise):.2f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=200, help="series with shifts")
    ap.add_argument("--noise-series", type=int, default=200, help="series without")
    ap.add_argument("--samples", type=int, default=10, help="samples per run")
    ap.add_argument("--tolerance", type=int, default=5, help="runs a hit may be off")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--factors", default="", help="also try these noise factors (1.5,2.5)")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    shifted = [history(rng, shifts=True, samples=a.samples) for _ in range(a.series)]
    noise = [history(rng, shifts=False, samples=a.samples) for _ in range(a.noise_series)]
    dets: list[tuple[str, Detector | None]] = [
        ("dtf, fixed floor 5 % (old default)", dtf(ChangePointOptions(min_shift=0.05))),
        ("dtf, fixed floor 2 % (--min-shift 0.02)", dtf(ChangePointOptions(min_shift=0.02))),
        ("dtf, adaptive floor (default)", dtf(ChangePointOptions())),
    ]
    for f in filter(None, a.factors.split(",")):
        dets.append((f"dtf, adaptive, factor {f}", dtf(ChangePointOptions(noise_factor=float(f)))))
    for model, beta in (("l2", 3.0), ("l2", 10.0), ("l1", 2.0), ("l1", 4.0)):
        dets.append((f"ruptures PELT {model}, pen {beta:g} x noise x log n", pelt(model, beta)))
    truth = sum(len(h.truth) for h in shifted)
    print(
        f"{a.series} series with {truth} shifts, {a.noise_series} pure-noise series, "
        f"{a.samples} samples/run, tolerance {a.tolerance} runs, seed {a.seed}\n"
    )
    head = ["detector", "precision", "recall", "F1", "false alarms / 20 noise series"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, det in dets:
        if det is None:
            print(f"| {name} | ruptures not installed | | | |")
            continue
        print("| " + " | ".join([name, *evaluate(det, shifted, noise, a.tolerance)]) + " |")


if __name__ == "__main__":
    main()
