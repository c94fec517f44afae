"""Tables of analysis results: the rows and headers that the analysis commands print as
Markdown and that the run reports (Markdown and HTML) show in their analysis sections."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dtf_core.reporting.format import humanize, params_label, pct, pval, table, when

if TYPE_CHECKING:
    from dtf_core.analysis.compare import CompareOptions, Comparison

# ``analysis.compare`` (and scipy with it) is imported inside the comparison functions: a report
# without a comparison must not pay for it.

MAX_PIVOTS = 20


def comparisons(rows: Sequence[dict[str, Any]]) -> list[Comparison]:
    """Comparisons back from a summary's JSON-ready rows (their intervals left out)."""
    from dtf_core.analysis.compare import Comparison

    return [Comparison(**{**r, "baseline_ci": None, "run_ci": None}) for r in rows]


def comparison_rows(rows: Sequence[Comparison]) -> list[list[Any]]:
    from dtf_core.analysis.compare import VERDICTS

    rank = {v: i for i, v in enumerate(VERDICTS)}
    ordered = sorted(rows, key=lambda c: (rank[c.verdict], -abs(c.change or 0.0)))
    return [
        [
            c.verdict,
            c.benchmark,
            params_label(c.params),
            c.hardware,
            humanize(c.baseline, c.unit),
            humanize(c.run, c.unit, c.baseline),
            pct(c.change),
            pval(c.q_value),
            f"{c.n_baseline}/{c.n_run}",
        ]
        for c in ordered
    ]


COMPARISON_HEAD = [
    "verdict",
    "benchmark",
    "params",
    "hardware",
    "baseline",
    "run",
    "change",
    "q",
    "n",
]


def comparison_markdown(
    rows: Sequence[Comparison], choice: dict[str, Any], run: str, opts: CompareOptions
) -> str:
    """``choice``: the baseline (``analysis.baseline.Baseline.to_dict()``)."""
    from dtf_core.analysis.compare import verdict_counts

    counts = verdict_counts(rows)
    stat = "median (Mann-Whitney U)" if opts.test == "mannwhitney" else "mean (Welch's t)"
    if not choice.get("run_id"):
        return "\n".join([f"# Compare `{run}` with its baseline", "", baseline_line(choice), ""])
    out = [
        f"# Compare `{run}` with baseline `{choice['run_id']}`",
        "",
        baseline_line(choice),
        "",
        ", ".join(f"{n} {v}" for v, n in counts.items()),
        "",
        f"Statistic: {stat}; Benjamini-Hochberg FDR {opts.alpha:g};"
        f" effect floor {pct(opts.min_effect, signed=False)}. q: adjusted p-value.",
        "",
    ]
    if rows:
        out += table(COMPARISON_HEAD, comparison_rows(rows))
    else:
        out += ["No benchmark samples in either run.", ""]
    return "\n".join(out)


CHANGES_HEAD = ["when", "kind", "benchmark", "params", "hardware", "change", "before", "after",
                "run", "commit", "p"]  # fmt: skip


def changes_rows(changes: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            when(c["started_at"]),
            c["kind"],
            c["benchmark"],
            params_label(c["params"]),
            c["hardware"],
            pct(c["change"]),
            humanize(c["before"], c["unit"]),
            humanize(c["after"], c["unit"], c["before"]),
            c["run_id"],
            (c["commit"] or "")[:12],
            pval(c["p_value"]),
        ]
        for c in changes
    ]


def changes_markdown(changes: Sequence[dict[str, Any]], series: int, points: int) -> str:
    n_reg = sum(c["kind"] == "regression" for c in changes)
    out = [
        "# Level shifts over history",
        "",
        f"{len(changes)} shift(s) ({n_reg} regressions) in {series} series, {points:,} run"
        " medians. Newest first; change: of the median, after vs before.",
        "",
    ]
    if changes:
        out += table(CHANGES_HEAD, changes_rows(changes))
    return "\n".join(out)


TRENDS_HEAD = ["verdict", "benchmark", "params", "hardware", "n", "median", "per day",
               "over window", "q", "anomalies", "forecast (95% PI)"]  # fmt: skip


