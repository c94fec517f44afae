"""``?``: every key, by screen."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# dtf console — keys

| key | everywhere |
|---|---|
| `1` `2` `3` `4` `5` | Overview, Workers, Tasks, Errors, Trends |
| `ctrl+p` | command palette (screens, theme, bell) |
| `d` | light / dark theme |
| `m` | mute / unmute the error bell |
| `ctrl+r` | poll the source now |
| `?` | this help · `q` quit |

| screen | keys |
|---|---|
| tables | `↑` `↓` `PgUp` `PgDn` `Home` `End`; `s` next sort column, `S` reverse |
| Tasks | `/` filter (id, kind, status, category, worker), `Esc` clear |
| Tasks | `Enter` a task's attempts, error context and output tail |
| Errors | `r` time range 1h / 6h / 24h / 7d, `g` group by worker or hardware |
| Trends | `b` benchmark, `h` hardware, `r` reload history |

Quitting `dtf-tui run` cancels the run, as Ctrl+C does in `dtf-core run`.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)
