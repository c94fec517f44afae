"""The best tunable setting per benchmark, input and hardware, and whether it is
significantly best.

A suite separates what is tuned from what is measured (``tune`` beside
``params`` in a benchmark's table, docs/suite-format.md): ``n = [64, 128]`` is
the problem, ``block = [32, 64]`` the knob. Ranking every parameter
combination together would name the smaller problem "best" (it is faster, not
better), so settings are ranked only *within* one input (the values of the
non-tuned parameters) on one hardware. A benchmark without ``tune`` has no best
setting: it gets no row, and callers say so (:func:`untuned`).

For each benchmark x input x hardware: the best median (by the benchmark's
direction) against the runner-up, with a one-sided Mann-Whitney U test (is the
best better than the second?), Benjamini-Hochberg across all rows.
``significant`` is true when the adjusted ``q_value`` <= alpha: the top spot is
not a coin toss between near-equals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from dtf_core.analysis import direction
from dtf_core.analysis.stats import benjamini_hochberg


def untuned(samples: pd.DataFrame, tuned: Mapping[str, Sequence[str]]) -> list[str]:
    """Benchmarks in ``samples`` whose suite declares no tunable setting."""
    return sorted({str(b) for b in samples["benchmark"]} - set(tuned)) if len(samples) else []


def best_configurations(
    samples: pd.DataFrame, tuned: Mapping[str, Sequence[str]], alpha: float = 0.05
) -> list[dict[str, Any]]:
    """``samples``: a ``Store.samples_of_runs`` frame (usually of one run);
    ``tuned``: per benchmark, the names of its tuned parameters
    (``Store.tuned_settings``). One row per benchmark x input x hardware."""
    out: list[dict[str, Any]] = []
    for (bench, hw), g in samples.groupby(["benchmark", "hardware"], sort=True):
        knobs = set(tuned.get(str(bench), ()))
        if not knobs:
            continue
        unit = str(g["unit"].mode().iloc[0])
        flags = [v for v in g["higher_is_better"] if isinstance(v, (bool, np.bool_))]
        hib = direction.higher_is_better(unit, flags[0] if flags else None)
        inputs: dict[str, dict[str, np.ndarray]] = {}
        for p, v in g.groupby("params", sort=True):
            params = json.loads(str(p) or "{}")
            inp = json.dumps({k: x for k, x in params.items() if k not in knobs}, sort_keys=True)
            setting = json.dumps({k: x for k, x in params.items() if k in knobs}, sort_keys=True)
            inputs.setdefault(inp, {})[setting] = v["value"].to_numpy(np.float64)
        for inp, settings in inputs.items():
            out.append(_rank(str(bench), str(hw), json.loads(inp), settings, unit, hib))
    qs = benjamini_hochberg([r["p_value"] for r in out])
    for r, q in zip(out, qs, strict=True):
        r["q_value"] = float(q) if math.isfinite(q) else None
        r["p_value"] = r["p_value"] if math.isfinite(r["p_value"]) else None
        r["significant"] = r["q_value"] is not None and r["q_value"] <= alpha
    return out


def _rank(
    bench: str,
    hw: str,
    given: dict[str, Any],
    settings: dict[str, np.ndarray],
    unit: str,
    hib: bool,
) -> dict[str, Any]:
    ranked = sorted(settings, key=lambda s: float(np.median(settings[s])), reverse=hib)
    best = ranked[0]
    row: dict[str, Any] = {
        "benchmark": bench,
        "input": given,
        "hardware": hw,
        "unit": unit,
        "higher_is_better": hib,
        "configurations": len(settings),  # tuned settings measured for this input
        "best": json.loads(best),
        "best_median": float(np.median(settings[best])),
        "runner_up": None,
        "runner_up_median": None,
        "margin": None,
        "p_value": math.nan,
    }
    if len(ranked) > 1:
        a, b = settings[best], settings[ranked[1]]
        m2 = float(np.median(b))
        row.update(
            runner_up=json.loads(ranked[1]),
            runner_up_median=m2,
            margin=abs(row["best_median"] - m2) / abs(m2) if m2 else None,
        )
        if len(a) and len(b) and np.ptp(np.concatenate([a, b])) > 0:
            alt = "greater" if hib else "less"
            row["p_value"] = float(sps.mannwhitneyu(a, b, alternative=alt).pvalue)
    return row
