"""The workers a run can use, as the run loop sees them.

Who is connected with which resources (routing is checked before submit: Dask
would keep a task nobody can run waiting forever), their hardware (stored once,
from a worker's first result), and the workers whose results were rejected
(cluster mode: they get no more work). One per run, owned by the
:class:`~dtf_core.run.coordinator.Coordinator`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from distributed import Client

from dtf_core.cluster import embedded as cluster_mod
from dtf_core.errors import ClusterError
from dtf_core.model import AttemptResult
from dtf_core.run.decisions import rejected
from dtf_core.store import Store


class WorkerView:
    def __init__(self, store: Store, run_id: str) -> None:
        self._store = store
        self._run_id = run_id
        self.workers: dict[str, dict[str, Any]] = {}  # address -> name, host, resources, nthreads
        self._checked = 0.0
        self._known: set[str] = set()  # addresses already in the workers table
        self._hardware_known: set[str] = set()  # worker names whose hardware is stored
        self.distrusted: set[str] = set()  # worker names whose results were rejected
        # Worker names the health monitor quarantined (run/monitor.py): no new tasks.
        self.quarantined: set[str] = set()
        # Dask keys submitted restricted to these worker addresses (placement, moves,
        # probation): run/adaptive.py moves them on when those workers have all left.
        self.held: dict[str, list[str]] = {}

    def refresh(self, client: Client, force: bool = False) -> None:
        """Ask the scheduler again (at most once a second unless ``force``);
        record workers not seen before. (The client is an argument: the run
        loop replaces its client when a lost scheduler comes back.)"""
        now = time.monotonic()
        if not force and now - self._checked < 1.0:
            return
        self._checked = now
        try:
            self.workers = cluster_mod.current_workers(client)
        except ClusterError:
            return  # keep the last view; the health check of the scheduler is elsewhere
        new = [{"address": a, **w} for a, w in self.workers.items() if a not in self._known]
        if new:
            self._known.update(w["address"] for w in new)
            self._store.record_workers(self._run_id, [_row(w["address"], w, {}) for w in new])

    def hold(self, key: str, workers: list[str] | None) -> None:
        """Dask task ``key`` was submitted restricted to ``workers`` (None: anywhere)."""
        if workers:
            self.held[key] = list(workers)

    def stranded(self, inflight: Mapping[str, Any]) -> list[str]:
        """Keys in flight held to workers that have all left the cluster (a cut
        link, a restart: a worker that comes back has a new address). Dask would
        keep them waiting until its ``no-workers-timeout`` and then fail them."""
        for key in [k for k in self.held if k not in inflight]:
            del self.held[key]
        if not self.workers:
            return []  # no view of the cluster now: nothing to judge by
        return [k for k, addrs in self.held.items() if not any(a in self.workers for a in addrs)]

    def probe(self, client: Client, timeout: float) -> bool:
        """Whether the scheduler answers within ``timeout`` (the view is updated if so)."""
        try:
            self.workers = cluster_mod.current_workers(client, timeout=timeout)
        except ClusterError:
            return False
        return True

    def record_hardware(self, res: AttemptResult) -> None:
        """Workers report their hardware with their first result: store it once."""
        if not res.worker_info or res.worker in self._hardware_known:
            return
        self._hardware_known.add(res.worker)
        for address, w in self.workers.items():
            if w["name"] == res.worker:
                row = _row(address, w, res.worker_info)
                self._store.record_workers(self._run_id, [row], buffered=True)

    def capable(self, requires: dict[str, float]) -> list[dict[str, Any]]:
        """The trusted workers that have every resource ``requires`` names."""
        return [w for w in self.workers.values() if self._can(w, requires)]

    def _can(self, w: dict[str, Any], requires: dict[str, float]) -> bool:
        return w["name"] not in self.distrusted and all(
            w["resources"].get(k, 0) >= v for k, v in requires.items()
        )

    def threads(self) -> int:
        return sum(int(w.get("nthreads", 1)) for w in self.workers.values())

    def verified(
        self, res: AttemptResult, verify: Callable[[AttemptResult], str | None]
    ) -> AttemptResult:
        """``res`` if ``verify`` accepts its signature; else a failed attempt of
        category ``security`` (retried under the task's ``retries``), and its
        worker gets no more work."""
        reason = verify(res)
        if reason is None:
            return res
        # The name is what the result claims: a forger can only get an honest
        # worker distrusted (denial of service), never get a result accepted.
        self.distrusted.add(res.worker)
        return rejected(res, reason)

    def trusted_addresses(self) -> list[str] | None:
        """Restrict placement once some worker is distrusted (Dask has no "not there")."""
        if not self.distrusted:
            return None
        return [a for a, w in self.workers.items() if w["name"] not in self.distrusted]

    def able(self, requires: dict[str, float]) -> list[str]:
        """Addresses of the trusted workers that have every resource ``requires`` names."""
        return [a for a, w in self.workers.items() if self._can(w, requires)]

    def placement(self, requires: dict[str, float]) -> list[str] | None:
        """Where a task needing ``requires`` may go: trusted and not quarantined
        (None: anywhere). Quarantine never starves a task: when every capable
        worker is quarantined, those may run it."""
        if not self.quarantined:
            return self.trusted_addresses()
        fit = self.able(requires)
        well = [a for a in fit if self.workers[a]["name"] not in self.quarantined]
        return well or fit or self.trusted_addresses()

    def no_worker_message(self, requires: dict[str, float]) -> str:
        """Why a task is unschedulable: what it needs and what every worker has."""
        need = ", ".join(f"{k}={v:g}" for k, v in sorted(requires.items()))
        have = (
            "; ".join(
                f"{w['name']}: "
                + (", ".join(f"{k}={v:g}" for k, v in sorted(w["resources"].items())) or "none")
                for w in self.workers.values()
            )
            or "no workers"
        )
        return f"no worker has {need} (workers: {have})"


def _row(address: str, w: dict[str, Any], hardware: dict[str, Any]) -> dict[str, Any]:
    return {
        "address": address,
        "name": w["name"],
        "host": w["host"],
        "resources": w["resources"],
        "hardware": hardware,
    }
