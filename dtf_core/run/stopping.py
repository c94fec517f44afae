"""How a run stops before its end.

*Stopped early* (``--maxfail`` reached, :mod:`dtf_core.run.maxfail`): nothing
new starts, running pytest chunks stop after their current test (their
results, failures included, are recorded), other running work is cancelled
and every task not final ends ``cancelled``.

*Cancelled* (Ctrl-C, ``cancel`` on the service): the in-flight Dask work is
cancelled and every unfinished task ends ``cancelled``; the run ends cancelled.

*Detached* (an orderly stop of ``dtf-core serve``: SIGTERM, a rolling restart):
nothing new starts (tasks Dask has not started yet are taken back at once),
what runs may finish within a grace period and is recorded, and then this
coordinator lets go of the rest, ending nothing: the run stays ``running`` in
the database, where the next coordinator (a standby taking over, or the same
service started again) resumes it. Futures are released without ``force``,
before the database is let go, so that they can never cancel the next
coordinator's submissions of the same attempts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from typing import Any

from distributed import Client

from dtf_core.errors import Category
from dtf_core.model import TaskKind
from dtf_core.run.decisions import STOPPED
from dtf_core.run.state import TaskState

log = logging.getLogger(__name__)


def release(client: Client, inflight: dict[str, tuple[Any, Any]], *, force: bool) -> None:
    """Cancel every in-flight future of the run and forget them. With ``force``
    Dask cancels the work even if another client wants it too."""
    futures = [f for f, _ in inflight.values()]
    try:
        client.cancel(futures, force=force)
    except Exception:
        log.debug("cancelling %d in-flight future(s) failed", len(futures), exc_info=True)
    inflight.clear()


def stop_early(
    client: Client,
    inflight: dict[str, tuple[Any, Any]],
    states: dict[str, TaskState],
    end: Callable[..., None],
    ask_yield: Callable[[str], bool],
    streamed_failures: Collection[str] = (),
) -> None:
    """``--maxfail`` reached: cancel what runs, except finished work (its result
    is on the way, run/fetch.py), pytest chunks that agree to stop after
    their current test, and chunks that streamed failures (those reached the
    limit: their results must be stored); end every task not final, and not
    spared, cancelled."""
    for key, (fut, payloads) in list(inflight.items()):
        if fut.status == "finished":
            continue  # done, its result on the way: recorded as it is
        if all(p.spec.kind is TaskKind.PYTEST for p in payloads) and ask_yield(key):
            continue  # running: it stops after its current test and reports
        if any(p.spec.task_id in streamed_failures for p in payloads):
            # It streamed failures but no longer takes a request to yield: its
            # pytest has just exited (its own --maxfail, or its last test), and
            # its result is on the way. Cancelled, the failure that stopped the
            # run would be lost.
            continue
        inflight.pop(key, None)
        try:
            client.cancel([fut], force=True)
        except Exception:
            log.debug("cancelling %s failed", key, exc_info=True)
        for p in payloads:
            st = states[p.spec.task_id]
            if st.final is None:
                st.inflight = False
                end(st, "cancelled", Category.CANCELLED, STOPPED)
    for st in states.values():
        if st.final is None and not st.inflight:
            st.attempt += 1  # a waiting task never started this attempt
            end(st, "cancelled", Category.CANCELLED, STOPPED)


def end_cancelled(states: dict[str, TaskState], end: Callable[..., None]) -> None:
    """End every unfinished task as cancelled, each with an attempt of its own."""
    for st in states.values():
        if st.final is None:
            # The in-flight attempt never reported; a waiting one gets a new number.
            if not st.inflight:
                st.attempt += 1
            end(st, "cancelled", Category.CANCELLED, "the run was cancelled")


class Detach:
    """An orderly stop of one run's coordinator, asked for from any thread."""

    def __init__(self) -> None:
        self.at: float | None = None  # monotonic end of the grace
        self._unstarted_released = False

    @property
    def asked(self) -> bool:
        return self.at is not None

    def ask(self, grace: float) -> None:
        self.at = time.monotonic() + grace

    def done(self, client: Client, inflight: dict[str, tuple[Any, Any]]) -> bool:
        """Called by the run loop: whether it should stop now (nothing in flight
        is worth waiting for any more, or the grace is over)."""
        if self.at is None:
            return False
        if not self._unstarted_released:
            self._unstarted_released = True
            release_unstarted(client, inflight)
        return not inflight or time.monotonic() >= self.at


def release_unstarted(client: Client, inflight: dict[str, tuple[Any, Any]]) -> None:
    """Take back the futures no worker has started: waiting for them would
    only let the queue run on (the next coordinator starts them)."""
    rpc = client.scheduler
    if rpc is None:
        return
    try:
        # Bounded: with the scheduler gone this would wait for the client to give up.
        processing = client.sync(rpc.processing, workers=None, callback_timeout=5)
    except Exception:
        log.debug("asking the scheduler what runs failed; waiting for all", exc_info=True)
        return
    running = {str(k) for keys in processing.values() for k in keys}
    queued = {
        key: entry
        for key, entry in inflight.items()
        if key not in running and entry[0].status == "pending"
    }
    for key in queued:
        inflight.pop(key, None)
    log.info(
        "stopping: %d task(s) not started taken back; %d running: %s",
        len(queued), len(inflight), " ".join(sorted(inflight)[:8]),
    )  # fmt: skip
    if queued:
        release(client, queued, force=False)
