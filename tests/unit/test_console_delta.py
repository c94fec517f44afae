"""The console snapshot's deltas (service/views/delta.py, wire.apply_delta):
a delta applied to the snapshot a console holds gives the full snapshot of the
same build, and a delta is refused whenever it could not be right."""

from __future__ import annotations

import json
from dataclasses import replace

from dtf_core.service.views import wire
from dtf_core.service.views.delta import KEEP, Publisher
from dtf_core.service.views.snapshot import (
    ClusterSnapshot,
    ErrorEvent,
    RunInfo,
    TaskRow,
    WorkerInfo,
)

N = 200


def _snap(done: int, errors: int = 0, run_id: str = "r1", at: float = 0.0) -> ClusterSnapshot:
    tasks = tuple(
        TaskRow(run_id, f"t{i:04d}", "benchmark", "passed" if i < done else "pending",
                attempts=int(i < done), wall_s=0.01 * (i < done), worker="w0" * (i < done))
        for i in range(N)
    )  # fmt: skip
    errs = tuple(
        ErrorEvent(run_id, f"t{i:04d}", 1, 100.0 + i, "test-failure", "error", f"boom {i}")
        for i in range(errors)
    )
    run = RunInfo(run_id, "suite", "running", 1.0, total=N, done=done, passed=done)
    worker = WorkerInfo("tcp://w0", "w0", cpu=(at,), memory=(1.0,))
    return ClusterSnapshot("serve", at, workers=(worker,), runs=(run,), tasks=tasks, errors=errs)


def _decode(body: bytes) -> dict:
    return json.loads(body)


