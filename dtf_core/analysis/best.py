"""The best parameter configuration per benchmark and hardware, and whether it is
significantly best.

Within one run, for each benchmark x hardware with at least two parameter
configurations: the best median (by the benchmark's direction) against the
runner-up, with a one-sided Mann-Whitney U test (is the best better than the
second?), Benjamini-Hochberg across all benchmark x hardware pairs.
``significant`` is true when the adjusted ``q_value`` <= alpha: the top spot
is not a coin toss between near-equals.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from dtf_core.analysis import direction
from dtf_core.analysis.stats import benjamini_hochberg


def best_configurations(samples: pd.DataFrame, alpha: float = 0.05) -> list[dict[str, Any]]:
    """``samples``: a ``Store.samples_of_runs`` frame (usually of one run)."""
    out: list[dict[str, Any]] = []
    for (bench, hw), g in samples.groupby(["benchmark", "hardware"], sort=True):
        configs = {p: v["value"].to_numpy(np.float64) for p, v in g.groupby("params", sort=True)}
        unit = str(g["unit"].mode().iloc[0])
        flags = [v for v in g["higher_is_better"] if isinstance(v, (bool, np.bool_))]
        hib = direction.higher_is_better(unit, flags[0] if flags else None)
        ranked = sorted(configs, key=lambda p: np.median(configs[p]), reverse=hib)
        best = ranked[0]
        row: dict[str, Any] = {
            "benchmark": str(bench),
            "hardware": str(hw),
            "unit": unit,
            "higher_is_better": hib,
            "configurations": len(configs),
            "best": json.loads(best),
            "best_median": float(np.median(configs[best])),
            "runner_up": None,
            "runner_up_median": None,
            "margin": None,
            "p_value": math.nan,
        }
        if len(ranked) > 1:
            second = ranked[1]
            a, b = configs[best], configs[second]
            m2 = float(np.median(b))
            row.update(
                runner_up=json.loads(second),
                runner_up_median=m2,
                margin=abs(row["best_median"] - m2) / abs(m2) if m2 else None,
            )
            if len(a) and len(b) and np.ptp(np.concatenate([a, b])) > 0:
                alt = "greater" if hib else "less"
                row["p_value"] = float(sps.mannwhitneyu(a, b, alternative=alt).pvalue)
        out.append(row)
    qs = benjamini_hochberg([r["p_value"] for r in out])
    for r, q in zip(out, qs, strict=True):
        r["q_value"] = float(q) if math.isfinite(q) else None
        r["p_value"] = r["p_value"] if math.isfinite(r["p_value"]) else None
        r["significant"] = r["q_value"] is not None and r["q_value"] <= alpha
    return out
