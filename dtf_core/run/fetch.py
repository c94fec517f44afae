"""Results of finished Dask tasks, fetched without holding up the run loop.

``Future.result()`` on the loop's thread waits for the bytes: when the host
holding a result has just vanished (its link cut, the machine frozen), that
wait lasts until TCP or ``worker-ttl`` gives up, up to minutes, and meanwhile
nothing else is recorded or streamed, although other hosts keep finishing
tasks. So every fetch runs on the client's event loop, one scheduler
``gather`` per key (Dask's own ``Client.gather`` would merge concurrent
fetches into one request, which waits for its slowest key), with a timeout.

A fetch that times out or finds the result gone is set aside and tried again
later with a longer timeout. Meanwhile Dask may notice that the holder is gone:
the future turns ``lost``/``pending`` and Dask computes it again on another
worker (the client still wants it), after which the fetch is tried again; or it
turns ``error``/``cancelled`` (the scheduler went away), which is handed back
as such. A result that stays unfetchable for ``dtf.result-fetch.give-up`` is
handed back as a failure (:class:`ResultLostError`, an ``infrastructure``
error): the run retries the task under its ``retries`` like any transient
failure.

A part the :class:`~dtf_core.run.coordinator.Coordinator` owns, one per run;
its loop hands in done futures (:meth:`ResultFetcher.fetch`) and collects what
came back once per turn (:meth:`ResultFetcher.poll`). Nothing here decides
about a task; one result is handed back per future handed in.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distributed import Client, Future

from dtf_core import config
from dtf_core.backoff import backoff

log = logging.getLogger(__name__)

# Fetches on the wire at once: each holds a connection to the scheduler, and
# the client's pool waits (inside the timeout) when it runs out of them.
MAX_IN_FLIGHT = 32


class ResultLostError(Exception):
    """A finished task's result could not be fetched (its worker is gone or does not answer)."""


class _Missing(Exception):
    """The scheduler had no worker to fetch the key from."""


@dataclass
class Fetched:
    """What came back for one done future."""

    future: Future
    value: Any = None
    error: BaseException | None = None
    # False: the future did not (stay) finished (it erred, was cancelled):
    # look at the future itself, as for any future that failed.
    finished: bool = True


@dataclass
class _Fetch:
    future: Future
    since: float  # monotonic: when the first fetch was asked for
    tries: int = 0
    sent: float = 0.0  # monotonic: when the fetch on the wire was sent
    timeout: float = 0.0
    wire: concurrent.futures.Future | None = None
    due: float = 0.0  # set aside: try again from then


async def _gather_one(client: Client, key: str, timeout: float) -> Any:
    rpc = client.scheduler
    if rpc is None:
        raise OSError("the client is not connected")
    response = await asyncio.wait_for(rpc.gather(keys=[key]), timeout)
    if response.get("status") != "OK":
        raise _Missing(f"no worker holds {key} now")
    return response["data"][key]


def _transient(exc: BaseException) -> bool:
    """A failure worth trying again: no answer, a closed connection, no holder.
    Anything else (a result refused on the way in, say) is the answer."""
    return isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError | _Missing)


