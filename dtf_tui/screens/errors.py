"""Errors: counts by category and severity, per worker or per hardware, and
recurring patterns (grouped by normalised message) over 1h / 6h / 24h / 7d.
Critical rows are highlighted; the bell rings for new ones (``m`` mutes it).
Under the patterns: the highlighted pattern's latest occurrence with the system
snapshot its worker took, loaded on a worker thread when the pattern changes."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from dtf_tui import errorstats
from dtf_tui.errorstats import Pattern
from dtf_tui.screens.base import SEVERITY_STYLE, SnapshotScreen
from dtf_tui.snapshot import AttemptInfo, ClusterSnapshot
from dtf_tui.widgets.spark import duration
from dtf_tui.widgets.syscontext import context_text
from dtf_tui.widgets.vtable import Cell, Column, VirtualTable


class ErrorsScreen(SnapshotScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "cycle_range", "Range"),
        Binding("g", "toggle_group", "Worker/HW"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.range_name = "24h"
        self.group_field = "worker"  # or "hardware"
        self._now = time.time()
        self._context_key: tuple[str, str, int] | None = None  # the one shown below

    def compose_body(self) -> ComposeResult:
        yield Static(id="errors-summary")
        with Horizontal(id="errors-counts"):
            yield VirtualTable(
                [
                    Column("category", "category", 0),
                    Column("severity", "severity", 9),
                    Column("count", "count", 6, right=True),
                ],
                lambda r: [r[0], (r[1], SEVERITY_STYLE.get(r[1], "")), str(r[2])],
                row_key=lambda r: (r[0], r[1]),
                id="by-category",
            )
            yield VirtualTable(
                [
                    Column("name", "worker", 0),
                    Column("count", "errors", 6, right=True),
                    Column("critical", "crit", 5, right=True),
                ],
                lambda r: [r[0], str(r[1]), (str(r[2]), "bold red" if r[2] else "dim")],
                row_key=lambda r: r[0],
                id="by-place",
            )
        yield VirtualTable(
            [
                Column("count", "count", 5, right=True),
                Column("severity", "severity", 8),
                Column("category", "category", 14),
                Column("workers", "wkrs", 4, right=True, hide_below=90),
                Column("last", "last", 7, right=True),
                Column("pattern", "pattern (normalised message)", 0),
            ],
            self._pattern_cells,
            row_key=lambda p: (p.category, p.text),
            row_style=lambda p: "on #3b0d0d" if p.severity == "critical" else "",
            id="patterns",
        )
        with VerticalScroll(id="error-context-box"):
            yield Static(Text("no error highlighted", style="dim"), id="error-context")

    def _pattern_cells(self, p: Pattern) -> list[Cell]:
        return [
            str(p.count),
            (p.severity, SEVERITY_STYLE.get(p.severity, "")),
            p.category,
            str(p.workers),
            duration(self._now - p.last_ts),
            p.text,
        ]

    def show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        self._now = snapshot.taken_at
        errors = errorstats.in_range(snapshot.errors, snapshot.taken_at, self.range_name)
        sev = errorstats.by_severity(errors)
        ranges = " ".join(
            f"[reverse] {r} [/]" if r == self.range_name else f" {r} " for r in errorstats.RANGES
        )
        bell = "muted" if self.dtf.muted else f"on for {self.dtf.bell_severity}"
        self.query_one("#errors-summary", Static).update(
            f"range {ranges}  ·  {len(errors)} errors: [bold red]{sev['critical']} critical[/]"
            f", [red]{sev['error']} error[/], [yellow]{sev['warning']} warning[/]"
            f"  ·  bell {bell}"
        )
        self.query_one("#by-category", VirtualTable).set_items(errorstats.by_category(errors))
        place = self.query_one("#by-place", VirtualTable)
        place.columns[0] = Column("name", self.group_field, 0)
        place.set_items(errorstats.by_field(errors, self.group_field))
        table = self.query_one("#patterns", VirtualTable)
        table.set_items(errorstats.patterns(errors))
        self._follow(table.highlighted)

    def on_virtual_table_row_highlighted(self, event: VirtualTable.RowHighlighted) -> None:
        if event.control.id == "patterns":
            self._follow(event.item)

    def _follow(self, pattern: Pattern | None) -> None:
        """Show the system context of ``pattern``'s latest occurrence (once per occurrence)."""
        if pattern is None or pattern.last_key == self._context_key:
            return
        self._context_key = pattern.last_key
        self._load_context(pattern.last_key)

    @work(thread=True, exclusive=True, exit_on_error=False, group="error-context")
    def _load_context(self, key: tuple[str, str, int]) -> None:
        run_id, task_id, _ = key
        self.dtf.load(
            "loading an error's system context",
            lambda: self.dtf.source.attempts(run_id, task_id),
            lambda rows: self._show_context(key, rows),
            lambda line: self._put_context(Text(f"could not load the system context: {line}")),
        )

    def _show_context(self, key: tuple[str, str, int], rows: list[AttemptInfo]) -> None:
        if key != self._context_key:
            return  # another pattern was highlighted meanwhile
        a = next((r for r in rows if r.attempt == key[2]), None)
        head = Text.assemble(
            ("latest: ", "bold"), key[1], f"  attempt {key[2]}", "  on ",
            (a.worker if a else "") or "?",
        )  # fmt: skip
        if a is not None and a.message:
            head.append("\n" + a.message.splitlines()[0], style="red")
        self._put_context(Text("\n").join([head, context_text(a.context if a else None)]))

    def _put_context(self, text: Text) -> None:
        self.query_one("#error-context", Static).update(text)

    def _again(self) -> None:
        if self.dtf.snapshot is not None:
            self.show_snapshot(self.dtf.snapshot)

    def action_cycle_range(self) -> None:
        names = list(errorstats.RANGES)
        self.range_name = names[(names.index(self.range_name) + 1) % len(names)]
        self._again()

    def action_toggle_group(self) -> None:
        self.group_field = "hardware" if self.group_field == "worker" else "worker"
        self._again()
