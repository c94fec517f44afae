"""Two runs on one Dask client (as in ``dtf-core serve``) each get their own
worker events, and one run ending does not cut the other's."""

from __future__ import annotations

import queue
import time

from distributed import Client, LocalCluster

from dtf_core.run import topics


def _log(client: Client, run_id: str, n: int) -> None:
    # What the worker side does (runner.publish): a dict naming the run.
    client.run(lambda dask_worker: dask_worker.log_event("dtf-tests", {"run_id": run_id, "n": n}))


def _got(q: queue.Queue[dict], timeout: float = 20.0) -> dict | None:
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        return None


def _subscribed(client: Client, q: queue.Queue[dict], run_id: str) -> None:
    """A subscription reaches the scheduler asynchronously: log until one arrives."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _log(client, run_id, 0)
        try:
            q.get(timeout=0.3)
        except queue.Empty:
            continue
        time.sleep(0.3)
        while not q.empty():  # extra copies of the probe
            q.get_nowait()
        return
    raise AssertionError(f"no event for {run_id} in 30 s")


def test_each_run_gets_its_own_events_until_it_leaves() -> None:
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as lc,
        Client(lc) as client,
    ):
        a: queue.Queue[dict] = queue.Queue()
        b: queue.Queue[dict] = queue.Queue()
        topics.route(client, "dtf-tests", "run-a", a.put)
        topics.route(client, "dtf-tests", "run-b", b.put)
        _subscribed(client, a, "run-a")
        _subscribed(client, b, "run-b")
        _log(client, "run-a", 1)
        _log(client, "run-b", 2)
        assert (_got(a) or {}).get("n") == 1
        assert (_got(b) or {}).get("n") == 2
        topics.unroute(client, "dtf-tests", "run-a")
        _log(client, "run-b", 3)
        _log(client, "run-a", 4)
        assert (_got(b) or {}).get("n") == 3  # run a's end did not unsubscribe run b
        time.sleep(0.5)
        assert a.empty() and b.empty()  # run a's late event went nowhere
        topics.unroute(client, "dtf-tests", "run-b")