def trends_rows(trends: Sequence[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for t in trends:
        unit, med = t["unit"], t["median"]
        f = t.get("forecast")
        fc = (
            f"{humanize(f['value'], unit, med)} ({humanize(f['low'], unit, med)} to "
            f"{humanize(f['high'], unit, med)})"
            if f
            else "n/a"
        )
        rows.append(
            [
                t["verdict"],
                t["benchmark"],
                params_label(t["params"]),
                t["hardware"],
                t["n"],
                humanize(med, unit),
                pct(t.get("rel_slope_per_day")),
                pct(t.get("change_over_window")),
                pval(t.get("q_value")),
                t.get("anomalies", 0),
                fc,
            ]
        )
    return rows


def trends_markdown(trends: Sequence[dict[str, Any]], shown: Sequence[dict[str, Any]]) -> str:
    n = Counter(t["verdict"] for t in trends)
    out = [
        "# Trends",
        "",
        ", ".join(f"{k} {v}" for k, v in sorted(n.items())) or "No series.",
        "",
        "Theil-Sen slope, Mann-Kendall test (q: BH-adjusted); anomalies: |robust z| > 3.5"
        " within a level segment.",
        "",
    ]
    if shown:
        out += table(TRENDS_HEAD, trends_rows(shown))
    return "\n".join(out)


def stats_markdown(groups: Sequence[dict[str, Any]], by: Sequence[str]) -> str:
    head = [*by, "unit", "n", "median", "95% CI", "mean", "stdev", "MAD", "p5", "p95"]
    rows = []
    for g in groups:
        u, med = g["unit"], g["median"]
        keys = [params_label(g[d]) if d == "params" else g[d] for d in by]
        rows.append(
            [
                *keys,
                u,
                g["n"],
                humanize(med, u),
                f"{humanize(g['ci_low'], u, med)} to {humanize(g['ci_high'], u, med)}",
                humanize(g["mean"], u, med),
                humanize(g["stdev"], u, med),
                humanize(g["mad"], u, med),
                humanize(g["p5"], u, med),
                humanize(g["p95"], u, med),
            ]
        )
    return "\n".join(["# Sample statistics", "", *table(head, rows)])


BEST_HEAD = ["benchmark", "input", "hardware", "best setting", "median", "runner-up", "margin",
             "q", "verdict"]  # fmt: skip
NO_TUNABLE = "no tunable settings"


def best_rows(best: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """One row per benchmark x input x hardware with tuned settings to rank."""
    return [
        [
            b["benchmark"],
            params_label(b["input"]),
            b["hardware"],
            params_label(b["best"]),
            humanize(b["best_median"], b["unit"]),
            params_label(b["runner_up"]) if b["runner_up"] is not None else "-",
            pct(b["margin"], signed=False),
            pval(b["q_value"]),
            ("significant" if b["significant"] else "not significant")
            if b["runner_up"] is not None
            else "one setting measured",
        ]
        for b in best
    ]


def untuned_line(names: Sequence[str]) -> str:
    """The explicit line for benchmarks whose suite tunes nothing."""
    return f"{', '.join(names)}: {NO_TUNABLE} (add `tune = {{ ... }}` to the benchmark's table)."


def best_markdown(best: Sequence[dict[str, Any]], untuned: Sequence[str], run_id: str) -> str:
    out = [f"# Best tuned setting in `{run_id}`", ""]
    if best:
        out += table(BEST_HEAD, best_rows(best))
    if untuned or not best:
        out += [untuned_line(untuned) if untuned else f"No benchmarks: {NO_TUNABLE}.", ""]
    return "\n".join(out)


def baseline_line(b: dict[str, Any]) -> str:
    """``baseline: run 41 (main, 2026-11-30, latest passed on target branch main)``."""
    if not b.get("run_id"):
        return f"baseline: none ({b['reason']})"
    day = when(b.get("started_at"))[:10]
    return f"baseline: run {b['run_id']} ({b.get('branch') or 'no branch'}, {day}, {b['reason']})"


def pivots_worth_showing(pivots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Benchmarks with two or more parameters or machines (a 1 x n pivot is just a list)."""
    return [p for p in pivots if len(p["param_names"]) >= 2 or len(p["hardware"]) >= 2][:MAX_PIVOTS]


def pivot_table(p: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """One pivot of the summary as a header and rows: parameters, then a median per hardware."""
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
