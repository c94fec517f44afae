"""Where the console's background failures go: the traceback to a log file,
one line to the banner.

The console loads its data on worker threads; an exception there has no
terminal to print to (Textual owns it), so without this it would vanish and
leave a screen that says "loading ..." forever. No Textual import here: the
app decides where the line shows, this module only words and logs it.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path

from dtf_tui.sources import SourceError

LOG_ENV = "DTF_TUI_LOG"


def default_log_path() -> Path:
    """``$DTF_TUI_LOG``, else ``$XDG_CACHE_HOME/dtf/dtf-tui.log`` (``~/.cache/dtf/...``).

    Not next to the database: ``--db`` opens it read-only and its folder may
    not be ours to write in.
    """
    if os.environ.get(LOG_ENV):
        return Path(os.environ[LOG_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "dtf" / "dtf-tui.log"


def describe(exc: BaseException) -> str:
    """One line: a SourceError's message is already worded for the user; anything
    else is a bug or a surprise, so its type is part of what the user reads."""
    text = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


class FaultLog:
    """Appends each failure, with its traceback, to one file; safe from any thread.

    A failure of the same thing repeated back to back (a poll retrying every
    few seconds) is written once: the file must stay readable after a night of
    retries.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = False  # whether this session wrote anything (the banner names the file)
        self.broken = ""  # why the file could not be written, if it could not
        self._lock = threading.Lock()
        self._last: dict[str, str] = {}  # where -> the line last written for it

    def record(self, where: str, exc: BaseException) -> str:
        """Log ``exc`` as a failure of ``where``; return the line that says what failed."""
        line = describe(exc)
        with self._lock:
            if self._last.get(where) == line:
                return line
            self._last[where] = line
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            entry = f"{stamp} [pid {os.getpid()}] {where} failed: {line}\n"
            # A bare SourceError is an answer, not a bug: its frames say nothing.
            if not (isinstance(exc, SourceError) and exc.__cause__ is None):
                entry += "".join(traceback.format_exception(exc))
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(entry + "\n")
            except OSError as err:  # the failure still reaches the banner
                self.broken = f"{type(err).__name__}: {err}"
            else:
                self.written, self.broken = True, ""
        return line

    def clear_repeat(self, where: str) -> None:
        """``where`` recovered: its next failure is written even if it repeats the last."""
        with self._lock:
            self._last.pop(where, None)

    @property
    def where(self) -> str:
        """What the banner says about the log: its path, or why there is none."""
        if self.broken:
            return f"could not write {self.path} ({self.broken})"
        return f"details in {self.path}" if self.written else ""
