"""A run's state as the coordinator's events describe it, safe to read from
another thread.

The coordinator calls :meth:`LiveState.on_event` on its own loop thread; the
console's poll thread calls :meth:`LiveState.snapshot`. One lock guards both,
held only for dictionary updates and a shallow copy: the coordinator must never
wait on the view.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from dtf_core.events import (
    AttemptFailed,
    ClusterChanged,
    Event,
    RunFinished,
    RunStarted,
    TaskFinished,
    WorkerHealthChanged,
)
from dtf_core.service.views.storeread import live_worker, severity_of
from dtf_tui.snapshot import ClusterSnapshot, ErrorEvent, RunInfo, TaskRow, WorkerInfo

HISTORY = 30  # samples of CPU and memory kept per worker (one per poll)
THROUGHPUT_WINDOW = 30.0  # seconds over which the cluster's throughput is measured


class LiveState:
    def __init__(
        self,
        tasks: Iterable[tuple[str, str]] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._expected = list(tasks)  # (task_id, kind) of the suite, shown as pending
        self._runs: dict[str, RunInfo] = {}
        self._tasks: dict[str, TaskRow] = {}
        self._errors: list[ErrorEvent] = []
        self._finished_at: deque[float] = deque(maxlen=100_000)
        self._workers: dict[str, WorkerInfo] = {}
        self._history: dict[str, tuple[deque[float], deque[float]]] = {}
        self._running: set[str] = set()
        self._health: dict[str, tuple[str, str]] = {}  # worker name -> (state, reason)
        self.note = ""

    # ---- events (coordinator thread) -------------------------------------------

    def on_event(self, event: Event) -> None:
        now = self.clock()
        with self._lock:
            if isinstance(event, RunStarted):
                self._runs[event.run_id] = RunInfo(
                    event.run_id, event.suite, "running", now, total=event.total
                )
                self._tasks = {
                    tid: TaskRow(event.run_id, tid, kind) for tid, kind in self._expected
                }
            elif isinstance(event, AttemptFailed):
                self._on_attempt_failed(event, now)
            elif isinstance(event, TaskFinished):
                self._on_task_finished(event, now)
            elif isinstance(event, RunFinished):
                run = self._runs.get(event.run_id)
                if run is not None:
                    self._runs[event.run_id] = replace(
                        run, status=event.status, finished_at=now, eta_s=None
                    )
            elif isinstance(event, WorkerHealthChanged):
                self._health[event.worker] = (event.state, event.reason)
                for address, w in self._workers.items():
                    if w.name == event.worker:
                        self._workers[address] = replace(
                            w, health=event.state, health_reason=event.reason
                        )
            elif isinstance(event, ClusterChanged):
                self.note = event.message
                self._errors.append(
                    ErrorEvent(
                        event.run_id, "", 0, now, "infrastructure", "critical", event.message
                    )
                )

    def _hardware_of(self, worker: str) -> str:
        for w in self._workers.values():
            if w.name == worker:
                return w.hardware or w.resources_text
        return ""

    def _on_attempt_failed(self, event: AttemptFailed, now: float) -> None:
        self._errors.append(
            ErrorEvent(
                event.run_id,
                event.task_id,
                event.attempt,
                now,
                event.category,
                severity_of(event.category),
                event.message,
                event.worker,
                self._hardware_of(event.worker),
            )
        )
        row = self._tasks.get(event.task_id)
        if row is not None:
            self._tasks[event.task_id] = replace(
                row,
                status="retrying" if event.retry_in is not None else row.status,
                category=event.category,
                message=event.message,
                attempts=event.attempt,
                worker=event.worker,
            )

    def _on_task_finished(self, event: TaskFinished, now: float) -> None:
        row = self._tasks.get(event.task_id) or TaskRow(event.run_id, event.task_id)
        self._tasks[event.task_id] = replace(
            row,
            status=event.status,
            category=event.category,
            message=event.message,
            attempts=max(row.attempts, 1),
            wall_s=event.wall_s,
            worker=event.worker,
            flaky=event.flaky,
        )
        self._finished_at.append(now)
        run = self._runs.get(event.run_id)
        if run is not None:
            ok = event.status in ("passed", "skipped")
            self._runs[event.run_id] = replace(
                run,
                done=event.done,
                total=event.total,
                passed=run.passed + ok,
                failed=run.failed + (not ok),
                eta_s=event.eta_s,
            )

    # ---- cluster (poll thread) ---------------------------------------------------

    def update_workers(self, seen: list[dict[str, Any]]) -> None:
        """Fold in what the scheduler says now; a worker that left stays, as gone."""
        with self._lock:
            present = set()
            running: set[str] = set()
            for w in seen:
                address = w["address"]
                present.add(address)
                cpu, mem = self._history.setdefault(
                    address, (deque(maxlen=HISTORY), deque(maxlen=HISTORY))
                )
                # A source without metrics (dtf-core serve today) leaves them empty.
                if w.get("cpu") is not None:
                    cpu.append(float(w["cpu"]))
                if w.get("memory") is not None:
                    mem.append(float(w["memory"]))
                running.update(w.get("processing") or ())
                old = self._workers.get(address)
                name = str(w.get("name") or address)
                # From the service's /v1/workers; in a run of our own, from its events.
                if isinstance(w.get("health"), str):
                    self._health[name] = (str(w["health"]), str(w.get("health_reason") or ""))
                self._workers[address] = live_worker(
                    w, cpu, mem, old.hardware if old else "", self._health.get(name, ("", ""))
                )
            for address, old in self._workers.items():
                if address not in present and old.status != "gone":
                    self._workers[address] = replace(old, status="gone", running=0)
            self._running = running

    # ---- reads (poll thread) ---------------------------------------------------

    def _running_task_ids(self, run_id: str) -> set[str]:
        """Single-task Dask keys are ``dtf-<run>-<task_id>-a<attempt>`` (coordinator)."""
        prefix = f"dtf-{run_id}-"
        out = set()
        for key in self._running:
            if key.startswith(prefix) and "-a" in key:
                out.add(key[len(prefix) :].rsplit("-a", 1)[0])
        return out

    def snapshot(self, source: str) -> ClusterSnapshot:
        now = self.clock()
        with self._lock:
            runs = sorted(self._runs.values(), key=lambda r: r.started_at, reverse=True)
            tasks = dict(self._tasks)
            errors = tuple(self._errors)
            workers = tuple(sorted(self._workers.values(), key=lambda w: (w.name, w.address)))
            recent = sum(1 for t in self._finished_at if now - t <= THROUGHPUT_WINDOW)
            note = self.note
        if runs and runs[0].in_flight:
            for task_id in self._running_task_ids(runs[0].run_id):
                row = tasks.get(task_id)
                if row is not None and row.status in ("pending", "retrying"):
                    tasks[task_id] = replace(row, status="running")
        return ClusterSnapshot(
            source=source,
            taken_at=now,
            workers=workers,
            runs=tuple(runs),
            tasks=tuple(tasks.values()),
            errors=errors,
            throughput=recent / THROUGHPUT_WINDOW,
            note=note,
        )
