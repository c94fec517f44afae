"""The line that says the data source is down (and that the console retries)."""

from __future__ import annotations

from textual.widgets import Static


class SourceBanner(Static):
    DEFAULT_CSS = """
    SourceBanner {
        dock: top;
        height: auto;
        display: none;
        background: $error;
        color: $text;
        text-style: bold;
        padding: 0 1;
    }
    SourceBanner.-shown {
        display: block;
    }
    """

    def show_problem(self, text: str) -> None:
        self.update(text)
        self.set_class(bool(text), "-shown")
