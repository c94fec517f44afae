"""The dtf console: a Textual app over a :class:`~dtf_tui.sources.Source`.

Data comes in on one Textual worker thread that polls the source and hands
each :class:`~dtf_tui.snapshot.ClusterSnapshot` to the UI thread; the screens
watch :attr:`DtfApp.snapshot`. When the source fails, a banner says so and the
thread keeps trying, backing off up to 30 s. The command line is in
:mod:`dtf_tui.cli`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterable
from typing import ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import var
from textual.screen import Screen
from textual.worker import get_current_worker

from dtf_tui.screens.errors import ErrorsScreen
from dtf_tui.screens.help import HelpScreen
from dtf_tui.screens.overview import OverviewScreen
from dtf_tui.screens.tasks import TasksScreen
from dtf_tui.screens.trends import TrendsScreen
from dtf_tui.screens.workers import WorkersScreen
from dtf_tui.snapshot import ClusterSnapshot, severity_rank
from dtf_tui.sources import Source, SourceError

SCREENS = {
    "overview": "Overview",
    "workers": "Workers",
    "tasks": "Tasks",
    "errors": "Errors",
    "trends": "Trends",
}
MAX_BACKOFF = 30.0


class DtfApp(App[None]):
    TITLE = "dtf"
    CSS_PATH = "dtf.tcss"
    MODES: ClassVar[dict[str, type[Screen]]] = {  # type: ignore[assignment]
        "overview": OverviewScreen,
        "workers": WorkersScreen,
        "tasks": TasksScreen,
        "errors": ErrorsScreen,
        "trends": TrendsScreen,
    }
    DEFAULT_MODE = "overview"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(str(i), f"switch_mode('{mode}')", title, id=f"mode-{mode}")
            for i, (mode, title) in enumerate(SCREENS.items(), start=1)
        ),
        Binding("question_mark", "help", "Help"),
        Binding("d", "toggle_dark", "Theme", show=False),
        Binding("m", "toggle_mute", "Mute", show=False),
        Binding("ctrl+r", "poll_now", "Refresh", show=False),
        Binding("q", "quit", "Quit"),
    ]

    snapshot: var[ClusterSnapshot | None] = var(None)
    problem: var[str] = var("")

    def __init__(
        self,
        source: Source,
        *,
        poll_interval: float | None = None,
        bell_severity: str = "critical",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.source = source
        self.poll_interval = poll_interval or source.poll_interval
        self.bell_severity = bell_severity
        self.clock = clock
        self.muted = False
        self.bells = 0  # rung so far (the tests count them)
        self.polls = 0
        self._seen_errors: set[tuple[str, str, int]] = set()
        self._wake = threading.Event()
        self._closing = False

    def on_mount(self) -> None:
        self.sub_title = self.source.label
        self.source.start()
        self._poll_loop()

    def on_unmount(self) -> None:
        self._closing = True
        self._wake.set()

    # ---- data in -------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _poll_loop(self) -> None:
        worker = get_current_worker()
        failures = 0
        while not worker.is_cancelled and not self._closing:
            try:
                snap = self.source.poll()
            except Exception as exc:  # any failure of the source is shown, never fatal
                failures += 1
                delay = min(MAX_BACKOFF, self.poll_interval * 2 ** min(failures, 5))
                text = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
                message = f"⚠ {self.source.label}: {text} — retrying in {delay:.0f}s"
                if not self.to_ui(self._lost, message):
                    return
            else:
                failures, delay = 0, self.poll_interval
                # Blocks until the UI has taken it: polls never pile up behind a slow render.
                if not self.to_ui(self.apply_snapshot, snap):
                    return
            self._wake.wait(delay)
            self._wake.clear()

    def to_ui(self, fn: Callable[..., object], *args: object) -> bool:
        """Run ``fn(*args)`` on the UI thread and wait for it; False once the app closes.

        Like ``call_from_thread``, which waits without a timeout: a thread that
        hands over data just as the app shuts down would wait forever (and
        hold the process open).
        """
        loop = self._loop
        if loop is None or self._closing:
            return False

        async def run() -> None:
            with self._context():
                fn(*args)

        try:
            future = asyncio.run_coroutine_threadsafe(run(), loop)
        except RuntimeError:  # the loop is closed
            return False
        while True:
            try:
                future.result(timeout=0.25)
                return True
            except concurrent.futures.TimeoutError:
                if self._closing or not self.is_running or loop.is_closed():
                    future.cancel()
                    return False
            except Exception:  # cancelled with the app, or the callback failed
                return False

    def _lost(self, message: str) -> None:
        self.problem = message

    def apply_snapshot(self, snap: ClusterSnapshot) -> None:
        """Take a new snapshot (UI thread): ring for new bad errors, then show it."""
        first = self.snapshot is None
        new = [e for e in snap.errors if e.key not in self._seen_errors]
        self._seen_errors.update(e.key for e in new)
        # History is not news: only errors that arrive after the first snapshot ring.
        threshold = severity_rank(self.bell_severity)
        if (
            not first
            and not self.muted
            and any(severity_rank(e.severity) >= threshold for e in new)
        ):
            self.bells += 1
            self.bell()
        self.polls += 1
        self.problem = snap.problem
        self.snapshot = snap

    # ---- actions -------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_toggle_mute(self) -> None:
        self.muted = not self.muted
        self.notify("bell muted" if self.muted else f"bell on for {self.bell_severity} errors")
        if isinstance(self.screen, ErrorsScreen) and self.snapshot is not None:
            self.screen.show_snapshot(self.snapshot)

    def action_poll_now(self) -> None:
        self._wake.set()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, title in SCREENS.items():
            yield SystemCommand(
                f"Screen: {title}", f"Show the {title} screen", self._switcher(mode)
            )
        yield SystemCommand("Toggle light/dark", "Switch the theme", self.action_toggle_dark)
        yield SystemCommand("Mute bell", "Mute or unmute the error bell", self.action_toggle_mute)
        yield SystemCommand("Keys", "Show every key binding", self.action_help)

    def _switcher(self, mode: str) -> Callable[[], None]:
        def switch() -> None:
            self.switch_mode(mode)

        return switch


if __name__ == "__main__":
    # `python -m dtf_tui.app` (older scripts and docs start the console so): run
    # the package's command line by name. The module `dtf_tui.app` itself never
    # imports the command line, which imports it.
    import runpy

    runpy.run_module("dtf_tui", run_name="__main__", alter_sys=True)
