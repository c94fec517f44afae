"""Workers with their health, as a table: the reports' Workers section and
``dtf-core workers`` write them the same way.

A worker is a dict with ``name`` and, when known, ``health``: the last row of
``worker_health`` for it (:class:`~dtf_core.store.WorkerHealthRecord`), or
what ``dtf-core workers --scheduler`` put together from the heartbeats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dtf_core.reporting.format import when

HEAD = ["name", "health", "since", "speed", "cpu", "mem", "load", "disk free", "gpu", "reason"]


def _bytes(n: float | None) -> str:
    if n is None:
        return ""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _gpus(gpus: Sequence[Mapping[str, Any]] | None) -> str:
    parts = []
    for g in gpus or ():
        bits = []
        if g.get("util_pct") is not None:
            bits.append(f"{g['util_pct']:.0f}%")
        if g.get("temp_c") is not None:
            bits.append(f"{g['temp_c']:.0f}°C")
        parts.append(" ".join(bits) or "?")
    return ", ".join(parts)


def cells(name: str, h: Mapping[str, Any] | None) -> list[str]:
    """One worker's row under :data:`HEAD` (``h``: its health, None when unknown)."""
    if not h:
        return [name, "unknown", "", "", "", "", "", "", "", "no health recorded"]
    speed = h.get("rel_speed")
    load, ncpu = h.get("load1"), h.get("ncpu")
    return [
        name,
        str(h.get("state") or "unknown"),
        when(h.get("since")) if h.get("since") else "",
        f"{speed:.2f}x" if speed else "",
        f"{h['cpu_pct']:.0f}%" if h.get("cpu_pct") is not None else "",
        f"{h['mem_pct']:.0f}%" if h.get("mem_pct") is not None else "",
        (f"{load:.1f}" + (f"/{ncpu}" if ncpu else "")) if load is not None else "",
        _bytes(h.get("disk_free_bytes")),
        _gpus(h.get("gpus")),
        str(h.get("reason") or ""),
    ]


def rows(workers: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    return [cells(str(w.get("name") or w.get("address") or "?"), w.get("health")) for w in workers]


def render_text(workers: Sequence[Mapping[str, Any]]) -> str:
    """Aligned columns for a terminal; the reason last, whole."""
    table = [HEAD, *rows(workers)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEAD) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in table
    ]
    return "\n".join(line.rstrip() for line in lines)
