"""Sample statistics per any grouping, computed in DuckDB.

Groups are any of :data:`~dtf_core.store.AGG_DIMENSIONS` (benchmark, params,
hardware, run_id, suite, commit, branch, python) and ``param:NAME`` for one
parameter, so that ``hardware x param:model x param:batch`` is one call. Per
group: n, mean, median, stdev, MAD (unscaled), p5, p95 and the
distribution-free 95 % interval of the median (the same order statistics as
:func:`~dtf_core.analysis.stats.median_ci`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dtf_core.analysis.stats import median_ci_ranks
from dtf_core.errors import OptionError
from dtf_core.store import AGG_DIMENSIONS, StoreReader

DEFAULT_BY = ("benchmark", "params", "hardware")


def parse_by(text: str) -> list[str]:
    names = [b.strip() for b in text.split(",") if b.strip()]
    for name in names:
        if name in AGG_DIMENSIONS:
            continue
        if name.startswith("param:") and name[6:].isidentifier():
            continue
        known = ", ".join(AGG_DIMENSIONS)
        raise OptionError(f"--by {name!r}: group by {known}, or param:NAME for one parameter")
    if not names:
        raise OptionError("--by needs at least one dimension, e.g. benchmark,params,hardware")
    return names


def aggregate(
    store: StoreReader,
    by: Sequence[str] = DEFAULT_BY,
    *,
    run_ids: Sequence[str] | None = None,
    benchmark: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    parse_by(",".join(by))

    def ranks(ns: np.ndarray) -> pd.DataFrame:
        lo, hi = median_ci_ranks(ns, confidence)
        return pd.DataFrame({"n": ns, "lo": lo, "hi": hi})

    return store.aggregate_samples(list(by), ranks, run_ids=run_ids, benchmark=benchmark)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows (``params`` parsed back into an object)."""
    out = df.replace({np.nan: None}).to_dict("records")
    for r in out:
        if isinstance(r.get("params"), str):
            r["params"] = json.loads(r["params"])
    return out
