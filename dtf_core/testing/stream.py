"""Reading the JSON-lines stream that ``dtf_core.pytest_plugin`` writes while
pytest runs (``--dtf-stream``).

The stream exists for the cases JUnit XML cannot cover: pytest killed by a
crash or by the per-test timeout writes no XML, yet the stream still says which
tests finished (and how), which one was running, and so which never started.
While pytest runs, :class:`Tail` follows the file to report live progress.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dtf_core.model import TestResult

log = logging.getLogger(__name__)


@dataclass
class StreamState:
    tests: list[TestResult] = field(default_factory=list)
    started: list[str] = field(default_factory=list)  # in order
    running: str | None = None  # started, never ended: the test that was running
    timed_out: tuple[str, float] | None = None  # (nodeid, limit) from the watchdog
    # What the process collected ({nodeid, file, resources[, problem]}), in
    # pytest's order; None until collection finished.
    collected: list[dict[str, Any]] | None = None
    yielded: bool = False  # stopped between tests on dtf's request (see split())
    # Not started, handed to another task on dtf's request (an idle worker):
    # never this process's to run, even if it dies.
    given: list[str] = field(default_factory=list)


def read(path: Path) -> StreamState:
    state = StreamState()
    if not path.exists():
        return state
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # the last line of a killed writer may be cut short
            _apply(state, rec)
    return state


def _apply(state: StreamState, rec: dict[str, Any]) -> None:
    event, nodeid = rec.get("event"), str(rec.get("nodeid", ""))
    if event == "start":
        state.started.append(nodeid)
        state.running = nodeid
    elif event == "result":
        state.tests.append(
            TestResult(
                nodeid=nodeid,
                outcome=str(rec.get("outcome", "error")),
                duration_s=float(rec.get("duration") or 0.0),
                message=str(rec.get("message") or ""),
            )
        )
    elif event == "end":
        state.running = None
    elif event == "timeout":
        state.timed_out = (nodeid, float(rec.get("after") or 0.0))
    elif event == "collected":
        state.collected = list(rec.get("items") or [])
    elif event == "yielded":
        state.yielded = True
    elif event == "gave":
        state.given.extend(str(n) for n in rec.get("nodeids") or [])


def salvage(
    state: StreamState, targets: list[str], exit_code: int | None, task_timed_out: bool
) -> tuple[list[TestResult], list[str]]:
    """Results of a pytest process that died, and the node ids still to run.

    The test that was running is reported once, as failed, with why it died;
    ``targets`` are what the process was asked to run. Files and directories
    resolve to the node ids it collected (none if it died before collecting
    them: then nothing can be resumed), and modules skipped or broken at
    collection are reported as pytest counts them.
    """
    tests = list(state.tests)
    if any("::" not in t for t in targets) and state.collected is not None:
        targets = [str(r["nodeid"]) for r in state.collected if "problem" not in r]
        tests += [
            TestResult(str(r["nodeid"]), str(r["problem"]), message=str(r.get("message", "")))
            for r in state.collected
            if r.get("problem") in ("skipped", "error")
        ]
    if state.running:
        if state.timed_out and state.timed_out[0] == state.running:
            limit = state.timed_out[1]
            why = f"timed out after {limit:g}s (per-test timeout); process group killed"
        elif task_timed_out:
            why = "still running when the task's timeout killed its process group"
        else:
            why = f"crashed: the pytest process {_describe_exit(exit_code)}"
        tests.append(TestResult(nodeid=state.running, outcome="failed", message=why))
    seen = set(state.started) | set(state.given)
    remaining = [t for t in targets if t not in seen and "::" in t]
    return tests, remaining


def not_started(state: StreamState) -> list[str]:
    """The collected tests that never started (pytest order), after a yield."""
    seen = set(state.started) | set(state.given)
    return [
        str(r["nodeid"])
        for r in state.collected or []
        if "problem" not in r and r["nodeid"] not in seen
    ]


def _describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "vanished"
    if exit_code < 0:
        try:
            return f"was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"was killed by signal {-exit_code}"
    return f"exited {exit_code} mid-test"


Publish = Callable[[dict[str, int], int | None, dict[str, list[str]] | None], None]


class Tail(threading.Thread):
    """Follows the stream while pytest runs and hands outcome counts (deltas)
    to ``publish`` at most every ``interval`` seconds, with the number of tests
    collected the first time it is known (else None), and the tests it gave
    away (``{"gave": [...]}``, else None) as soon as it did."""

    def __init__(
        self,
        path: Path,
        publish: Publish,
        interval: float = 0.5,
    ) -> None:
        super().__init__(daemon=True, name="dtf-pytest-tail")
        self.path, self.publish, self.interval = path, publish, interval
        self._halt = threading.Event()
        self._pos = 0

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)
        self._poll()  # the last lines written before pytest exited

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self._poll()

    def _poll(self) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._pos)
                chunk = fh.read()
        except OSError:
            return
        # Only whole lines: the writer may be in the middle of one.
        end = chunk.rfind(b"\n") + 1
        self._pos += end
        counts: Counter[str] = Counter()
        collected: int | None = None
        gave: dict[str, list[str]] | None = None
        for line in chunk[:end].decode("utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("event") == "result":
                counts[str(rec.get("outcome"))] += 1
            elif rec.get("event") == "collected":
                collected = sum(1 for r in rec.get("items") or [] if "problem" not in r)
            elif rec.get("event") == "gave":
                gave = gave or {"gave": []}
                gave["gave"] += [str(n) for n in rec.get("nodeids") or []]
        if counts or collected is not None or gave is not None:
            # Progress is best effort; the results still come back with the
            # task, the tests given away too (AttemptResult.given).
            try:
                self.publish(dict(counts), collected, gave)
            except Exception:
                log.debug("publishing pytest progress failed", exc_info=True)
