"""How a headless run shows itself: a rich progress bar on a terminal, plain
lines otherwise (CI logs must stay readable and grep-able)."""

from __future__ import annotations

import sys
import time
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from dtf_core.events import (
    AttemptFailed,
    ClusterChanged,
    Event,
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskSpeculated,
    TestsProgress,
    WorkerHealthChanged,
)

_STYLE = {
    "passed": "green",
    "skipped": "yellow",
    "failed": "red",
    "timed_out": "red",
    "unschedulable": "magenta",
    "cancelled": "yellow",
}


class ProgressView:
    """An events listener. Use as a context manager around the run."""

    def __init__(self, stream: IO[str] | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self.progress: Progress | None = None
        self.bar: TaskID | None = None
        self.failed = 0
        self.tests: dict[str, int] = {}
        self._last_plain = 0.0

    def __enter__(self) -> ProgressView:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def info(self, text: str) -> None:
        self.console.print(text, markup=False)

    def tests_text(self) -> str:
        order = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
        parts = [f"{self.tests[k]} {k}" for k in order if self.tests.get(k)]
        return ", ".join(parts)

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.info(f"run {event.run_id}: suite '{event.suite}', {event.total} task(s)")
            if self.live:
                self.progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[failed]} failed"),
                    TextColumn("{task.fields[tests]}"),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=self.console,
                    transient=False,
                )
                self.progress.start()
                self.bar = self.progress.add_task("tasks", total=event.total, failed=0, tests="")
        elif isinstance(event, TestsProgress):
            for k, v in event.counts.items():
                self.tests[k] = self.tests.get(k, 0) + v
            if self.progress is not None and self.bar is not None:
                self.progress.update(self.bar, tests=self.tests_text())
            elif time.monotonic() - self._last_plain > 5.0:
                # Plain logs get a heartbeat, not a line per test.
                self._last_plain = time.monotonic()
                self.info(f"tests so far: {self.tests_text()}")
        elif isinstance(event, TaskFinished):
            if event.status not in ("passed", "skipped"):
                self.failed += 1
            line = f"[{event.done}/{event.total}] {event.status:<13} {event.task_id}"
            if event.wall_s:
                line += f" ({event.wall_s:.2f}s"
                line += f" on {event.worker})" if event.worker else ")"
            if event.flaky:
                line += " flaky"
            if event.eta_s is not None and event.done < event.total:
                line += f" [ETA {event.eta_s:.0f}s]"
            if event.status not in ("passed", "skipped") and event.message:
                line += f": {event.message.splitlines()[0][:200]}"
            if self.progress is not None and self.bar is not None:
                self.progress.update(self.bar, completed=event.done, failed=self.failed)
                # On a terminal only what needs attention gets its own line.
                if event.status not in ("passed", "skipped") or event.flaky:
                    style = _STYLE.get(event.status, "")
                    self.progress.console.print(f"[{style}]{line}[/]" if style else line)
            else:
                self.info(line)
        elif isinstance(event, AttemptFailed) and event.retry_in is not None:
            text = (
                f"retry  {event.task_id} attempt {event.attempt} failed ({event.category}): "
                f"{event.message.splitlines()[0][:160] if event.message else ''}; "
                f"again in {event.retry_in:.1f}s"
            )
            if self.progress is not None:
                self.progress.console.print(text, markup=False)
            else:
                self.info(text)
        elif isinstance(event, ClusterChanged):
            text = f"cluster: {event.message}"
            if self.progress is not None:
                self.progress.console.print(f"[yellow]{text}[/]")
            else:
                self.info(text)
        elif isinstance(event, WorkerHealthChanged | TaskSpeculated):
            if isinstance(event, WorkerHealthChanged):
                text = f"worker {event.worker} {event.state}" + (
                    f": {event.reason}" if event.reason else ""
                )
            else:
                text = f"copy   {event.task_id} on {event.worker} ({event.reason})"
            if self.progress is not None:
                self.progress.console.print(text, markup=False)
            else:
                self.info(text)
        elif isinstance(event, RunFinished):
            if self.progress is not None:
                self.progress.stop()
                self.progress = None
            counts = ", ".join(f"{v} {k}" for k, v in sorted(event.counts.items()))
            self.info(
                f"run {event.run_id} {event.status.upper()} in {event.duration_s:.1f}s: {counts}"
            )
