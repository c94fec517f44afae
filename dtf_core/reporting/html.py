"""The HTML report: one self-contained file (inline CSS and SVG, no scripts).

Built from the same summary dict as the Markdown and JSON reports, so it needs
no database; the analysis sections reuse the Markdown tables' rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from dtf_core.reporting import render, svg, workers
from dtf_core.reporting.format import humanize, params_label, when
from dtf_core.reporting.jsonout import jsonable
from dtf_core.reporting.syscontext import context_rows

_CSS = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#111}"
    "table{border-collapse:collapse;margin:8px 0 18px}td,th{border:1px solid #ddd;"
    "padding:3px 8px;text-align:left;font-variant-numeric:tabular-nums}th{background:#f3f4f6}"
    "h1{font-size:22px}h2{font-size:17px;margin-top:28px}"
    ".regressed,.regression,.worsening,.failed{color:#b91c1c;font-weight:600}"
    ".improved,.improvement,.improving,.passed{color:#15803d;font-weight:600}"
    ".charts{display:flex;flex-wrap:wrap;gap:8px}.muted{color:#666}"
    "pre{margin:0;white-space:pre-wrap}.context{margin:4px 0}" + svg.CSS
)
_MARKED = frozenset(
    {"regressed", "regression", "worsening", "improved", "improvement", "improving", "failed",
     "passed"}
)  # fmt: skip


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        text = "" if v is None else str(v)
        cls = f' class="{text}"' if text in _MARKED else ""
        return f"<td{cls}>{escape(text)}</td>"

    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _ci(ci: dict[str, Any]) -> str:
    """The CI context under the title, as the Markdown report writes it (``markdown._ci_line``)."""
    if not ci.get("provider"):
        return ""
    branch = f"branch <code>{escape(str(ci.get('branch') or '?'))}</code>"
    if ci.get("target_branch"):
        branch += f" -&gt; <code>{escape(str(ci['target_branch']))}</code>"
    parts = [f"{escape(str(ci['provider']))}: {branch}"]
    if ci.get("pr"):
        parts.append(("MR !" if ci["provider"] == "gitlab" else "PR #") + escape(str(ci["pr"])))
    if ci.get("commit"):
        parts.append(f"commit <code>{escape(str(ci['commit'])[:12])}</code>")
    if ci.get("job_url"):
        parts.append(f"<a href='{escape(str(ci['job_url']), quote=True)}'>job</a>")
    return f"<p class='muted'>{', '.join(parts)}</p>"


def _dashboard(link: Any) -> str:
    """Dask's dashboard of the cluster the run used, as the Markdown report names it."""
    if not link:
        return ""
    href = escape(str(link), quote=True)
    return f"<p class='muted'>Dask dashboard: <a href='{href}'>{escape(str(link))}</a></p>"


