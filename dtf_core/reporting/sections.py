"""The analysis part of a run's summary: what :func:`dtf_core.reporting.summary.build_summary`
adds under ``"analysis"`` (the Markdown and HTML reports render it).

For a run with benchmark samples:

* ``baseline`` / ``baseline_choice``: the run compared with and why
  (:mod:`dtf_core.analysis.baseline`: by default the latest passed run on the
  target branch, else the default branch, else the run's own, same hardware);
* ``comparison``: verdicts against it, as ``dtf-core compare`` gives them;
* ``pivots``: the median per benchmark, parameters x hardware;
* ``best``: the best tuned setting per benchmark, input and hardware;
  ``untuned``: the benchmarks that tune nothing;
* ``changes`` / ``trends``: level shifts and non-stable trends over the
  history of the series this run measured;
* ``charts``: per-run medians (the last ``CHART_POINTS`` runs) of the series
  worth a look (a shift, a trend or an anomaly), for the HTML report;
* ``recent``: per-run medians up to this run (the last ``RECENT_POINTS``) of
  each benchmark that regressed against the baseline, for the sparklines of a
  pull-request comment.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from dtf_core.analysis import aggregate, baseline, best, compare
from dtf_core.analysis.baseline import BaselineSpec
from dtf_core.analysis.changepoints import ChangePointOptions, detect, find_changes
from dtf_core.analysis.history import History, load_history
from dtf_core.analysis.trends import find_trends, robust_z
from dtf_core.store import StoreReader

CHART_POINTS = 200
MAX_CHARTS = 12
MAX_ROWS = 50
RECENT_POINTS = 20


def build(
    store: StoreReader, run_id: str, spec: BaselineSpec | None = None
) -> dict[str, Any] | None:
    samples = store.samples_of_runs([run_id])
    if samples.empty:
        return None
    choice = baseline.select(store, run_id, spec or baseline.AUTO)
    out: dict[str, Any] = {
        "baseline": choice.run_id,
        "baseline_choice": choice.to_dict(),
        "comparison": None,
    }
    if choice.run_id and choice.run_id != run_id:
        opts = compare.CompareOptions()
        rows = compare.compare_runs(store, choice.run_id, run_id, opts)
        out["comparison"] = {
            "counts": compare.verdict_counts(rows),
            "rows": [c.to_dict() for c in rows],
        }
    out["pivots"] = pivots(aggregate.aggregate(store, run_ids=[run_id]))
    tuned = store.tuned_settings([run_id])
    out["best"] = best.best_configurations(samples, tuned)
    out["untuned"] = best.untuned(samples, tuned)
    hist = load_history(store, of_run=run_id)
    trends = find_trends(hist)
    changes = find_changes(hist)
    out["changes"] = changes[:MAX_ROWS]
    out["trends"] = [t for t in trends if t["verdict"] in ("worsening", "improving")][:MAX_ROWS]
    out["charts"] = charts(hist, trends)
    regressed = [
        r for r in (out["comparison"] or {}).get("rows", []) if r["verdict"] == "regressed"
    ]
    out["recent"] = recent(hist, run_id, regressed)
    return out


def _key(benchmark: str, params: dict[str, Any], hardware: str) -> str:
    return json.dumps([benchmark, params, hardware or ""], sort_keys=True)


def recent(hist: History, run_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last ``RECENT_POINTS`` per-run medians, up to ``run_id``, of the series in ``rows``."""
    wanted = {_key(r["benchmark"], r["params"], r["hardware"]) for r in rows}
    if not wanted:
        return []
    here = np.flatnonzero(hist.runs["run_id"].to_numpy() == run_id)
    last = int(here[0]) if len(here) else len(hist.runs)
    out = []
    for s in hist:
        if _key(s.benchmark, s.params, s.hardware) in wanted:
            x = s.x[s.rix <= last][-RECENT_POINTS:]
            out.append({**s.key(), "values": [float(v) for v in x]})
    return out


def pivots(df: Any) -> list[dict[str, Any]]:
    """Per benchmark: one row per parameter combination, one median per hardware."""
    out = []
    for bench, g in df.groupby("benchmark", sort=True):
        hardware = sorted(set(g["hardware"]))
        rows: dict[str, dict[str, Any]] = {}
        for r in g.itertuples(index=False):
            row = rows.setdefault(r.params, {"params": json.loads(r.params), "cells": {}})
            row["cells"][r.hardware] = float(r.median)
        names = sorted({k for row in rows.values() for k in row["params"]})
        out.append(
            {
                "benchmark": str(bench),
                "unit": str(g["unit"].iloc[0]),
                "param_names": names,
                "hardware": hardware,
                "rows": list(rows.values()),
            }
        )
    return out


def charts(hist: History, trends: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key = {
        (t["benchmark"], json.dumps(t["params"], sort_keys=True), t["hardware"]): t for t in trends
    }
    picked = []
    for s in hist:
        t = by_key.get((s.benchmark, json.dumps(s.params, sort_keys=True), s.hardware), {})
        x = s.x[-CHART_POINTS:]
        start = len(s.x) - len(x)
        cps = [c.index - start for c in detect(s.x, ChangePointOptions()) if c.index > start]
        z = robust_z(x, cps)
        anomalies = [int(i) for i in np.flatnonzero(np.abs(z) > 3.5)]
        interesting = bool(cps) or t.get("verdict") in ("worsening", "improving") or anomalies
        if not interesting:
            continue
        f = t.get("forecast")
        picked.append(
            {
                **s.key(),
                "values": [float(v) for v in x],
                "changes": cps,
                "anomalies": anomalies,
                "forecast": [f["value"], f["low"], f["high"]] if f else None,
                "verdict": t.get("verdict"),
                "first_run": hist.run(int(s.rix[start]))["run_id"],
                "last_run": hist.run(int(s.rix[-1]))["run_id"],
            }
        )
    # Shifts first, then trends, then anomalies alone.
    picked.sort(key=lambda c: (not c["changes"], c["verdict"] == "stable", c["benchmark"]))
    return picked[:MAX_CHARTS]
