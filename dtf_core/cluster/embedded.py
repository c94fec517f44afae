"""The only place that makes a Dask Client or an embedded cluster.

Embedded: a ``SpecCluster`` of Nanny worker processes on 127.0.0.1, each with its
own resources (DESIGN.md: heterogeneous tags need SpecCluster, and its host must
be given or it binds to the machine's network address). External: a Client to
``--scheduler ADDRESS``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dask.config
from distributed import Client, Nanny, Scheduler, Security, SpecCluster, Worker, WorkerPlugin
from distributed.core import Status

from dtf_core import config
from dtf_core.cluster import hardware, safepickle
from dtf_core.cluster.scheduler_preload import KEY_ID_HANDLER
from dtf_core.errors import ClusterError, OptionError

HEALTH_METRIC = "dtf-health"  # the worker metric dtf_core.worker.health fills

HEALTH_KEY = "dtf-health"  # scheduler metadata: worker name -> state, reason, since


@dataclass
class WorkerPlan:
    """One embedded worker: its resources and which of them were tagged by hand."""

    name: str
    nthreads: int
    resources: dict[str, float]
    tagged: dict[str, float] = field(default_factory=dict)  # not detected: from suite/CLI
    env: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        parts = []
        for k, v in sorted(self.resources.items()):
            text = f"{k}={v:g}"
            if k in self.tagged:
                text += " (tagged, not detected)"
            parts.append(text)
        return f"{self.name}: {self.nthreads} thread(s), " + (", ".join(parts) or "no resources")


@dataclass
class ClusterHandle:
    client: Client
    embedded: bool
    plans: list[WorkerPlan] = field(default_factory=list)
    cluster: SpecCluster | None = None
    dashboard: str | None = None  # Dask's dashboard, when on (``--dashboard``)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close(timeout=10)
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=10)


def plan_workers(
    n_workers: int, threads_per_worker: int, tags: list[dict[str, float]]
) -> list[WorkerPlan]:
    """Detected resources for each worker, with ``tags[i]`` added to worker i.

    A tag list longer than ``n_workers`` grows the cluster: asking to tag a
    third worker means you want a third worker.
    """
    if n_workers < 1:
        raise OptionError(f"--workers must be at least 1, got {n_workers}")
    if threads_per_worker < 1:
        raise OptionError(f"--threads-per-worker must be at least 1, got {threads_per_worker}")
    n = max(n_workers, len(tags))
    detected = hardware.detect_resources(n)
    plans = []
    for i in range(n):
        tag = tags[i] if i < len(tags) else {}
        resources = {**detected[i], **tag}
        plans.append(
            WorkerPlan(
                name=f"dtf-{i}",
                nthreads=threads_per_worker,
                resources=resources,
                tagged={k: v for k, v in tag.items() if detected[i].get(k) != v},
                env=hardware.worker_env(i, n),
            )
        )
    return plans


class QuickExit(WorkerPlugin):
    """Ends an embedded worker's process as soon as its worker has closed.

    After ``Worker.close`` (tasks released, process groups reaped, the scheduler told)
    the process still runs the interpreter's teardown, which is most of the time a
    cluster takes to close: measured 0.7 s of 0.75 s for two workers (docs/benchmarks.md).
    The nanny waits for that before ``dtf-core run`` can exit. Embedded workers are
    dtf's own processes and hold nothing worth a tidy teardown once closed, so the
    last step is ``os._exit(0)``. Only after a normal close: a worker that exits for
    another reason keeps the usual teardown and its exit status.
    """

    name = "dtf-quick-exit"

    def setup(self, worker: Worker) -> None:
        ref = weakref.ref(worker)

        def exit_now() -> None:
            w = ref()
            if w is not None and w.status == Status.closed:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)

        atexit.register(exit_now)  # registered last, so it runs first


class LostHeartbeatQuiet(WorkerPlugin):
    """Drops an embedded worker's "Failed to communicate with scheduler during
    heartbeat" log record (an ERROR with a traceback).

    The embedded scheduler lives in the ``dtf-core`` process itself: when it is
    gone or closing, that process is ending and says why in its own one line
    (a full disk: exit 3 and the ``--resume`` command). A heartbeat in flight
    during that close printed a Dask traceback next to it (seen in
    ``test_storage_faults``). Only this record, only in embedded workers: a
    ``dtf-core worker`` on another host keeps it (its operator needs it).
    """

    name = "dtf-lost-heartbeat-quiet"
    MESSAGE = "Failed to communicate with scheduler during heartbeat"

    def setup(self, worker: Worker) -> None:
        logging.getLogger("distributed.worker").addFilter(self._keep)

    def _keep(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.MESSAGE)


def _embedded_config() -> dict[str, Any]:
    return {
        # Tasks start subprocesses (pytest, commands), and some users'
        # benchmarks use multiprocessing: daemonic workers forbid that.
        "distributed.worker.daemon": bool(config.get("embedded.daemon")),
        "distributed.scheduler.worker-ttl": config.get("embedded.worker-ttl"),
        # A task whose last capable worker died would otherwise wait forever.
        "distributed.scheduler.no-workers-timeout": config.get("unschedulable-timeout"),
        # dtf retries a task whose worker died itself, so that the attempt is
        # recorded as worker-lost instead of Dask silently running it again.
        "distributed.scheduler.allowed-failures": int(config.get("embedded.allowed-failures")),
        # The statistical profiler samples the worker's threads every 10 ms; a dtf
        # task mostly waits for its subprocess, so there is little to see, and it
        # cost ~40 % of an idle worker's CPU (measured), taken from the tests.
        "distributed.worker.profile.enabled": bool(config.get("embedded.profile")),
    }


@contextlib.contextmanager
def open_cluster(
    scheduler: str | None = None,
    *,
    plans: list[WorkerPlan] | None = None,
    connect_timeout: float = 10.0,
    security: Security | None = None,
    dashboard: str | None = None,
    starting: Starting | None = None,
) -> Iterator[ClusterHandle]:
    """Yield a connected cluster; close what we started on the way out.
    ``starting``: an embedded cluster already on its way (:class:`Starting`), used
    instead of starting one here (``plans`` and ``dashboard`` are then its own).
    ``security`` (mutual TLS, docs/cluster.md) applies to ``scheduler`` only.
    ``dashboard`` (HOST:PORT) turns on Dask's dashboard of the embedded
    scheduler; an external scheduler's dashboard is its own (its link is
    found either way: :attr:`ClusterHandle.dashboard`)."""
    if scheduler:
        # The workers of a shared cluster run other people's code: read only
        # plain data from them (serve also installs safepickle process-wide).
        try:
            client = Client(
                scheduler, timeout=connect_timeout, set_as_default=False, security=security,
                deserializers=safepickle.DESERIALIZERS,
            )  # fmt: skip
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"could not reach the scheduler at {scheduler} within {connect_timeout:g}s "
                "(is one running there? `dask scheduler` starts one)"
            ) from exc
        handle = ClusterHandle(client=client, embedded=False, dashboard=dashboard_link(client))
        try:
            yield handle
        finally:
            handle.close()
        return

    if starting is not None:
        handle = starting.take()
    else:
        handle = _start_embedded(plans or plan_workers(2, 1, []), dashboard)
    try:
        yield handle
    finally:
        handle.close()


def _start_embedded(plans: list[WorkerPlan], dashboard: str | None) -> ClusterHandle:
    """Start the embedded cluster and wait for every worker (closed again on failure)."""
    dask.config.set(_embedded_config())
    workers = {
        p.name: {
            "cls": Nanny,
            "options": {
                "nthreads": p.nthreads,
                "host": "127.0.0.1",
                "resources": p.resources,
                "env": p.env,
                "name": p.name,
                "silence_logs": logging.ERROR,
                "plugins": (QuickExit(), LostHeartbeatQuiet()),  # passed on to the Worker
            },
        }
        for p in plans
    }
    # Off unless asked for; even off, Dask opens the port, so it stays on 127.0.0.1.
    sched = {
        "cls": Scheduler,
        "options": {"host": "127.0.0.1", "dashboard": dashboard is not None,
                    "dashboard_address": dashboard or "127.0.0.1:0"},
    }  # fmt: skip
    try:
        cluster = SpecCluster(
            workers=workers, scheduler=sched, silence_logs=logging.ERROR, name="dtf-embedded"
        )
    except Exception as exc:
        raise ClusterError(f"could not start the embedded cluster: {exc}") from exc
    client = Client(cluster, set_as_default=False)
    handle = ClusterHandle(client=client, embedded=True, plans=plans, cluster=cluster)
    if dashboard is not None:
        handle.dashboard = dashboard_link(client)
    try:
        client.wait_for_workers(len(plans), timeout=60)
    except BaseException:
        handle.close()
        raise
    return handle


class Starting:
    """An embedded cluster starting in a background thread, so that the command can
    import the store and open its database meanwhile: the workers' start (each a new
    interpreter importing distributed) is most of a short run's wait, and the command's
    own imports (pandas, DuckDB) fit in it. :func:`open_cluster` takes it over
    (``starting=``); :meth:`close` ends one nobody took (the database was locked, say).
    """

    def __init__(self, plans: list[WorkerPlan], dashboard: str | None = None) -> None:
        self._plans, self._dashboard = plans, dashboard
        self._handle: ClusterHandle | None = None
        self._error: BaseException | None = None
        self._taken = False
        self._thread = threading.Thread(target=self._start, name="dtf-cluster-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            self._handle = _start_embedded(self._plans, self._dashboard)
        except BaseException as exc:  # handed to the thread that takes it
            self._error = exc

    def take(self) -> ClusterHandle:
        """The started cluster (waits for it); its errors are raised here."""
        self._thread.join()
        self._taken = True
        if self._error is not None:
            raise self._error
        assert self._handle is not None
        return self._handle

    def close(self) -> None:
        """Close the cluster unless :func:`open_cluster` took it (it closes it then)."""
        if self._taken:
            return
        self._thread.join()
        self._taken = True
        if self._handle is not None:
            self._handle.close()


def scheduler_key_id(client: Client, timeout: float = 5.0) -> str | None:
    """The :func:`~dtf_core.cluster.security.key_id` of the worker key a dtf
    scheduler holds, or None when it does not say (not a dtf scheduler)."""

    async def _ask() -> Any:
        assert client.scheduler is not None
        return await getattr(client.scheduler, KEY_ID_HANDLER)()

    try:
        info = client.sync(_ask, callback_timeout=timeout)
    except Exception:
        return None
    held = info.get("admission") if isinstance(info, dict) else None
    return str(held) if held else None


def current_workers(client: Client, timeout: float = 5.0) -> dict[str, dict[str, Any]]:
    """Address -> {name, resources, nthreads, host, status, last_seen, cpu, memory,
    memory_limit} as the scheduler sees it now.

    ``scheduler_info()`` can block ~20 s when the scheduler is gone (DESIGN.md),
    so this asks the scheduler's ``identity`` handler with its own short
    timeout (plain data; a dtf scheduler refuses ``run_on_scheduler``).
    """

    async def _identity() -> dict[str, Any]:
        assert client.scheduler is not None
        info: dict[str, Any] = await client.scheduler.identity(n_workers=-1)
        return info

    try:
        info = client.sync(_identity, callback_timeout=timeout)
    except Exception as exc:
        raise ClusterError(f"could not list workers: {exc}") from exc
    return {
        str(addr): {
            "name": str(w.get("name", addr)),
            "resources": dict(w.get("resources") or {}),
            "nthreads": int(w.get("nthreads", 1)),
            "host": str(w.get("host", "")),
            # Health and load, for the service's metrics: Dask's status, its last
            # heartbeat (wall clock), and the worker's own CPU and memory numbers.
            "status": str(w.get("status", "running")),
            "last_seen": float(w.get("last_seen") or 0.0),
            "cpu": float((w.get("metrics") or {}).get("cpu") or 0.0),
            "memory": int((w.get("metrics") or {}).get("memory") or 0),
            "memory_limit": int(w.get("memory_limit") or 0),
            # What dtf's worker plugin samples rides the heartbeats (worker/health.py).
            "sample": dict((w.get("metrics") or {}).get(HEALTH_METRIC) or {}),
        }
        for addr, w in (info.get("workers") or {}).items()
    }


def dashboard_link(client: Client) -> str | None:
    """The URL of the scheduler's Dask dashboard, None when it has none."""
    try:
        if "dashboard" not in (client.scheduler_info(n_workers=0).get("services") or {}):
            return None
        return str(client.dashboard_link)
    except Exception:  # a link is a nicety: never a reason to fail
        return None


