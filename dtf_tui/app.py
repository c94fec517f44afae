"""``dtf-tui``: browse the runs stored in a dtf DuckDB file.

This is the first screen of the console; live cluster views come with the
TUI issue. The data is read once through :class:`dtf_core.store.Store`
opened read-only, in a Textual worker thread so the UI never blocks on I/O.
"""

from __future__ import annotations

from typing import Any

import click
from textual import work
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Header, Static

from dtf_core import config as dtf_config
from dtf_core.errors import DtfError
from dtf_core.store import Store


def load_history(db: str, limit: int = 200) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Runs (newest first) and the tasks of the newest run."""
    with Store(db, read_only=True) as store:
        runs = store.list_runs(limit=limit)
        tasks = store.tasks(runs[0]["run_id"]) if runs else []
    return runs, tasks


class DtfApp(App[None]):
    TITLE = "dtf"
    BINDINGS = [("q", "quit", "Quit"), ("r", "reload", "Reload")]
    CSS = """
    #runs { height: 40%; }
    #message { height: auto; color: $warning; }
    """

    def __init__(self, db: str) -> None:
        super().__init__()
        self.db = db

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="message")
        yield DataTable(id="runs", cursor_type="row")
        yield DataTable(id="tasks", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.db
        self.query_one("#runs", DataTable).add_columns("run", "suite", "status")
        self.query_one("#tasks", DataTable).add_columns(
            "task", "kind", "status", "category", "wall s"
        )
        self.action_reload()

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        try:
            runs, tasks = load_history(self.db)
        except DtfError as exc:
            self.call_from_thread(self._show_error, str(exc))
            return
        self.call_from_thread(self._show, runs, tasks)

    def _show_error(self, text: str) -> None:
        self.query_one("#message", Static).update(text)

    def _show(self, runs: list[dict[str, Any]], tasks: list[dict[str, Any]]) -> None:
        table = self.query_one("#runs", DataTable)
        table.clear()
        for r in runs:
            table.add_row(r["run_id"], r["suite"], r["status"])
        ttable = self.query_one("#tasks", DataTable)
        ttable.clear()
        for t in tasks:
            ttable.add_row(
                t["task_id"],
                t["kind"],
                t["status"],
                t.get("category") or "",
                f"{t.get('wall_s') or 0:.2f}",
            )
        if not runs:
            self.query_one("#message", Static).update(f"no runs in {self.db} yet")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    default=None,
    help="DuckDB file to browse (default: .dtf/dtf.duckdb).",
)
def main(db: str | None) -> None:
    """Browse dtf's run history in the terminal."""
    DtfApp(db or str(dtf_config.get("db"))).run()
