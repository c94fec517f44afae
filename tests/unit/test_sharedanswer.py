"""The run list /v1/runs answers from memory (dtf_core/service/readpath.py
SharedAnswer): read once per change, never served across a run beginning or
ending. A stand-in clock, a real thread pool, no Dask."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dtf_core.service.readpath import ReadPath, SharedAnswer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Reader:
    """Each read answers how many reads there were; ``gate`` holds them."""

    def __init__(self) -> None:
        self.n = 0
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def __call__(self) -> int:
        assert self.gate.wait(10)
        with self.lock:
            self.n += 1
            return self.n


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as p:
        yield p


def settle(answer: SharedAnswer, read: Reader, want: int) -> None:
    """Until the background read has landed (its done-callback ran)."""
    for _ in range(500):
        if read.n >= want and answer.get(read).done() and answer.get(read).result() == want:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"read {want} never landed")


def test_unmoved_answer_is_served_from_memory_until_idle(pool: Any) -> None:
    clock, read = Clock(), Reader()
    answer = SharedAnswer(pool, fresh_s=0.5, idle_s=5.0, clock=clock)
    assert answer.get(read).result(10) == 1
    clock.now += 2.0  # past fresh_s, but nothing moved: still from memory, no read
    held = answer.get(read)
    assert held.done() and held.result() == 1 and read.n == 1
    clock.now += 4.0  # past idle_s: a fresh read is waited for
    assert answer.get(read).result(10) == 2


def test_progress_is_served_for_fresh_s_then_read_again(pool: Any) -> None:
    clock, read = Clock(), Reader()
    answer = SharedAnswer(pool, fresh_s=0.5, idle_s=5.0, clock=clock)
    answer.get(read).result(10)
    answer.moved(structural=False)  # a task ended
    clock.now += 0.1
    assert answer.get(read).result() == 1 and read.n == 1
    clock.now += 0.2  # past half of fresh_s: served, and read again behind
    assert answer.get(read).result() == 1
    settle(answer, read, 2)
    answer.moved(structural=False)
    clock.now += 1.0  # the newest read is too old now: wait for another
    assert answer.get(read).result(10) == 3


def test_a_run_beginning_or_ending_is_never_missed(pool: Any) -> None:
    clock, read = Clock(), Reader()
    answer = SharedAnswer(pool, fresh_s=0.5, idle_s=5.0, clock=clock)
    answer.get(read).result(10)
    answer.moved(structural=True)  # same instant: the held answer is not served
    assert answer.get(read).result(10) == 2


def test_a_run_beginning_or_ending_starts_the_read_at_once(pool: Any) -> None:
    clock, read = Clock(), Reader()
    answer = SharedAnswer(pool, fresh_s=0.5, idle_s=5.0, clock=clock)
    answer.moved(structural=True)  # nobody asked yet: nothing to read
    assert read.n == 0
    answer.get(read).result(10)
    answer.moved(structural=True)
    pool.shutdown(wait=True)  # the read it started has landed
    assert read.n == 2
    held = answer.get(read)
    assert held.done() and held.result() == 2


def test_a_read_begun_before_a_run_ended_is_not_served_after_it(pool: Any) -> None:
    clock, read = Clock(), Reader()
    answer = SharedAnswer(pool, fresh_s=0.5, idle_s=5.0, clock=clock)
    read.gate.clear()
    early = answer.get(read)
    assert answer.get(read) is early  # concurrent askers share one read
    answer.moved(structural=True)
    late = answer.get(read)
    assert late is not early
    read.gate.set()
    assert {early.result(10), late.result(10)} == {1, 2}
    # Whichever landed last, the one begun after the run ended is what is served.
    assert answer.get(read).result(10) == late.result() and read.n == 2


def test_a_read_landing_late_does_not_replace_a_newer_one(pool: Any) -> None:
    answer = SharedAnswer(pool, fresh_s=0.5, idle_s=5.0, clock=Clock())
    slow = threading.Event()
    calls: list[int] = []

    def read() -> str:
        calls.append(1)
        if len(calls) == 1:  # the first read is slow and lands last
            return "early" if slow.wait(10) else "timeout"
        return "late"

    early = answer.get(read)
    answer.moved(structural=True)
    assert answer.get(read).result(10) == "late"
    slow.set()
    assert early.result(10) == "early"
    pool.shutdown(wait=True)  # every read's done-callback has run
    assert answer.get(read).result(10) == "late"


def test_a_failed_read_is_not_kept(pool: Any) -> None:
    answer = SharedAnswer(pool, fresh_s=0.5, idle_s=5.0, clock=Clock())

    def broken() -> int:
        raise OSError("database gone")

    with pytest.raises(OSError):
        answer.get(broken).result(10)
    assert answer.get(lambda: 7).result(10) == 7


def test_the_readpath_keeps_one_list_per_limit_and_moves_them_all() -> None:
    rp = ReadPath(lambda run_id: {})
    reads = {20: 0, 5: 0}

    def lister(limit: int) -> Any:
        def read() -> list[int]:
            reads[limit] += 1
            return [limit, reads[limit]]

        return read

    try:
        assert rp.runs(20, lister(20)).result(10) == [20, 1]
        assert rp.runs(5, lister(5)).result(10) == [5, 1]
        assert rp.runs(20, lister(20)).result(10) == [20, 1]  # from memory
        rp.runs_moved(rows=True)
        assert rp.runs(20, lister(20)).result(10) == [20, 2]
        assert rp.runs(5, lister(5)).result(10) == [5, 2]
    finally:
        rp.shutdown()
