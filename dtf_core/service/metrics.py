"""Prometheus metrics of ``dtf-core serve`` (``GET /metrics``, text format 0.0.4).

Two kinds, kept apart on purpose:

* **Counted as it happens** (the service's lifetime; Prometheus handles the
  reset at a restart): tasks finished by status (``rate()`` of it is the tasks
  per second), failed attempts by error category, API request latency per
  route *template* (``/v1/runs/{id}/tasks``, never the raw path: one series per
  run would grow without bound), and the duration of each database flush.
* **Read at scrape time** (:class:`_StateCollector`): runs by status from the
  database, runs queued and tasks still to finish (the queue depth), workers by
  health state with their resources, threads, CPU and memory from the
  scheduler, and the size of the database file.

A registry per :class:`ServiceMetrics`, not the process-global one: several
services in one process (the tests) must not share series. Every metric this
module exports is listed in :data:`METRIC_NAMES`: the Grafana dashboard in
``configs/grafana/dtf.json`` may use only these (a test checks it).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from dtf_core.events import AttemptFailed, Event, TaskFinished

if TYPE_CHECKING:
    from prometheus_client import Metric

    from dtf_core.service.runmanager import ActiveRun, RunManager

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
logger = logging.getLogger("dtf.service")

# Every family this module exports (counters without their ``_total`` suffix,
# histograms without ``_bucket``/``_sum``/``_count``, as the parser names them).
METRIC_NAMES = (
    "dtf_runs",
    "dtf_runs_queued",
    "dtf_tasks_pending",
    "dtf_tasks_finished",
    "dtf_attempts_failed",
    "dtf_workers",
    "dtf_worker_resources",
    "dtf_worker_threads",
    "dtf_worker_cpu_percent",
    "dtf_worker_memory_bytes",
    "dtf_worker_memory_limit_bytes",
    "dtf_api_request_duration_seconds",
    "dtf_db_size_bytes",
    "dtf_db_write_duration_seconds",
    "dtf_db_attempts_written",
    "dtf_scrape_errors",
)
# Seconds: API answers range from a cached JSON (< 1 ms) to a long-poll (30 s).
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
DB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# A path part that is one of a few words stays in the route label; anything else is an id.
_WORDS = re.compile(r"\(\w+(?:\|\w+)*\)")
_GROUP = re.compile(r"(\([^()]*\))")


class ServiceMetrics:
    """The metrics of one service: fed by the run manager's events, the HTTP
    layer and the store; rendered on each scrape."""

    def __init__(
        self,
        manager: RunManager,
        *,
        db_path: str,
        workers: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        # One `_created` series per counter and histogram doubles the series for a
        # timestamp Prometheus itself does not use (process-wide switch: serve's process).
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=False)
        self.tasks_finished = Counter(
            "dtf_tasks_finished", "Tasks finished, by final status (rate() = tasks per second).",
            ["status"], registry=self.registry,
        )  # fmt: skip
        self.attempts_failed = Counter(
            "dtf_attempts_failed", "Failed attempts (retried or final), by error category.",
            ["category"], registry=self.registry,
        )  # fmt: skip
        self.api_latency = Histogram(
            "dtf_api_request_duration_seconds", "API request duration, by route template.",
            ["method", "route", "code"], buckets=API_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.db_write = Histogram(
            "dtf_db_write_duration_seconds", "Duration of each database flush (one transaction).",
            buckets=DB_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.db_rows = Counter(
            "dtf_db_attempts_written", "Attempts written to the database.", registry=self.registry
        )
        self.scrape_errors = Counter(
            "dtf_scrape_errors", "Parts of a scrape that could not be read (database, scheduler).",
            ["part"], registry=self.registry,
        )  # fmt: skip
        self.registry.register(_StateCollector(self, manager, db_path, workers))

    # ---- fed by the service --------------------------------------------------

    def on_event(self, run: ActiveRun, event: Event) -> None:
        """A run's event (the run's thread): count what finished and what failed."""
        if isinstance(event, TaskFinished):
            self.tasks_finished.labels(event.status).inc()
        elif isinstance(event, AttemptFailed):
            self.attempts_failed.labels(event.category or "unknown").inc()

    def observe_request(self, method: str, route: str, code: int, seconds: float) -> None:
        self.api_latency.labels(method, route, str(code)).observe(seconds)

    def observe_flush(self, seconds: float, attempts: int) -> None:
        self.db_write.observe(seconds)
        self.db_rows.inc(attempts)

    def render(self) -> bytes:
        """The text exposition (blocking: it reads the database and the scheduler)."""
        return bytes(generate_latest(self.registry))


def route_template(pattern: str, path: str) -> str | None:
    """``pattern`` (a tornado route regex) as a label for ``path``: a group that
    is one of a few words keeps the word, any other group becomes ``{id}``.
    None when ``path`` does not match."""
    match = re.fullmatch(pattern.rstrip("$"), path)
    if match is None:
        return None
    out, group = [], 0
    for part in _GROUP.split(pattern.lstrip("^").rstrip("$")):
        if _GROUP.fullmatch(part):
            group += 1
            out.append(match.group(group) if _WORDS.fullmatch(part) else "{id}")
        else:
            out.append(part.replace("\\", ""))
    return "".join(out)


class _StateCollector(Collector):
    """What is true now, asked at each scrape (one database query, one scheduler call)."""

    def __init__(
        self,
        metrics: ServiceMetrics,
        manager: RunManager,
        db_path: str,
        workers: Callable[[], list[dict[str, Any]]] | None,
    ) -> None:
        self.metrics, self.manager, self.db_path = metrics, manager, db_path
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        yield from self._runs()
        yield from self._workers()
        size = GaugeMetricFamily("dtf_db_size_bytes", "Database file size, with its WAL.")
        size.add_metric([], float(_file_size(self.db_path) + _file_size(self.db_path + ".wal")))
        yield size

    def _runs(self) -> Iterator[Metric]:
        active = self.manager.active()
        runs = GaugeMetricFamily("dtf_runs", "Runs by status (the database's, plus those queued).",
                                 labels=["status"])  # fmt: skip
        try:
            counts = Tally(self.manager.store.run_counts())
        except Exception as exc:  # a scrape must answer even when the database does not
            logger.warning("metrics: could not count runs: %s", exc)
            self.metrics.scrape_errors.labels("database").inc()
            counts = Tally()
        queued = [r for r in active if r.status == "queued"]
        counts["queued"] += len(queued)
        for status in ("queued", "running", "passed", "failed", "cancelled", "error"):
            counts.setdefault(status, 0)
        for status, n in sorted(counts.items()):
            runs.add_metric([status], float(n))
        yield runs
        yield _gauge("dtf_runs_queued", "Runs waiting for a free slot.", len(queued))
        pending = sum(max(0, r.total - r.done) for r in active)
        yield _gauge("dtf_tasks_pending", "Tasks of active runs not finished yet.", pending)

    def _workers(self) -> Iterator[Metric]:
        states = GaugeMetricFamily("dtf_workers", "Workers by health state.", labels=["state"])
        resources = GaugeMetricFamily(
            "dtf_worker_resources", "Resources of the workers, summed.", labels=["resource"]
        )
        cpu = GaugeMetricFamily("dtf_worker_cpu_percent", "CPU of each worker.", labels=["worker"])
        memory = GaugeMetricFamily(
            "dtf_worker_memory_bytes", "Memory of each worker.", labels=["worker"]
        )
        limit = GaugeMetricFamily(
            "dtf_worker_memory_limit_bytes", "Memory limit of each worker.", labels=["worker"]
        )
        try:
            workers = self.workers() if self.workers is not None else []
        except Exception as exc:
            logger.warning("metrics: could not list workers: %s", exc)
            self.metrics.scrape_errors.labels("scheduler").inc()
            workers = []
        by_state: Tally[str] = Tally({"running": 0, "paused": 0, "stale": 0})
        totals: Tally[str] = Tally()
        now, n_threads = time.time(), 0
        for w in workers:
            by_state[health(w, now)] += 1
            totals.update({k: float(v) for k, v in (w.get("resources") or {}).items()})
            n_threads += int(w.get("nthreads") or 0)
            name = str(w.get("name") or w.get("address"))
            cpu.add_metric([name], float(w.get("cpu") or 0.0))
            memory.add_metric([name], float(w.get("memory") or 0))
            limit.add_metric([name], float(w.get("memory_limit") or 0))
        for state, n in sorted(by_state.items()):
            states.add_metric([state], float(n))
        for name, total in sorted(totals.items()):
            resources.add_metric([name], float(total))
        threads = _gauge("dtf_worker_threads", "Threads of all workers.", n_threads)
        yield from (states, resources, threads, cpu, memory, limit)


def health(worker: dict[str, Any], now: float, stale_after: float = 30.0) -> str:
    """``running``, ``paused`` (Dask paused it: memory), ``stale`` (no heartbeat
    for ``stale_after`` s: hung or cut off) or Dask's own status otherwise."""
    seen = worker.get("last_seen")
    if seen and now - float(seen) > stale_after:
        return "stale"
    return str(worker.get("status") or "running")


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
