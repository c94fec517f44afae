"""Error views: counts, recurring patterns and time ranges (pure functions).

A pattern is a message with its variable parts replaced (numbers, addresses,
paths, quoted values), so that "worker tcp://10.0.0.7:4012 died after 31 s"
and "... 10.0.0.9:5120 ... 12 s" count as one recurring problem.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from dtf_tui.snapshot import ErrorEvent, severity_rank

RANGES: dict[str, float] = {"1h": 3600.0, "6h": 6 * 3600.0, "24h": 24 * 3600.0, "7d": 7 * 86400.0}

_RULES = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b[a-z]+://[^\s,;)]+", re.I), "<addr>"),
    (re.compile(r"(?:/[\w.\-]+){2,}/?"), "<path>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
]


@lru_cache(maxsize=8192)
def normalise(message: str) -> str:
    """The message with its variable parts replaced; the first line only.

    Cached: a live view groups the same thousands of messages every second."""
    text = (message.strip().splitlines() or [""])[0]
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return re.sub(r"\s+", " ", text)[:200]


def in_range(errors: Iterable[ErrorEvent], now: float, range_name: str) -> list[ErrorEvent]:
    since = now - RANGES[range_name]
    return [e for e in errors if e.ts >= since]


@dataclass(frozen=True)
class Pattern:
    text: str
    count: int
    category: str
    severity: str  # the worst seen
    workers: int  # distinct workers it happened on
    last_ts: float
    example: str
    # (run_id, task_id, attempt) of the latest occurrence: its system snapshot
    # is what the Errors screen shows under the patterns.
    last_key: tuple[str, str, int] = ("", "", 0)


def patterns(errors: Sequence[ErrorEvent]) -> list[Pattern]:
    """Recurring messages, worst severity first, then the most frequent."""
    groups: dict[tuple[str, str], list[ErrorEvent]] = {}
    for e in errors:
        groups.setdefault((e.category, normalise(e.message)), []).append(e)
    out = [
        Pattern(
            text=text,
            count=len(evs),
            category=category,
            severity=max((e.severity for e in evs), key=severity_rank),
            workers=len({e.worker for e in evs if e.worker}),
            last_ts=max(e.ts for e in evs),
            example=evs[-1].message,
            last_key=max(evs, key=lambda e: e.ts).key,
        )
        for (category, text), evs in groups.items()
    ]
    out.sort(key=lambda p: (-severity_rank(p.severity), -p.count, p.text))
    return out


def by_category(errors: Sequence[ErrorEvent]) -> list[tuple[str, str, int]]:
    """(category, severity, count), worst severity first."""
    counts = Counter((e.category, e.severity) for e in errors)
    return sorted(
        ((c, s, n) for (c, s), n in counts.items()),
        key=lambda r: (-severity_rank(r[1]), -r[2], r[0]),
    )


def by_severity(errors: Sequence[ErrorEvent]) -> dict[str, int]:
    counts = Counter(e.severity for e in errors)
    return {s: counts.get(s, 0) for s in ("critical", "error", "warning")}


def by_field(errors: Sequence[ErrorEvent], field: str) -> list[tuple[str, int, int]]:
    """(worker or hardware, errors, critical errors), most errors first."""
    total: Counter[str] = Counter()
    critical: Counter[str] = Counter()
    for e in errors:
        name = getattr(e, field) or "(none)"
        total[name] += 1
        critical[name] += e.severity == "critical"
    return sorted(((k, n, critical[k]) for k, n in total.items()), key=lambda r: (-r[1], r[0]))
