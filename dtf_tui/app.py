"""The dtf console: a Textual app over a :class:`~dtf_tui.sources.Source`.

Data comes in on one Textual worker thread that polls the source and hands
each :class:`~dtf_tui.snapshot.ClusterSnapshot` to the UI thread; the screens
watch :attr:`DtfApp.snapshot`. When the source fails, a banner says so and the
thread keeps trying, backing off up to 30 s. Every loader thread goes through
:meth:`DtfApp.load`, so that any failure, of the source or of the screen that
shows its answer, lands in :meth:`DtfApp.report`: the banner and a log file
(:mod:`dtf_tui.faults`), never a thread that dies unseen. The command line is in
:mod:`dtf_tui.cli`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar, TypeVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import var
from textual.screen import Screen
from textual.worker import get_current_worker

from dtf_tui import leader
from dtf_tui.faults import FaultLog, default_log_path
from dtf_tui.screens.errors import ErrorsScreen
from dtf_tui.screens.help import HelpScreen
from dtf_tui.screens.overview import OverviewScreen
from dtf_tui.screens.tasks import TasksScreen
from dtf_tui.screens.trends import TrendsScreen
from dtf_tui.screens.workers import WorkersScreen
from dtf_tui.snapshot import ClusterSnapshot, CoordinatorInfo, severity_rank
from dtf_tui.sources import Source, SourceError

SCREENS = {
    "overview": "Overview",
    "workers": "Workers",
    "tasks": "Tasks",
    "errors": "Errors",
    "trends": "Trends",
}
MAX_BACKOFF = 30.0
# Fewest seconds between two polls: a source that pushes changes (attached to
# dtf-core serve) wakes the loop once per burst, never more often than this.
MIN_POLL_GAP = 0.1
# Banner slots of the poll loop: the source's answer, and taking it in.
POLL = "poll"
DISPLAY = "taking in the data"
LEADERSHIP = "leadership"  # not a failure: the banner's line when another coordinator leads
T = TypeVar("T")


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
        log_path: Path | str | None = None,
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
        self.faults = FaultLog(Path(log_path) if log_path else default_log_path())
        self._problems: dict[str, str] = {}  # what failed -> its banner line
        self._coordinator: CoordinatorInfo | None = None  # who led at the last poll
        self._leader_moves = 0

    def on_mount(self) -> None:
        self.sub_title = self.source.label
        subscribe = getattr(self.source, "subscribe", None)  # sources that push changes
        if subscribe is not None:
            subscribe(self._wake.set)
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
            started = time.monotonic()
            try:
                snap = self.source.poll()
            except Exception as exc:  # any failure of the source is shown, never fatal
                failures += 1
                delay = min(MAX_BACKOFF, self.poll_interval * 2 ** min(failures, 5))
                retry = f" — retrying in {delay:.0f}s"
                alive = self.to_ui(self.report, POLL, exc, f"⚠ {self.source.label}: ", retry)
            else:
                failures, delay = 0, self.poll_interval
                # Blocks until the UI has taken it: polls never pile up behind a slow render.
                alive = self.to_ui(self._loaded, DISPLAY, self.apply_snapshot, snap, None)
            if not alive:
                return
            self._wake.wait(delay)
            self._wake.clear()
            # A burst of changes is one refresh: the next poll waits out the gap.
            rest = MIN_POLL_GAP - (time.monotonic() - started)
            if rest > 0 and not self._closing:
                time.sleep(rest)

    def load(
        self,
        where: str,
        fetch: Callable[[], T],
        show: Callable[[T], object],
        failed: Callable[[str], object] | None = None,
    ) -> bool:
        """What every loader thread calls: ``fetch()`` here, ``show(result)`` on the UI thread.

        A failure of either goes to :meth:`report` (the log, and the banner
        until ``where`` next loads) and, as one line, to ``failed``, so the
        screen says why instead of "loading ...". False once the app closes.
        """
        try:
            value = fetch()
        except Exception as exc:
            return self.to_ui(self._failed, where, exc, failed)
        return self.to_ui(self._loaded, where, show, value, failed)

    def _loaded(
        self,
        where: str,
        show: Callable[[T], object],
        value: T,
        failed: Callable[[str], object] | None,
    ) -> None:
        if self.attempt(where, show, value, failed=failed):
            self.resolved(where)

    def attempt(
        self,
        where: str,
        fn: Callable[..., object],
        *args: object,
        failed: Callable[[str], object] | None = None,
    ) -> bool:
        """UI thread: ``fn(*args)``; a failure is reported as one of ``where``, not
        raised (raised, it would end the app or the thread that handed data over).
        True when it ran clean."""
        try:
            fn(*args)
        except Exception as exc:
            self._failed(where, exc, failed)
            return False
        return True

    def _failed(
        self, where: str, exc: BaseException, failed: Callable[[str], object] | None
    ) -> None:
        # A SourceError is the source's own answer ("no history yet", "not offered
        # by the service"): where the screen has a place for it, it goes there only.
        line = self.report(where, exc, quiet=failed is not None and isinstance(exc, SourceError))
        if failed is not None:
            failed(line)

    def report(
        self,
        where: str,
        exc: BaseException,
        prefix: str | None = None,
        suffix: str = "",
        *,
        quiet: bool = False,
    ) -> str:
        """The one place a failure of the console's own work goes (UI thread).

        The traceback is appended to the log file; unless ``quiet``, a line
        (``prefix`` + what failed + ``suffix``) shows in the banner, with the log's
        path, until ``where`` succeeds again. Returns the one-line description.
        """
        line = self.faults.record(where, exc)
        if not quiet:
            head = f"⚠ {where} failed: " if prefix is None else prefix
            self._show_problem(where, head + line + suffix)
        return line

    def resolved(self, where: str) -> None:
        """``where`` worked again: its banner line goes (UI thread)."""
        self._show_problem(where, "")

    def _show_problem(self, where: str, line: str) -> None:
        if line:
            self._problems[where] = line
        else:
            self._problems.pop(where, None)
            self.faults.clear_repeat(where)  # it recovered: the next failure is news
        lines = list(self._problems.values())
        if lines and self.faults.where:
            lines.append(self.faults.where)
        self.problem = "\n".join(lines)

    def to_ui(self, fn: Callable[..., object], *args: object) -> bool:
        """Run ``fn(*args)`` on the UI thread and wait for it; False once the app closes.

        Like ``call_from_thread``, which waits without a timeout: a thread that
        hands over data just as the app shuts down would wait forever (and
        hold the process open). An exception of ``fn`` is reported, not raised
        into the thread that handed the data over.
        """
        loop = self._loop
        if loop is None or self._closing:
            return False

        async def run() -> None:
            with self._context():
                self.attempt("the console", fn, *args)

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
            except Exception:  # cancelled with the app
                return False

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
        self._show_problem(POLL, snap.problem)
        self._follow_leader(snap)
        self.snapshot = snap

    def _follow_leader(self, snap: ClusterSnapshot) -> None:
        """The header names the coordinator and who leads; a move of leadership
        shows in the banner for a while (UI thread)."""
        self.sub_title = leader.header_text(self.source.label, snap.coordinator)
        line = leader.moved(self._coordinator, snap.coordinator)
        if snap.coordinator is not None:
            self._coordinator = snap.coordinator
        if not line:
            return
        self._leader_moves += 1
        move = self._leader_moves
        self._show_problem(LEADERSHIP, line)

        def fade() -> None:
            if self._leader_moves == move:  # a newer move keeps its own line
                self._show_problem(LEADERSHIP, "")

        self.set_timer(leader.BANNER_S, fade)

    # ---- actions -------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_toggle_mute(self) -> None:
        self.muted = not self.muted
        self.notify(
            "bell muted" if self.muted else f"bell on for {self.bell_severity} errors",
            markup=False,
        )
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
