"""The body of a pull-request (merge-request) comment: what a reviewer needs
from a run in one screen. The counts, each failure with its node id and the
first line of its message, and each benchmark that regressed against the
baseline with a sparkline of its recent history. The full report stays in the
step summary and the artifacts: a comment that grows with the suite is skipped.

Works from the summary dict alone, like every renderer (``dtf-core submit``
hands it the service's JSON summary).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from dtf_core.reporting.ci import run_regressions, series_label
from dtf_core.reporting.counts import COUNT_KEYS
from dtf_core.reporting.format import humanize, pct, table

MAX_ROWS = 20
MESSAGE_CHARS = 160
# Hidden in the rendered comment: a CI step finds (and updates) its earlier comment by it.
MARKER = "<!-- dtf-pr-comment -->"
_BARS = "▁▂▃▄▅▆▇█"
_ICON = {"passed": "✅", "failed": "❌", "cancelled": "⏹️"}


def sparkline(values: Sequence[float | None]) -> str:
    """One block character per finite value, lowest ``▁`` to highest ``█``; flat is ``▄``."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return ""
    lo, hi = min(xs), max(xs)
    if hi == lo:
        return _BARS[3] * len(xs)
    top = len(_BARS) - 1
    return "".join(_BARS[round((x - lo) / (hi - lo) * top)] for x in xs)


def _short(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= MESSAGE_CHARS else first[: MESSAGE_CHARS - 1] + "…"


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def _series(record: Mapping[str, Any]) -> str:
    return json.dumps(
        [record.get("benchmark"), record.get("params") or {}, record.get("hardware") or ""],
        sort_keys=True,
    )


def _levels(r: Mapping[str, Any]) -> str:
    before, after, unit = r.get("before"), r.get("after"), r.get("unit") or "s"
    if before is None or after is None:
        return ""
    return f"{humanize(before, unit)} -> {humanize(after, unit, before)}"


def _more(rows: list[list[Any]], total: int, width: int) -> list[list[Any]]:
    if total > MAX_ROWS:
        rows.append([f"… and {total - MAX_ROWS} more", *[""] * (width - 1)])
    return rows


def render_pr_comment(summary: Mapping[str, Any]) -> str:
    s = summary
    status = str(s.get("status") or "unknown")
    counts = s.get("counts") or {}
    shown = [f"{counts[k]} {k}" for k in COUNT_KEYS if counts.get(k)]
    out = [
        MARKER,
        f"### {_ICON.get(status, '⚠️')} dtf: {s.get('suite')}: {status.upper()}",
        "",
        f"Run `{s.get('run_id')}`: " + (", ".join(shown) if shown else "nothing ran") + ".",
        "",
    ]
    entries = s.get("failure_details") or s.get("failures") or []
    failures = [f for f in entries if isinstance(f, Mapping)]
    if failures:
        rows: list[list[Any]] = [
            [
                _code(str(f.get("nodeid") or f.get("task_id") or "?")),
                _short(str(f.get("message") or f.get("category") or f.get("outcome") or "failed")),
            ]
            for f in failures[:MAX_ROWS]
        ]
        out += [f"**Failures ({len(failures)})**", ""]
        out += table(["test / task", "message"], _more(rows, len(failures), 2))
    analysis = s.get("analysis") or {}
    regressions = run_regressions(s)
    if regressions:
        lines = {_series(r): sparkline(r.get("values") or []) for r in analysis.get("recent") or []}
        rows = [
            [_code(series_label(r)), pct(r.get("change")), _levels(r), lines.get(_series(r), "")]
            for r in regressions[:MAX_ROWS]
        ]
        out += [
            f"**Regressions against run `{analysis.get('baseline')}` ({len(regressions)})**",
            "",
        ]
        out += table(
            ["benchmark", "change", "baseline -> run", "recent runs"],
            _more(rows, len(regressions), 4),
        )
    elif analysis.get("baseline"):
        out += [f"No benchmark regressed against run `{analysis['baseline']}`.", ""]
    job = ((s.get("metadata") or {}).get("ci") or {}).get("job_url")
    if job:
        out += [f"[The full report is in the job]({job}).", ""]
    return "\n".join(out)