def dashboard_needs_bokeh() -> str | None:
    """One line saying how to get the dashboard's pages, when bokeh is missing
    (Dask then serves only a page asking for it, and its /info pages)."""
    import importlib.util

    if importlib.util.find_spec("bokeh") is not None:
        return None
    return (
        "Dask's dashboard draws its pages with bokeh, which is not installed: "
        "pip install 'dtf[dashboard]' (its /info pages work without it)"
    )


def processing(client: Client, timeout: float = 5.0) -> dict[str, list[str]]:
    """Worker address -> the keys assigned to it (running, or waiting there to run)."""

    async def _processing() -> dict[str, Any]:
        assert client.scheduler is not None
        info: dict[str, Any] = await client.scheduler.processing()
        return info

    try:
        info = client.sync(_processing, callback_timeout=timeout)
    except Exception as exc:
        raise ClusterError(f"could not ask the scheduler what its workers run: {exc}") from exc
    return {str(a): [str(k) for k in keys] for a, keys in (info or {}).items()}


def publish_health(
    client: Client, worker: str, value: dict[str, Any], timeout: float = 2.0
) -> None:
    """Leave a worker's health state on the scheduler (``dtf-core workers
    --scheduler`` reads it); display only: any client could write there."""

    async def _set() -> None:
        assert client.scheduler is not None
        await client.scheduler.set_metadata(keys=[HEALTH_KEY, worker], value=value)

    try:
        client.sync(_set, callback_timeout=timeout)
    except Exception as exc:
        raise ClusterError(f"could not publish the health of {worker}: {exc}") from exc


def published_health(client: Client, timeout: float = 5.0) -> dict[str, dict[str, Any]]:
    """Worker name -> the health state coordinators left on the scheduler."""

    async def _get() -> Any:
        assert client.scheduler is not None
        return await client.scheduler.get_metadata(keys=[HEALTH_KEY], default={})

    try:
        found = client.sync(_get, callback_timeout=timeout)
    except Exception as exc:
        raise ClusterError(f"could not read worker health from the scheduler: {exc}") from exc
    return {str(k): dict(v) for k, v in (found or {}).items() if isinstance(v, dict)}
