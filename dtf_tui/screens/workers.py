"""Workers: resources, status, health (healthy / degraded / quarantined and
why), CPU and memory sparklines, running tasks and the errors seen on each;
the link to Dask's dashboard when one is on."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Static

from dtf_tui.screens.base import SnapshotScreen
from dtf_tui.snapshot import ClusterSnapshot, ErrorEvent, WorkerInfo
from dtf_tui.widgets.spark import human_bytes, sparkline
from dtf_tui.widgets.vtable import Cell, Column, VirtualTable

_WORKER_STATUS = {"running": "green", "gone": "bold red", "recorded": "dim", "paused": "yellow"}
_HEALTH = {"healthy": "green", "degraded": "yellow", "quarantined": "bold red"}


class WorkersScreen(SnapshotScreen):
    def __init__(self) -> None:
        super().__init__()
        self._errors: dict[str, list[ErrorEvent]] = {}

    def compose_body(self) -> ComposeResult:
        yield Static(id="workers-summary")
        yield VirtualTable(
            [
                Column("name", "name", 12),
                Column("address", "address", 22, hide_below=130),
                Column("resources", "resources", 0),
                Column("status", "status", 8),
                Column("health", "health", 11),
                Column("cpu", "cpu", 15),
                Column("memory", "memory", 17),
                Column("running", "run", 3, right=True),
                Column("errors", "err", 4, right=True),
                Column("last", "last error", 0, hide_below=120),
                Column("health_reason", "why", 0, hide_below=140),
            ],
            self._cells,
            row_key=lambda w: w.address,
            id="workers",
        )

    def _cells(self, w: WorkerInfo) -> list[Cell]:
        errors = self._errors.get(w.name, [])
        cpu = w.cpu[-1] if w.cpu else None
        mem = w.memory[-1] if w.memory else None
        return [
            w.name,
            w.address,
            w.resources_text or "—",
            (w.status, _WORKER_STATUS.get(w.status, "")),
            (w.health or "—", _HEALTH.get(w.health, "dim")),
            (sparkline(w.cpu, 10, 100.0) + ("  —" if cpu is None else f"{cpu:3.0f}%"), "cyan"),
            (
                sparkline(w.memory, 10, float(w.memory_limit) or None)
                + ("  —" if mem is None else f" {human_bytes(mem):>6}"),
                "magenta",
            ),
            str(w.running),
            (str(len(errors)), "red" if errors else "dim"),
            errors[-1].message if errors else "",
            w.health_reason,
        ]

    def show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        errors: dict[str, list[ErrorEvent]] = defaultdict(list)
        for e in snapshot.errors:
            if e.worker:
                errors[e.worker].append(e)
        self._errors = errors
        table = self.query_one("#workers", VirtualTable)
        workers = list(snapshot.workers)
        if table.sort_key:
            workers.sort(key=self._sort_key(table.sort_key), reverse=table.sort_reverse)
        table.set_items(workers)
        states = Counter(w.status for w in workers)
        text = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        unwell = [w for w in workers if w.health in ("degraded", "quarantined")]
        flagged = "".join(f" · {w.name} {w.health}: {w.health_reason}" for w in unwell[:3])
        summary = f"{len(workers)} workers ({text or 'none yet'}){flagged} · s sorts, S reverses"
        if snapshot.dashboard:  # a plain URL: terminals and the browser console link it
            summary += f"\nDask dashboard: {snapshot.dashboard}"
        self.query_one("#workers-summary", Static).update(Content(summary))

    def _sort_key(self, key: str) -> Callable[[WorkerInfo], Any]:
        keys: dict[str, Callable[[WorkerInfo], Any]] = {
            "cpu": lambda w: w.cpu[-1] if w.cpu else -1.0,
            "memory": lambda w: w.memory[-1] if w.memory else -1.0,
            "running": lambda w: w.running,
            "errors": lambda w: len(self._errors.get(w.name, ())),
            "resources": lambda w: w.resources_text,
        }
        return keys.get(key, lambda w: str(getattr(w, key, "")))

    def on_virtual_table_sort_changed(self, event: VirtualTable.SortChanged) -> None:
        if self.dtf.snapshot is not None:
            self.show_snapshot(self.dtf.snapshot)