def render_html(summary: dict[str, Any]) -> str:
    """One self-contained HTML file: the run, its analysis and inline SVG charts."""
    s = jsonable(summary)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>dtf: {escape(str(s['suite']))}</title><style>{_CSS}</style></head><body>",
        f"<h1>dtf: {escape(str(s['suite']))}: "
        f"<span class='{escape(s['status'])}'>{escape(s['status'].upper())}</span></h1>",
        f"<p class='muted'>Run <code>{escape(s['run_id'])}</code>, started "
        f"{escape(when(s['started_at']))}</p>",
        _ci((s.get("metadata") or {}).get("ci") or {}),
        _dashboard((s.get("metadata") or {}).get("dashboard")),
        "<h2>Counts</h2>",
        _table(list(s["counts"])[:-1], [[v for k, v in s["counts"].items() if k != "tasks"]]),
    ]
    if s.get("failures"):
        rows = [[f["category"], f["nodeid"] or f["task_id"], f["message"], f["worker"]]
                for f in s["failures"]]  # fmt: skip
        parts += [
            "<h2>Failures</h2>",
            _table(["category", "task / test", "message", "worker"], rows),
            *_contexts(s.get("contexts") or [], int(s.get("contexts_omitted") or 0)),
        ]
    if s.get("benchmarks"):
        rows = [
            [b["benchmark"], params_label(b["params"]), b["hardware"], b["n"],
             humanize(b["median"], b["unit"]),
             f"{humanize(b['ci_low'], b['unit'], b['median'])} to "
             f"{humanize(b['ci_high'], b['unit'], b['median'])}"]
            for b in s["benchmarks"]
        ]  # fmt: skip
        head = ["benchmark", "params", "hardware", "n", "median", "95% CI"]
        parts += ["<h2>Benchmarks</h2>", _table(head, rows)]
    if s.get("workers"):
        parts += ["<h2>Workers</h2>", _table(workers.HEAD, workers.rows(s["workers"]))]
    parts += _analysis(s.get("analysis"))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _contexts(contexts: list[dict[str, Any]], omitted: int) -> list[str]:
    """Each failed attempt's system snapshot, folded (``<details>``) under the failures."""
    out = []
    for c in contexts:
        rows = "".join(
            f"<tr><th>{escape(label)}</th><td><pre>{escape(value)}</pre></td></tr>"
            for label, value in context_rows(c["context"])
        )
        out.append(
            f"<details class='context'><summary>System context: <code>{escape(c['task_id'])}"
            f"</code> attempt {escape(str(c['attempt']))} on {escape(c['worker'] or '?')}"
            f"</summary><table>{rows}</table></details>"
        )
    if omitted:
        out.append(f"<p class='muted'>{omitted} more failed attempt(s) have a system context.</p>")
    return out


def _analysis(a: dict[str, Any] | None) -> list[str]:
    if not a:
        return []
    out: list[str] = []
    comp, choice = a.get("comparison"), a.get("baseline_choice")
    why = f"<p class='muted'>{escape(render.baseline_line(choice))}</p>" if choice else ""
    if comp:
        rows = render.comparisons(comp["rows"])
        counts = ", ".join(f"{n} {v}" for v, n in comp["counts"].items())
        out += [
            f"<h2>Compared with <code>{escape(a['baseline'])}</code></h2>{why}"
            f"<p>{escape(counts)}</p>",
            _table(render.COMPARISON_HEAD, render.comparison_rows(rows)),
        ]
    elif choice:
        out.append(f"<h2>Compared with a baseline</h2>{why}")
    shown = render.pivots_worth_showing(a.get("pivots") or [])
    if shown:
        out.append("<h2>Pivot: median by parameters x hardware</h2>")
        for p in shown:
            out += [f"<h3>{escape(p['benchmark'])} ({escape(p['unit'])})</h3>",
                    _table(*render.pivot_table(p))]  # fmt: skip
    if a.get("best") or a.get("untuned"):
        out.append("<h2>Best tuned setting</h2>")
        if a.get("best"):
            out.append(_table(render.BEST_HEAD, render.best_rows(a["best"])))
        if a.get("untuned"):
            out.append(f"<p class='muted'>{escape(render.untuned_line(a['untuned']))}</p>")
    if a.get("charts"):
        out.append(
            "<h2>History</h2><p class='muted'>Per-run medians; dashed: level shift;"
            " red: anomaly; blue wedge: forecast with 95% interval.</p><div class='charts'>"
        )
        for c in a["charts"]:
            params = params_label(c["params"])
            title = f"{c['benchmark']} {params} @ {c['hardware']} [{c['unit']}]"
            out.append(
                svg.line_chart(
                    c["values"],
                    title=title[:90],
                    changes=c["changes"],
                    anomalies=c["anomalies"],
                    band=(c["forecast"][0], c["forecast"][1], c["forecast"][2])
                    if c["forecast"]
                    else None,
                )
            )
        out.append("</div>")
    if a.get("changes"):
        out += ["<h2>Level shifts in history</h2>",
                _table(render.CHANGES_HEAD, render.changes_rows(a["changes"]))]  # fmt: skip
    if a.get("trends"):
        out += ["<h2>Trends in history</h2>",
                _table(render.TRENDS_HEAD, render.trends_rows(a["trends"]))]  # fmt: skip
    return out