def test_a_delta_applied_to_the_held_snapshot_is_the_full_one() -> None:
    pub = Publisher()
    first = pub.build(_snap(10), 5, "e1")
    held = wire.snapshot(_decode(first.body()))
    assert held == _snap(10)
    for gen, (done, errs) in enumerate([(25, 0), (40, 2), (40, 3), (70, 3)], start=6):
        build = pub.build(_snap(done, errs, at=gen), gen * 3, "e1")
        data = _decode(build.body(held_gen := int(_decode(first.body())["build"]), "e1"))
        assert data["delta"] == held_gen
        # only the rows that changed travel, and they are fewer than the whole
        assert len(data["tasks_changed"]) == done - 10
        assert "tasks" not in data and len(build.body(held_gen, "e1")) < len(build.full()) / 2
        assert wire.apply_delta(held, data) == wire.snapshot(_decode(build.full()))
        assert wire.apply_delta(held, data) == _snap(done, errs, at=gen)
    # and step by step, each delta on the one before
    pub, held_gen = Publisher(), 1
    held = wire.snapshot(_decode(pub.build(_snap(0), 1, "e").full()))
    for gen, done in enumerate([1, 2, 50, 51, 51, 99], start=2):
        build = pub.build(_snap(done, done // 30, at=gen), 7, "e")  # one generation: see below
        data = _decode(build.body(held_gen, "e"))
        assert "delta" in data, gen
        held, held_gen = wire.apply_delta(held, data), gen
        assert held == _snap(done, done // 30, at=gen)


def test_a_delta_is_refused_when_it_could_not_be_right() -> None:
    pub = Publisher()
    pub.build(_snap(10, 2), 5, "e1")  # build 1
    build = pub.build(_snap(20, 3), 9, "e1")  # build 2
    assert _decode(build.body(1, "e1"))["delta"] == 1
    assert _decode(build.body(1, "e1"))["build"] == 2
    assert "delta" not in _decode(build.body(0, "e1"))  # an old client, or the first ask
    assert "delta" not in _decode(build.body(1, "e0"))  # another epoch: a restart
    assert "delta" not in _decode(build.body(3, "e1"))  # newer than this build
    # however much changed since, a delta: its rows are smaller than the full
    third = pub.build(_snap(150, 3), 12, "e1")
    assert third is not None and len(_decode(third.body(2, "e1"))["tasks_changed"]) == 130
    assert len(third.body(2, "e1")) < len(third.full()) / 2
    # another focused run, an error dropped: the list laid out afresh comes whole
    held = wire.snapshot(_decode(third.full()))
    data = _decode(pub.build(_snap(150, 3, "r2"), 13, "e1").body(3, "e1"))
    assert len(data["tasks_rows"]) == N and "tasks_changed" not in data
    assert len(data["errors_rows"]) == 3  # they are r2's errors now: afresh too
    held = wire.apply_delta(held, data)
    assert held == _snap(150, 3, "r2")
    data = _decode(pub.build(_snap(150, 2, "r2"), 14, "e1").body(4, "e1"))
    assert data["tasks_changed"] == [] and len(data["errors_rows"]) == 2
    held = wire.apply_delta(held, data)
    assert held == _snap(150, 2, "r2")
    data = _decode(pub.build(_snap(151, 2, "r2"), 15, "e1").body(5, "e1"))
    assert wire.apply_delta(held, data) == _snap(151, 2, "r2")
    # a server one version apart (other fields): rows still decode, by name
    data["tasks_changed"] = [[i, [*row, "new"]] for i, row in data["tasks_changed"]]
    data["tasks_fields"] = [*data["tasks_fields"], "added_later"]
    assert wire.apply_delta(held, data) == _snap(151, 2, "r2")


def test_a_delta_on_another_base_does_not_apply() -> None:
    pub = Publisher()
    pub.build(_snap(10), 1, "e")
    data = _decode(pub.build(_snap(12), 2, "e").body(1, "e"))
    assert "delta" in data
    short = replace(_snap(10), tasks=_snap(10).tasks[:50])
    try:
        wire.apply_delta(short, data)
    except ValueError:
        return
    raise AssertionError("a delta on a shorter base must not apply")


def test_a_build_that_shows_nothing_new_is_not_published() -> None:
    pub = Publisher()
    first = pub.build(_snap(10, 1, at=1.0), 3, "e")
    assert first is not None
    # Only the clock moved: nothing to wake twenty consoles for.
    assert pub.build(replace(_snap(10, 1, at=1.0), taken_at=9.0, throughput=2.5), 4, "e") is None
    later = pub.build(_snap(11, 1, at=1.0), 5, "e")  # a task finished
    assert later is not None and later.serial == first.serial + 1
    data = _decode(later.body(first.serial, "e"))
    assert [i for i, _ in data["tasks_changed"]] == [10]
    assert wire.apply_delta(wire.snapshot(_decode(first.full())), data) == _snap(11, 1, at=1.0)


def test_the_workers_live_figures_go_out_with_other_changes_or_when_due() -> None:
    pub = Publisher()
    assert pub.build(_snap(10, at=1.0), 1, "e") is not None
    busy = _snap(10, at=2.0)  # a new CPU sample, and a task running on the worker
    busy = replace(busy, workers=(replace(busy.workers[0], running=1),))
    assert pub.build(busy, 2, "e", live_due=False) is None
    due = pub.build(busy, 2, "e", live_due=True)
    assert due is not None and wire.snapshot(_decode(due.full())).workers == busy.workers
    gone = replace(busy, workers=(replace(busy.workers[0], status="gone"),))
    assert pub.build(gone, 3, "e", live_due=False) is not None  # not a live figure
    assert pub.build(replace(_snap(11, at=3.0), workers=gone.workers), 4, "e", False) is not None


def test_rows_appended_come_as_rows_and_a_console_far_behind_gets_everything() -> None:
    pub = Publisher()
    empty = pub.build(replace(_snap(0), tasks=()), 1, "e")  # a run created, no tasks yet
    assert empty is not None
    held = wire.snapshot(_decode(empty.full()))
    added = pub.build(_snap(0), 2, "e")  # its 200 tasks: appended, all new
    assert added is not None
    data = _decode(added.body(empty.serial, "e"))
    assert len(data["tasks_changed"]) == N
    assert wire.apply_delta(held, data) == _snap(0)
    last = added
    for i in range(KEEP):
        found = pub.build(_snap(0, at=float(i + 10)), 3 + i, "e")
        assert found is not None
        last = found
    assert "delta" in _decode(last.body(last.serial - KEEP + 1, "e"))
    assert "delta" not in _decode(last.body(last.serial - KEEP, "e"))  # fell too far behind
