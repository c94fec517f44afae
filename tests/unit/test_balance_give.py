"""Tests a running chunk gave away: its task without them, and one new task for them
(dtf_core.run.balance)."""

from __future__ import annotations

import time
from pathlib import Path

from dtf_core.model import TaskKind, TaskSpec
from dtf_core.run.balance import ChunkBalancer, without
from dtf_core.run.state import TaskState
from dtf_core.store import Store
from dtf_core.testing.plugin import in_share


def _spec(nodeids: list[str], select: dict | None = None) -> TaskSpec:
    return TaskSpec(
        task_id="pytest-1", name="pytest", kind=TaskKind.PYTEST, root=".", timeout=60.0,
        retries=0, nodeids=nodeids, select=select,
    )  # fmt: skip


def _runs(spec: TaskSpec, collected: list[str]) -> list[str]:
    """What a retry of ``spec`` runs of what pytest collects in its files."""
    sel = spec.select or {}
    out = []
    for n in collected:
        file = n.partition("::")[0]
        if n in spec.nodeids or (
            file in spec.nodeids and in_share(sel.get("keep") or {}, sel.get("drop") or {}, n)
        ):
            out.append(n)
    return out


def test_given_node_ids_leave_every_kind_of_target() -> None:
    a = [f"a.py::t{i}" for i in range(4)]
    b = [f"b.py::t{i}" for i in range(4)]
    c = [f"c.py::t{i}" for i in range(4)]
    # a.py whole, b.py shared (this chunk owns it: drops t3), c.py by node id.
    spec = _spec(["a.py", "b.py", *c[:2]], {"keep": {}, "drop": {"b.py": [b[3]]}})
    given = {a[2], a[3], b[2], c[1]}
    left = without(spec, given)
    assert _runs(left, a + b + c) == [a[0], a[1], b[0], b[1], c[0]]
    # A file this chunk only holds a share of (keep): the given leave the share.
    shared = _spec(["b.py"], {"keep": {"b.py": b[:3]}, "drop": {}})
    assert _runs(without(shared, {b[1]}), a + b + c) == [b[0], b[2]]
    # Nothing given, nothing changes.
    assert _runs(without(spec, set()), a + b + c) == _runs(spec, a + b + c)


def test_given_tests_start_once_from_the_event_or_the_result(tmp_path: Path) -> None:
    """The progress event and the chunk's result both name the given tests:
    whichever comes first starts them, as one new task; the donor's task is
    narrowed (a retry would not run them again); nothing starts once the run
    stops at its failure limit."""
    store = Store(tmp_path / "dtf.duckdb")
    store.create_run("r1", "demo", "/suite", {}, 1000.0)
    ids = [f"a.py::t{i}" for i in range(6)]
    st = TaskState(_spec(ids), attempt=1)
    states = {"pytest-1": st}
    submitted: list[tuple[list[str], list[str] | None]] = []
    stopping = [False]
    balancer = ChunkBalancer(
        "r1", states, store, threads=lambda: 2, key_of=lambda t, a: None,
        ask_yield=lambda k: None, stopping=lambda: stopping[0],
        submit=lambda sts, only: submitted.append(([s.spec.task_id for s in sts], only)),
    )  # fmt: skip
    balancer.note_progress(
        {"task_id": "pytest-1", "attempt": 1, "counts": {"passed": 1}, "collected": 6}
    )
    balancer.note_progress({"task_id": "pytest-1", "attempt": 1, "counts": {}, "gave": ids[4:]})
    balancer.give("pytest-1", 1, ids[4:])  # the result says so too: nothing more
    assert submitted == [(["pytest-1.s1"], None)]
    assert states["pytest-1.s1"].spec.nodeids == ids[4:]
    assert st.spec.nodeids == ids[:4]
    stopping[0] = True
    balancer.give("pytest-1", 1, ids[2:4])
    assert submitted == [(["pytest-1.s1"], None)] and "pytest-1.s2" not in states
    store.close()


def test_a_split_is_asked_only_when_it_can_pay_for_its_process(tmp_path: Path) -> None:
    """What the last split cost (its submission to its process having
    collected) is measured; a chunk is asked to yield only when what it has
    ahead is at least twice that, else the new process ends no sooner."""
    store = Store(tmp_path / "dtf.duckdb")
    store.create_run("r1", "demo", "/suite", {}, 1000.0)
    ids = [f"a.py::t{i}" for i in range(40)]
    st = TaskState(_spec(ids), attempt=1)
    st.inflight = True
    states = {"pytest-1": st}
    asked: list[str] = []
    balancer = ChunkBalancer(
        "r1", states, store, threads=lambda: 2, key_of=lambda t, a: f"key-{t}",
        ask_yield=asked.append, submit=lambda sts, only: None, split_min_s=0.01,
    )  # fmt: skip
    balancer.note_progress({"task_id": "pytest-1", "attempt": 1, "counts": {}, "collected": 40})
    time.sleep(0.05)
    balancer.note_progress({"task_id": "pytest-1", "attempt": 1, "counts": {"passed": 2}})
    balancer.maybe_split()  # one thread idles, 38 tests ahead at ~25 ms each
    assert asked == ["key-pytest-1"]
    balancer.note_progress({"task_id": "pytest-1", "attempt": 1, "counts": {}, "gave": ids[21:]})
    states["pytest-1.s1"].inflight = True
    time.sleep(0.3)  # the given half takes this long to start and collect
    balancer.note_progress({"task_id": "pytest-1.s1", "attempt": 0, "counts": {}, "collected": 19})
    assert balancer.split_cost_s >= 0.3
    del states["pytest-1.s1"]  # it ended
    balancer.note_progress({"task_id": "pytest-1", "attempt": 1, "counts": {"passed": 17}})
    balancer._checked = 0.0  # the half-second pacing is not under test
    balancer.maybe_split()  # 2 tests ahead, ~0.05 s; a split costs 0.3 s: not asked
    assert asked == ["key-pytest-1"]
    balancer.split_cost_s = 0.0  # the same chunk with no split measured yet: asked
    balancer._checked = 0.0
    balancer.maybe_split()
    assert asked == ["key-pytest-1"] * 2
    store.close()
