"""The analysis part of a run's report: what :func:`dtf_core.reporting.report.build_summary`
adds under ``"analysis"``, and its Markdown.

For a run with benchmark samples:

* ``comparison``: verdicts against the baseline (the previous run of the same
  suite that has samples), as ``dtf-core compare`` gives them;
* ``pivots``: the median per benchmark, parameters x hardware;
* ``best``: the best configuration per benchmark and hardware;
* ``changes`` / ``trends``: level shifts and non-stable trends over the
  history of the series this run measured;
* ``charts``: per-run medians (the last ``CHART_POINTS`` runs) of the series
  worth a look (a shift, a trend or an anomaly), for the HTML report.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from dtf_core.analysis import aggregate, best, compare
from dtf_core.analysis.changepoints import ChangePointOptions, detect, find_changes
from dtf_core.analysis.history import History, load_history
from dtf_core.analysis.trends import find_trends, robust_z
from dtf_core.reporting import render
from dtf_core.reporting.report import humanize
from dtf_core.store import StoreReader

CHART_POINTS = 200
MAX_CHARTS = 12
MAX_ROWS = 50
MAX_PIVOTS = 20


def build(store: StoreReader, run_id: str) -> dict[str, Any] | None:
    samples = store.samples_of_runs([run_id])
    if samples.empty:
        return None
    out: dict[str, Any] = {"baseline": store.baseline_run(run_id), "comparison": None}
    if out["baseline"]:
        opts = compare.CompareOptions()
        rows = compare.compare_runs(store, out["baseline"], run_id, opts)
        out["comparison"] = {
            "counts": render.verdict_counts(rows),
            "rows": [c.to_dict() for c in rows],
        }
    out["pivots"] = pivots(aggregate.aggregate(store, run_ids=[run_id]))
    out["best"] = [b for b in best.best_configurations(samples) if b["configurations"] > 1]
    keys = set(zip(samples["benchmark"], samples["params"], samples["hardware"], strict=True))
    hist = load_history(store)
    mask = [
        k in keys
        for k in zip(
            hist.keys["benchmark"], hist.keys["params"], hist.keys["hardware"], strict=True
        )
    ]
    hist.keys = hist.keys[mask]
    trends = find_trends(hist)
    changes = find_changes(hist)
    out["changes"] = changes[:MAX_ROWS]
    out["trends"] = [t for t in trends if t["verdict"] in ("worsening", "improving")][:MAX_ROWS]
    out["charts"] = charts(hist, trends)
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


def markdown(a: dict[str, Any] | None) -> list[str]:
    if not a:
        return []
    out: list[str] = []
    comp = a.get("comparison")
    if comp:
        rows = [
            compare.Comparison(**{**r, "baseline_ci": None, "run_ci": None}) for r in comp["rows"]
        ]
        out += [
            f"## Compared with `{a['baseline']}`",
            "",
            ", ".join(f"{n} {v}" for v, n in comp["counts"].items()),
            "",
            *render.table(render.COMPARISON_HEAD, render.comparison_rows(rows)),
        ]
    shown = pivots_worth_showing(a.get("pivots") or [])
    if shown:
        out += ["## Pivot: median by parameters x hardware", ""]
        for p in shown:
            out += [f"### {p['benchmark']} ({p['unit']})", "", *render.table(*pivot_table(p))]
    if a.get("best"):
        out += [
            "## Best configuration",
            "",
            *render.table(render.BEST_HEAD, render.best_rows(a["best"])),
        ]
    if a.get("changes"):
        out += [
            "## Level shifts in history",
            "",
            *render.table(render.CHANGES_HEAD, render.changes_rows(a["changes"])),
        ]
    if a.get("trends"):
        out += [
            "## Trends in history",
            "",
            *render.table(render.TRENDS_HEAD, render.trends_rows(a["trends"])),
        ]
    return out


def pivots_worth_showing(pivots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Benchmarks with two or more parameters or machines (a 1 x n pivot is just a list)."""
    return [p for p in pivots if len(p["param_names"]) >= 2 or len(p["hardware"]) >= 2][:MAX_PIVOTS]


def pivot_table(p: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    head = [*p["param_names"], *p["hardware"]]
    rows = [
        [
            *(row["params"].get(k, "") for k in p["param_names"]),
            *(
                humanize(row["cells"].get(hw), p["unit"]) if hw in row["cells"] else "-"
                for hw in p["hardware"]
            ),
        ]
        for row in p["rows"]
    ]
    return head, rows
