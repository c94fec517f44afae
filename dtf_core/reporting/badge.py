"""Badges for a README: the latest run's status or pass rate, or the number of
open benchmark regressions, as a shields.io endpoint document
(``{"schemaVersion": 1, "label", "message", "color"}``) or as a
self-contained SVG for places that cannot reach shields.io (no fonts, images
or links from elsewhere).

``perf`` counts the series whose newest level shift in the history is a
regression (:func:`dtf_core.reporting.ci.open_regressions`, the same verdict
as ``dtf-core regressions --fail-on-regression``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from html import escape
from typing import Any

from dtf_core.errors import OptionError, RunNotFoundError
from dtf_core.reporting.ci import open_regressions
from dtf_core.reporting.summary import build_summary
from dtf_core.store import StoreReader

KINDS = ("status", "passrate", "perf")
FORMATS = ("json", "svg")
# shields.io's named colours, as its own flat badges draw them.
COLORS = {
    "brightgreen": "#4c1", "green": "#97ca00", "yellowgreen": "#a4a61d", "yellow": "#dfb317",
    "orange": "#fe7d37", "red": "#e05d44", "blue": "#007ec6", "lightgrey": "#9f9f9f",
}  # fmt: skip
_STATUS_COLOR = {"passed": "brightgreen", "failed": "red", "error": "red", "running": "blue"}
_COUNTED = ("passed", "failed", "errors", "timeouts", "unschedulable")


@dataclass(frozen=True)
class Badge:
    label: str
    message: str
    color: str  # a key of COLORS

    def endpoint(self) -> dict[str, Any]:
        """The shields.io endpoint document (https://shields.io/badges/endpoint-badge)."""
        return {"schemaVersion": 1, "label": self.label, "message": self.message,
                "color": self.color}  # fmt: skip


def _latest(store: StoreReader, suite: str | None) -> str:
    run_id = store.latest_run_id(suite)
    if run_id is None:
        where = f"of suite '{suite}' " if suite is not None else ""
        raise RunNotFoundError(
            f"no runs {where}in {store.path}; `dtf-core runs --db {store.path}` lists the runs "
            "and their suites"
        )
    return run_id


def status_badge(store: StoreReader, suite: str | None = None) -> Badge:
    status = str(store.get_run(_latest(store, suite))["status"])
    return Badge("dtf", status, _STATUS_COLOR.get(status, "lightgrey"))


def passrate_color(rate: float) -> str:
    for floor, color in ((1.0, "brightgreen"), (0.95, "green"), (0.9, "yellowgreen"),
                         (0.75, "yellow"), (0.5, "orange")):  # fmt: skip
        if rate >= floor:
            return color
    return "red"


def passrate_badge(store: StoreReader, suite: str | None = None) -> Badge:
    """Passed out of passed, failed, errors, timeouts and unschedulable (pytest's
    outcomes: skipped and xfailed count for neither side)."""
    counts = build_summary(store, _latest(store, suite), benchmarks=False)["counts"]
    total = sum(int(counts.get(k) or 0) for k in _COUNTED)
    if total == 0:
        return Badge("tests", "no tests", "lightgrey")
    passed = int(counts.get("passed") or 0)
    rate = passed / total
    # Rounded down: 99.96 % is not 100 %, and a badge must not hide the one failure.
    shown = "100" if passed == total else f"{math.floor(rate * 1000) / 10:.1f}"
    return Badge("tests", f"{shown}% ({passed}/{total})", passrate_color(rate))


def perf_badge(store: StoreReader, suite: str | None = None) -> Badge:
    """Open regressions over the history of every series (of ``suite``'s latest run)."""
    from dtf_core.analysis.changepoints import find_changes
    from dtf_core.analysis.history import load_history

    hist = load_history(store, of_run=None if suite is None else _latest(store, suite))
    if hist.keys.empty:
        return Badge("perf", "no benchmarks", "lightgrey")
    n = len(open_regressions(find_changes(hist)))
    return Badge("perf", f"{n} regression{'' if n == 1 else 's'}", "red" if n else "brightgreen")


_MAKERS = {"status": status_badge, "passrate": passrate_badge, "perf": perf_badge}


def make_badge(store: StoreReader, kind: str = "status", suite: str | None = None) -> Badge:
    if kind not in _MAKERS:
        raise OptionError(f"badge kind {kind!r} is not one of {', '.join(KINDS)}")
    return _MAKERS[kind](store, suite)


def render_badge(badge: Badge, fmt: str = "json") -> str:
    if fmt == "json":
        return json.dumps(badge.endpoint()) + "\n"
    if fmt == "svg":
        return render_svg(badge)
    raise OptionError(f"badge format {fmt!r} is not one of {', '.join(FORMATS)}")


def _text_width(text: str) -> float:
    """Width in px of ``text`` at 11 px Verdana (shields' font), close enough to centre it."""
    width = 0.0
    for ch in text:
        if ch in "ijlI.,:;|!'` ()[]":
            width += 3.9
        elif ch in "mwMW%@":
            width += 10.5
        elif ch.isupper() or ch.isdigit() or ch in "#&?/":
            width += 7.4
        else:
            width += 6.6
    return width


def render_svg(badge: Badge) -> str:
    """A flat badge, as shields.io draws one: grey label, coloured message."""
    label, message = escape(badge.label), escape(badge.message)
    lw = round(_text_width(badge.label) + 10)
    mw = round(_text_width(badge.message) + 10)
    w = lw + mw
    fill = COLORS.get(badge.color, COLORS["lightgrey"])
    title = f"{label}: {message}"
    texts = "".join(
        f'<text x="{x}" y="15" fill="#010101" fill-opacity=".3">{t}</text>'
        f'<text x="{x}" y="14">{t}</text>'
        for x, t in ((lw / 2, label), (lw + mw / 2, message))
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" '
        f'aria-label="{title}"><title>{title}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{fill}"/>'
        f'<rect width="{w}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" '
        'font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f"{texts}</g></svg>\n"
    )
