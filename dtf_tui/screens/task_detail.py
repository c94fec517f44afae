"""One task: every attempt, the error context, and the output tail of the
highlighted attempt. Attempts load on a worker thread (the source may be remote)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from dtf_core.service.views.storeread import severity_of
from dtf_tui.screens.base import SEVERITY_STYLE, STATUS_STYLE
from dtf_tui.snapshot import AttemptInfo, TaskRow
from dtf_tui.widgets.syscontext import context_text
from dtf_tui.widgets.vtable import Cell, Column, VirtualTable

if TYPE_CHECKING:
    from dtf_tui.app import DtfApp


def _attempt_cells(a: AttemptInfo) -> list[Cell]:
    return [
        str(a.attempt),
        (a.outcome, STATUS_STYLE.get(a.outcome, "red")),
        a.category or "",
        a.worker,
        f"{a.wall_s:.2f}",
        "" if a.exit_code is None else str(a.exit_code),
        a.message.splitlines()[0] if a.message else "",
    ]


class TaskDetailScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close"),
    ]

    def __init__(self, task: TaskRow) -> None:
        super().__init__()
        self.task_row = task
        self.attempts: list[AttemptInfo] = []

    def compose(self) -> ComposeResult:
        t = self.task_row
        with Vertical(id="detail"):
            yield Static(self._context_text(), id="detail-context")
            yield VirtualTable(
                [
                    Column("attempt", "#", 3, right=True),
                    Column("outcome", "outcome", 13),
                    Column("category", "category", 14),
                    Column("worker", "worker", 10),
                    Column("wall", "wall s", 8, right=True),
                    Column("exit", "exit", 4, right=True),
                    Column("message", "message", 0),
                ],
                _attempt_cells,
                row_key=lambda a: a.attempt,
                id="attempts",
            )
            with VerticalScroll(id="detail-output"):
                yield Static(Content(f"loading the attempts of {t.task_id} ..."), id="output")

    def _context_text(self) -> Content:
        # Assembled, not markup: ids, workers and messages are the user's strings.
        t = self.task_row
        lines = [
            Content.assemble(
                (t.task_id, "bold"), "  ", (t.status, STATUS_STYLE.get(t.status, "")),
                "  run ", t.run_id,
            )
        ]  # fmt: skip
        if t.category:
            sev = severity_of(t.category)
            lines.append(
                Content.assemble(
                    "category ", (t.category, "bold"),
                    "  severity ", (sev, SEVERITY_STYLE.get(sev, "")),
                    f"  after {t.attempts} attempt(s) on ", t.worker or "—",
                )
            )  # fmt: skip
        if t.message:
            lines.append(Content(t.message))
        return Content("\n").join(lines)

    def on_mount(self) -> None:
        self.query_one("#attempts", VirtualTable).focus()
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _load(self) -> None:
        app = cast("DtfApp", self.app)
        t = self.task_row
        app.load(
            "loading a task's attempts",
            lambda: app.source.attempts(t.run_id, t.task_id),
            self._show_attempts,
            lambda line: self._show_output(f"could not load the attempts: {line}"),
        )

    def _show_attempts(self, attempts: list[AttemptInfo]) -> None:
        self.attempts = attempts
        table = self.query_one("#attempts", VirtualTable)
        table.set_items(attempts)
        if attempts:
            table.cursor = len(attempts) - 1  # the last attempt decided the task
            self._show_attempt(attempts[-1])
        else:
            self._show_output("no attempts recorded yet")

    def _show_output(self, text: str) -> None:
        self.query_one("#output", Static).update(Content(text))

    def _show_attempt(self, a: AttemptInfo) -> None:
        out = Text()
        out.append(f"attempt {a.attempt}: {a.outcome}", style="bold")
        if a.hardware:
            out.append(f"  on {a.hardware}")
        if a.message:
            out.append("\n" + a.message, style="red" if a.category else "")
        for name, tail in (("stdout", a.stdout_tail), ("stderr", a.stderr_tail)):
            out.append(f"\n── {name} (tail) ──\n", style="bold dim")
            out.append(tail or "(empty)", style="" if tail else "dim")
        if a.context:
            out.append("\n")
            out.append(context_text(a.context, f"system context of {a.worker or 'its worker'}"))
        self.query_one("#output", Static).update(out)

    def on_virtual_table_row_highlighted(self, event: VirtualTable.RowHighlighted) -> None:
        self._show_attempt(event.item)
