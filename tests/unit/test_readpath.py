"""The service's shared answers (dtf_core/service/readpath.py): one summary build
per run however many ask, a fresh one once the run ended, the workers read once
per half second. Real threads, no Dask."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from dtf_core.service import readpath
from dtf_core.service.readpath import ReadPath


class Builder:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, run_id: str) -> dict[str, Any]:
        self.gate.wait(10)
        self.calls.append(run_id)
        return {"run_id": run_id, "build": len(self.calls)}


@pytest.fixture
def path() -> Any:
    b = Builder()
    rp = ReadPath(b)
    yield rp, b
    rp.shutdown()


def test_concurrent_askers_share_one_build(path: Any) -> None:
    rp, b = path
    b.gate.clear()
    futures = [rp.summary("r1", final=True) for _ in range(20)]
    b.gate.set()
    assert {f.result(10)["build"] for f in futures} == {1}
    assert b.calls == ["r1"]
    assert rp.summary("r1", final=True).result(10)["build"] == 1  # kept: the run ended


def test_a_run_in_flight_is_built_again_and_once_more_when_it_ends(path: Any) -> None:
    rp, _ = path
    assert rp.summary("r1", final=False).result(10)["build"] == 1
    assert rp.summary("r1", final=False).result(10)["build"] == 2  # it moved on meanwhile
    rp.run_ended("r1")  # what the run manager does on RunFinished
    assert rp.summary("r1", final=True).result(10)["build"] == 3
    assert rp.summary("r1", final=True).result(10)["build"] == 3


def test_a_build_begun_before_the_end_is_not_served_after_it(path: Any) -> None:
    rp, b = path
    b.gate.clear()
    early = rp.summary("r1", final=False)
    late = rp.summary("r1", final=True)
    assert late is not early
    b.gate.set()
    assert late.result(10)["build"] == 2


def test_a_finished_runs_summary_is_rebuilt_after_other_runs_ended(
    path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rp, b = path
    rp.run_ended("r1")
    assert rp.summary("r1", final=True).result(10)["build"] == 1
    rp.run_ended("r2")  # its trends now include r2, but not at once
    assert rp.summary("r1", final=True).result(10)["build"] == 1
    monkeypatch.setattr(readpath, "SUMMARY_REUSE_S", 0.0)
    assert rp.summary("r1", final=True).result(10)["run_id"] == "r1"
    assert b.calls.count("r1") == 2


def test_a_failed_build_is_tried_again(path: Any) -> None:
    calls: list[int] = []

    def flaky(run_id: str) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database busy")
        return {"ok": True}

    rp = ReadPath(flaky)
    try:
        with pytest.raises(RuntimeError):
            rp.summary("r1", final=True).result(10)
        assert rp.summary("r1", final=True).result(10) == {"ok": True}
    finally:
        rp.shutdown()


def test_workers_are_read_once_per_interval_and_refreshed_in_the_background(path: Any) -> None:
    rp, _ = path
    rp.worker_list.fresh_s = 0.4
    reads: list[float] = []

    def read() -> list[int]:
        reads.append(time.monotonic())
        return [len(reads)]

    assert rp.workers(read).result(10) == [1]
    assert rp.workers(read).result(10) == [1]  # from memory
    time.sleep(0.25)  # past half the interval: answered from memory, refreshed behind
    assert rp.workers(read).result(10) == [1]
    deadline = time.monotonic() + 5
    while len(reads) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert rp.workers(read).result(10) == [2]
    time.sleep(0.5)  # too old: a one-off request waits for a fresh read
    assert rp.workers(read).result(10) == [3]
    assert len(reads) == 3


def test_a_failed_workers_read_is_not_kept(path: Any) -> None:
    rp, _ = path

    def broken() -> list[int]:
        raise ConnectionError("scheduler gone")

    with pytest.raises(ConnectionError):
        rp.workers(broken).result(10)
    assert rp.workers(lambda: [1]).result(10) == [1]