class ResultFetcher:
    def __init__(
        self,
        client: Callable[[], Client],
        *,
        wake: Callable[[], None] = lambda: None,
        timeout: float | None = None,
        give_up: float | None = None,
    ) -> None:
        self._client = client  # the loop's client now (a lost scheduler replaces it)
        self._wake = wake  # called from the client's thread when a fetch ends: poll() now
        self.timeout = config.seconds("result-fetch.timeout") if timeout is None else timeout
        self.give_up = config.seconds("result-fetch.give-up") if give_up is None else give_up
        self._fetches: dict[str, _Fetch] = {}
        self._queued: deque[str] = deque()  # keys waiting for a place on the wire
        self._back: list[Fetched] = []
        self.set_aside = 0  # fetches that had to be tried again (for tests and logs)

    def fetch(self, fut: Future) -> None:
        """Fetch the result of done future ``fut``; it comes back through :meth:`poll`."""
        key = str(fut.key)
        if key in self._fetches:
            return  # the same future handed in twice: one answer
        now = time.monotonic()
        if fut.status in ("pending", "lost"):
            # Its result was lost before anyone asked (Dask computes it again).
            self._fetches[key] = _Fetch(fut, now, due=now)
        elif fut.status == "finished":
            self._fetches[key] = _Fetch(fut, now)
            self._queued.append(key)
        else:
            self._back.append(Fetched(fut, finished=False))

    def pending(self) -> int:
        return len(self._fetches)

    def poll(self) -> list[Fetched]:
        """Everything that came back since the last call; starts what is due. Never blocks."""
        now = time.monotonic()
        for key, f in list(self._fetches.items()):
            if f.wire is not None:
                self._check_wire(key, f, now)
            elif f.due and f.due <= now and key not in self._queued:
                self._check_aside(key, f, now)
        self._send(now)
        back, self._back = self._back, []
        return back

    def close(self) -> None:
        """Stop every fetch (the run is over; nobody will read them)."""
        for f in self._fetches.values():
            if f.wire is not None:
                f.wire.cancel()
        self._fetches.clear()
        self._queued.clear()

    # -------------------------------------------------------------- internals
    def _send(self, now: float) -> None:
        on_wire = sum(1 for f in self._fetches.values() if f.wire is not None)
        while self._queued and on_wire < MAX_IN_FLIGHT:
            key = self._queued.popleft()
            f = self._fetches.get(key)
            if f is None:
                continue
            client = self._client()
            # Each try waits longer: a big result on a slow link must fit at last.
            f.timeout = backoff(f.tries, self.timeout, max(self.timeout, self.give_up))
            f.sent, f.due = now, 0.0
            try:
                loop = getattr(client.loop, "asyncio_loop", None)
                if loop is None:
                    raise OSError("the client has no event loop")
                f.wire = asyncio.run_coroutine_threadsafe(_gather_one(client, key, f.timeout), loop)
            except Exception as exc:  # the client is closing: try again later
                self._aside(key, f, now, exc)
                continue
            f.wire.add_done_callback(lambda _: self._wake())
            on_wire += 1

    def _check_wire(self, key: str, f: _Fetch, now: float) -> None:
        assert f.wire is not None
        if not f.wire.done():
            # wait_for ends it on the loop; this only guards against a stuck loop.
            if now - f.sent > f.timeout + 5:
                f.wire.cancel()
                self._aside(key, f, now, TimeoutError("no answer"))
            return
        wire, f.wire = f.wire, None
        try:
            value = wire.result()
        except concurrent.futures.CancelledError as exc:
            self._aside(key, f, now, exc)
        except Exception as exc:
            if _transient(exc):
                self._aside(key, f, now, exc)
            else:
                self._done(key, Fetched(f.future, error=exc))
        else:
            self._done(key, Fetched(f.future, value=value))

    def _check_aside(self, key: str, f: _Fetch, now: float) -> None:
        status = f.future.status
        if status == "finished":
            if now - f.since > self.give_up:
                why = ResultLostError(
                    f"the result of {key} could not be fetched for {now - f.since:.0f}s "
                    "(its worker is gone or does not answer)"
                )
                self._done(key, Fetched(f.future, error=why))
                return
            self._queued.append(key)
        elif status in ("pending", "lost"):
            # Dask computes it again elsewhere (its holder is gone): look again
            # soon; the give-up clock starts again when it is finished again.
            f.due, f.since, f.tries = now + 0.5, now, 0
        else:  # error, cancelled: not a result any more
            self._done(key, Fetched(f.future, finished=False))

    def _aside(self, key: str, f: _Fetch, now: float, why: BaseException) -> None:
        f.tries += 1
        f.due = now + backoff(f.tries - 1, 0.5, 10.0)
        self.set_aside += 1
        log.info(
            "result of %s not fetched (%s: %s); set aside, try %d in %.1fs",
            key, type(why).__name__, why, f.tries + 1, f.due - now,
        )  # fmt: skip

    def _done(self, key: str, fetched: Fetched) -> None:
        self._fetches.pop(key, None)
        self._back.append(fetched)
