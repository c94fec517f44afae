"""The lines that say what failed: the data source is down (and the console
retries), or a loader raised (and where its traceback went)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


class SourceBanner(Static):
    DEFAULT_CSS = """
    /* In the flow under the header, not docked: two docked widgets overlap,
       and the banner hid the title bar. */
    SourceBanner {
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
        # Plain text: error messages quote names like `sort[n=1000]` and even
        # the markup that failed to parse.
        self.update(Content(text))
        self.set_class(bool(text), "-shown")
