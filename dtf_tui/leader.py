"""What the header says about the coordinator the console is attached to, and
the banner line when leadership moves (another process now answers).

Pure functions of :class:`~dtf_tui.snapshot.CoordinatorInfo`: the app calls
them with each snapshot.
"""

from __future__ import annotations

import time

from dtf_tui.snapshot import CoordinatorInfo

BANNER_S = 120.0  # how long the "leadership moved" line stays


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "?"


def header_text(label: str, info: CoordinatorInfo | None) -> str:
    """The header's second part: the source, and for a coordinator who leads."""
    if info is None:
        return label
    role = f"leader since {_clock(info.since)}" if info.leader else "NOT the leader"
    standbys = ", ".join(info.standbys) if info.standbys else "none known"
    return f"coordinator {info.url} · {role} · standbys: {standbys}"


def moved(before: CoordinatorInfo | None, now: CoordinatorInfo | None) -> str:
    """The banner line when another process leads than at the last poll, else ""."""
    if before is None or now is None or before.identity == now.identity:
        return ""
    if before.url == now.url:
        what = f"the coordinator at {now.url} restarted (pid {before.pid} → {now.pid})"
    else:
        what = f"leadership moved: {before.url} → {now.url}"
    return f"⇄ {what}; leading since {_clock(now.since)}"
