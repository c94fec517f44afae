"""The end of a run on the terminal, in the shape pytest users read first.

pytest ends with the tracebacks of its failures, a "short test summary info"
with one ``FAILED node_id - first line of the message`` per failure (``ERROR``
for errors) and the counts line. ``dtf-core test`` and ``dtf-core run`` end the
same way, from the run's summary (:func:`dtf_core.reporting.report.build_summary`),
so a failing CI log shows what failed without opening a report.
"""

from __future__ import annotations

import shutil
from typing import Any

# pytest's own order of the counts line; dtf's task-level buckets follow.
_ORDER = (
    ("failed", "failed"), ("passed", "passed"), ("skipped", "skipped"),
    ("xfailed", "xfailed"), ("xpassed", "xpassed"), ("errors", "error"),
    ("timeouts", "timed out"), ("unschedulable", "unschedulable"), ("cancelled", "cancelled"),
    ("flaky", "flaky"),
)  # fmt: skip


def _rule(title: str, char: str, width: int) -> str:
    title = f" {title} " if title else ""
    left = max(3, (width - len(title)) // 2)
    return (char * left + title + char * max(3, width - left - len(title)))[: max(width, 20)]


def _first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def counts_line(counts: dict[str, Any]) -> str:
    """``1 failed, 50 passed`` (pytest's words and order; plurals as pytest: ``2 errors``)."""
    parts = []
    for key, word in _ORDER:
        n = int(counts.get(key) or 0)
        if n:
            parts.append(f"{n} {word}{'s' if word == 'error' and n > 1 else ''}")
    return ", ".join(parts) or "no tests ran"


def short_summary(
    summary: dict[str, Any], *, tb: str = "short", limit: int = 3, width: int | None = None
) -> str:
    """The closing block of a run: tracebacks of the first ``limit`` failures
    (unless ``tb`` is ``no`` or ``line``), one line per failure, the counts."""
    width = width or min(shutil.get_terminal_size((80, 24)).columns, 120)
    failures = list(summary.get("failures") or [])
    out: list[str] = []
    with_details = [f for f in failures if f.get("details")]
    if tb not in ("no", "line") and with_details:
        out.append(_rule("FAILURES", "=", width))
        for f in with_details[:limit]:
            name = (f.get("nodeid") or f.get("task_id") or "").rpartition("::")[2]
            out.append(_rule(name, "_", width))
            out.append(str(f["details"]).rstrip())
        if len(with_details) > limit:
            more = len(with_details) - limit
            out.append(f"... {more} more failure(s) with tracebacks: see the run's report")
    if failures:
        out.append(_rule("short test summary info", "=", width))
        for f in failures:
            word = "ERROR" if f.get("outcome") == "error" else "FAILED"
            target = f.get("nodeid") or f.get("task_id") or "?"
            message = _first_line(str(f.get("message") or "")) or str(f.get("category") or "")
            out.append(f"{word} {target}" + (f" - {message}" if message else ""))
    tail = counts_line(summary.get("counts") or {})
    seconds = summary.get("duration_s")
    if seconds is not None:
        tail += f" in {float(seconds):.2f}s"
    out.append(_rule(tail, "=", width))
    return "\n".join(out)
