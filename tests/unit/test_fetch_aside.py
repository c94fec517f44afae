"""The result fetcher's bookkeeping (run/fetch.py), table-style with fake
futures and a fake scheduler on a real event loop thread, as xdist tests its
schedulers with fake nodes: a fetch that hangs is set aside and tried again
while others come back, a result Dask computes again is waited for, and each
future gets exactly one answer. The real thing: tests/integration/test_fetch_stall.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from dtf_core.run.fetch import Fetched, ResultFetcher, ResultLostError


class FakeScheduler:
    """``gather`` answers per key from a script: a value, "hang", "missing", or an
    exception to raise; the last entry repeats."""

    def __init__(self, scripts: dict[str, list[Any]]) -> None:
        self.scripts = scripts
        self.asked: list[str] = []

    async def gather(self, keys: list[str]) -> dict[str, Any]:
        (key,) = keys
        self.asked.append(key)
        script = self.scripts[key]
        step = script.pop(0) if len(script) > 1 else script[0]
        if step == "hang":
            await asyncio.sleep(3600)
        if step == "missing":
            return {"status": "error", "keys": [key]}
        if isinstance(step, BaseException):
            raise step
        return {"status": "OK", "data": {key: step}}


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


def fetcher(loop: asyncio.AbstractEventLoop, scheduler: FakeScheduler, **kw: Any) -> ResultFetcher:
    client = SimpleNamespace(scheduler=scheduler, loop=SimpleNamespace(asyncio_loop=loop))
    return ResultFetcher(lambda: client, **{"timeout": 0.3, "give_up": 30.0, **kw})  # type: ignore[arg-type, return-value]


def future(key: str, status: str = "finished") -> Any:
    return SimpleNamespace(key=key, status=status)


def collect(f: ResultFetcher, n: int, timeout: float = 10.0) -> list[Fetched]:
    got: list[Fetched] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"{len(got)} of {n} came back"
        got += f.poll()
        time.sleep(0.02)
    return got


def test_a_hanging_fetch_is_set_aside_while_the_others_come_back(loop: Any) -> None:
    sched = FakeScheduler({"slow": ["hang", "late"], "a": [1], "b": [2]})
    f = fetcher(loop, sched)
    for key in ("slow", "a", "b"):
        f.fetch(future(key))
    first = collect(f, 2)
    assert sorted((g.future.key, g.value) for g in first) == [("a", 1), ("b", 2)]
    (last,) = collect(f, 1)
    assert (last.future.key, last.value, last.error, last.finished) == ("slow", "late", None, True)
    assert f.set_aside == 1 and sched.asked.count("slow") == 2
    assert f.poll() == [] and f.pending() == 0


def test_a_result_computed_again_is_fetched_once_it_is_back(loop: Any) -> None:
    sched = FakeScheduler({"k": ["missing", "again"]})
    f = fetcher(loop, sched)
    fut = future("k")
    f.fetch(fut)
    deadline = time.monotonic() + 5
    while f.set_aside == 0:
        assert time.monotonic() < deadline
        assert f.poll() == []
        time.sleep(0.02)
    fut.status = "lost"  # Dask gave the holder up and computes it again
    time.sleep(1.0)
    assert f.poll() == [] and sched.asked == ["k"]  # nothing asked while it is lost
    fut.status = "finished"
    (got,) = collect(f, 1)
    assert got.value == "again" and sched.asked == ["k", "k"]


@pytest.mark.parametrize("status", ["cancelled", "error"])
def test_a_future_that_failed_meanwhile_comes_back_as_not_finished(loop: Any, status: str) -> None:
    sched = FakeScheduler({"k": [OSError("connection closed")]})
    f = fetcher(loop, sched)
    fut = future("k")
    f.fetch(fut)
    fut.status = status  # e.g. the scheduler went away: futures are cancelled
    (got,) = collect(f, 1)
    assert got.finished is False and got.future is fut


def test_a_refused_result_is_an_answer_not_a_reason_to_ask_again(loop: Any) -> None:
    refusal = TypeError("Data serialized with pickle but only able to deserialize msgpack")
    sched = FakeScheduler({"k": [refusal]})
    f = fetcher(loop, sched)
    f.fetch(future("k"))
    (got,) = collect(f, 1)
    assert got.error is refusal and f.set_aside == 0


def test_a_result_that_stays_unfetchable_is_given_up(loop: Any) -> None:
    f = fetcher(loop, FakeScheduler({"k": ["missing"]}), give_up=0.8)
    f.fetch(future("k"))
    (got,) = collect(f, 1)
    assert isinstance(got.error, ResultLostError) and "could not be fetched" in str(got.error)


def test_each_future_gets_one_answer(loop: Any) -> None:
    f = fetcher(loop, FakeScheduler({"k": [7]}))
    fut = future("k")
    f.fetch(fut)
    f.fetch(fut)  # handed in twice
    f.fetch(future("gone", status="cancelled"))
    got = collect(f, 2)
    time.sleep(0.3)
    assert len(got + f.poll()) == 2
