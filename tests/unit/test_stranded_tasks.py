"""A task held to workers that have all left the cluster (a cut link: the host
comes back under a new address) goes where placement says now, instead of
waiting for Dask's no-workers-timeout and ending unschedulable (seen on the
namespace test bed: a probation task pinned to a worker whose link was then cut).
Real Store and parts; no Dask: only the keys of the in-flight tasks are used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dtf_core.model import TaskKind, TaskPayload, TaskSpec
from dtf_core.run.adaptive import Adaptive
from dtf_core.run.monitor import REHOME_PER_LOOK
from dtf_core.run.speculation import Pair, Twin
from dtf_core.run.state import TaskState
from dtf_core.run.workers import WorkerView
from dtf_core.store import Store

GONE, HERE = "tcp://10.0.0.2:4001", "tcp://10.0.0.3:4002"


def spec(name: str) -> TaskSpec:
    return TaskSpec(name, name, TaskKind.COMMAND, "/s", 60.0, 0, command=["true"])


@pytest.fixture
def parts(db_path: Path):  # type: ignore[no-untyped-def]
    with Store(db_path) as store:
        store.create_run("r", "s", "/s/s.toml", {}, 0.0)
        specs = {n: spec(n) for n in ("probe", "kept", "copy", "plain")}
        states = {n: TaskState(s, attempt=1, inflight=True) for n, s in specs.items()}
        inflight: dict[str, tuple[Any, list[TaskPayload]]] = {
            f"k-{n}": (None, [TaskPayload("r", s, 1, f"k-{n}")]) for n, s in specs.items()
        }
        view = WorkerView(store, "r")
        sent: list[tuple[str, list[str] | None]] = []

        def send(key: str, payloads: list[TaskPayload], workers: list[str] | None) -> None:
            inflight[key] = (None, payloads)
            view.hold(key, workers)
            sent.append((key, workers))

        adaptive = Adaptive(
            "r", states, store, view, inflight=inflight, client=lambda: None,  # type: ignore[arg-type,return-value]
            copy=lambda *a, **k: None, send=send, key_of=lambda t, a: None,
            emit=lambda e: None, speculation=(False,),
        )  # fmt: skip
        yield adaptive, view, inflight, sent


def test_a_task_held_to_workers_that_left_moves_and_its_probation_fails(parts) -> None:  # type: ignore[no-untyped-def]
    adaptive, view, inflight, sent = parts
    view.workers = {HERE: {"name": "c", "resources": {}, "nthreads": 2}}
    for key in ("k-probe", "k-copy"):
        view.hold(key, [GONE])
    view.hold("k-kept", [GONE, HERE])
    adaptive._pinned.update({"k-probe", "k-copy"})
    adaptive.speculator.pairs["copy"] = Pair(Twin("k-x", 1, "b"), Twin("k-copy", 1, "b"))
    b = adaptive.monitor.watch("b")
    b.probation = ("probe", 1)

    adaptive._unstrand()

    assert [w for _, w in sent] == [None]  # placement: anywhere (nobody quarantined)
    ((new, _),) = sent
    assert "k-probe" not in inflight and new in inflight and new not in adaptive._pinned
    assert inflight[new][1][0].spec.task_id == "probe" and inflight[new][1][0].attempt == 1
    assert b.probation is None and "left the cluster" in b.reason
    # Held to a worker still here, a speculative copy, an unrestricted task: untouched.
    assert {"k-kept", "k-copy", "k-plain"} <= set(inflight)
    assert set(view.held) == {"k-kept", "k-copy"}


def test_without_a_view_of_the_cluster_nothing_moves(parts) -> None:  # type: ignore[no-untyped-def]
    adaptive, view, inflight, sent = parts
    view.hold("k-probe", [GONE])
    adaptive._unstrand()  # the scheduler did not answer yet: no workers known
    assert not sent and "k-probe" in inflight
    view.workers = {GONE: {"name": "b", "resources": {}, "nthreads": 2}}
    adaptive._unstrand()
    assert not sent
    del inflight["k-probe"]
    assert view.stranded(inflight) == [] and not view.held  # finished keys are forgotten


def test_rehoming_a_long_queue_moves_a_bounded_number_per_look_and_none_twice(parts) -> None:  # type: ignore[no-untyped-def]
    adaptive, view, inflight, sent = parts
    queue = REHOME_PER_LOOK + 30
    inflight.clear()
    for i in range(queue):
        p = TaskPayload("r", spec(f"q{i}"), 1, f"k-q{i}")
        inflight[f"k-q{i}"] = (None, [p])
    view.workers = {
        GONE: {"name": "b", "resources": {}, "nthreads": 2},
        HERE: {"name": "c", "resources": {}, "nthreads": 2},
    }
    view.quarantined.add("b")  # nothing Dask has not placed may go to b now
    monitor = adaptive.monitor

    monitor._rehome(list(inflight), {}, inflight)
    assert len(sent) == REHOME_PER_LOOK and monitor._migrate  # the rest at the next look
    assert all(w == [HERE] for _, w in sent)
    monitor._migrate = False
    monitor._rehome(list(inflight), {}, inflight)
    # Only the 30 left moved; the ones already held to c were not moved again.
    assert len(sent) == queue and not monitor._migrate
    assert len({t for t, _ in sent}) == queue and all(view.held[k] == [HERE] for k in inflight)
