"""What every main screen shares: header, the source banner, the footer, and
being told about each new snapshot while it is the screen on show."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header

from dtf_tui.snapshot import ClusterSnapshot
from dtf_tui.widgets.banner import SourceBanner

if TYPE_CHECKING:
    from dtf_tui.app import DtfApp

# Colours of task states, shared by the tables.
STATUS_STYLE = {
    "passed": "green",
    "skipped": "yellow",
    "failed": "bold red",
    "timed_out": "red",
    "unschedulable": "magenta",
    "cancelled": "yellow",
    "running": "cyan",
    "retrying": "yellow",
    "pending": "dim",
}
SEVERITY_STYLE = {"critical": "bold red", "error": "red", "warning": "yellow"}


class SnapshotScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield SourceBanner()
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    @property
    def dtf(self) -> DtfApp:
        return cast("DtfApp", self.app)

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self._snapshot_changed, init=False)
        self.watch(self.app, "problem", self._problem_changed, init=False)

    def on_screen_resume(self) -> None:
        self._problem_changed(self.dtf.problem)
        if self.dtf.snapshot is not None:
            self._present(self.dtf.snapshot)

    def _snapshot_changed(self, snapshot: ClusterSnapshot | None) -> None:
        # Screens not on show skip the work; they catch up when resumed.
        if snapshot is not None and self.is_current:
            self._present(snapshot)

    def _present(self, snapshot: ClusterSnapshot) -> None:
        # A screen that cannot show the data says so in the banner; the others,
        # and this one at the next snapshot, go on.
        where = f"showing the {type(self).__name__.removesuffix('Screen')} screen"
        if self.dtf.attempt(where, self.show_snapshot, snapshot):
            self.dtf.resolved(where)

    def _problem_changed(self, problem: str) -> None:
        self.query_one(SourceBanner).show_problem(problem)

    def show_snapshot(self, snapshot: ClusterSnapshot) -> None:
        raise NotImplementedError
