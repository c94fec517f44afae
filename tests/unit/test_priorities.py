"""Priorities without Dask: the suite key, how run and task priorities combine, the
order of the first submissions, who may ask for what in serve, and the order in
which runs waiting for a slot start."""

from __future__ import annotations

import threading
from pathlib import Path

import dask.config
import pytest
from support.factories import task_spec

from dtf_core import spec
from dtf_core.cluster import security
from dtf_core.errors import AuthError, OptionError, SpecError
from dtf_core.model import PRIORITY_LIMIT
from dtf_core.run import batching
from dtf_core.run.priority import dask_priority, of_metadata
from dtf_core.run.state import TaskState
from dtf_core.service import priority as service_priority
from dtf_core.service.runqueue import RunQueue


def _suite(tmp_path: Path, body: str) -> Path:
    f = tmp_path / "s.toml"
    f.write_text('[suite]\nname = "p"\n' + body)
    return f


def test_suite_priority_defaults_and_overrides(tmp_path: Path) -> None:
    body = (
        "[defaults]\npriority = 5\n"
        '[[task]]\nname = "a"\nkind = "command"\ncommand = ["true"]\n'
        '[[task]]\nname = "b"\nkind = "command"\ncommand = ["true"]\npriority = -7\n'
    )
    tasks = spec.load_suite(_suite(tmp_path, body)).tasks
    assert [(t.task_id, t.priority) for t in tasks] == [("a", 5), ("b", -7)]


@pytest.mark.parametrize("value", ['"high"', "1.5", "true", str(PRIORITY_LIMIT + 1)])
def test_bad_priority_names_file_task_and_key(tmp_path: Path, value: str) -> None:
    body = f'[[task]]\nname = "a"\nkind = "command"\ncommand = ["true"]\npriority = {value}\n'
    with pytest.raises(SpecError) as err:
        spec.load_suite(_suite(tmp_path, body))
    assert "task 'a': key 'priority'" in str(err.value) and "-1000 to 1000" in str(err.value)


def test_the_run_priority_decides_before_the_task_priority() -> None:
    nightly_best = dask_priority(0, PRIORITY_LIMIT)
    release_worst = dask_priority(1, -PRIORITY_LIMIT)
    assert release_worst > nightly_best
    assert dask_priority(3, 2) > dask_priority(3, 1) > dask_priority(2, PRIORITY_LIMIT)
    assert of_metadata({"priority": 10}) == 10 and of_metadata({}) == 0 and of_metadata(None) == 0


def test_first_submissions_go_highest_priority_first_batching_by_priority() -> None:
    states = [
        TaskState(task_spec("c-low", priority=-1)),
        TaskState(task_spec("c-high", priority=9)),
        *(TaskState(task_spec(f"b{i}", "benchmark", priority=i % 2)) for i in range(6)),
        TaskState(task_spec("c-mid", priority=1)),
    ]
    groups = batching.plan(states, lambda requires: 1)
    ids = [[st.spec.task_id for st in g] for g in groups]
    assert ids[0] == ["c-high"]
    assert [g[0].spec.priority for g in groups] == sorted(
        (g[0].spec.priority for g in groups), reverse=True
    )
    for g in groups:  # one Dask task carries one priority
        assert len({st.spec.priority for st in g}) == 1
    assert sorted(t for g in ids for t in g) == sorted(st.spec.task_id for st in states)
    assert ids[-1] == ["c-low"]


def _claims(subject: str, role: str = "submitter") -> security.Claims:
    return security.Claims(subject=subject, role=role, expires_at=0.0, token_id="")


def test_serve_grants_defaults_and_refuses_more_than_the_max() -> None:
    table = {"default": 0, "max": 5, "submitters": {"release": {"default": 100, "max": 500}}}
    with dask.config.set({"dtf.service.priority": table}):
        assert service_priority.grant(_claims("ci"), None) == 0
        assert service_priority.grant(_claims("ci"), 5) == 5
        assert service_priority.grant(_claims("ci"), -900) == -900  # less is always fine
        with pytest.raises(AuthError) as err:
            service_priority.grant(_claims("ci"), 6)
        assert err.value.status == 403 and "'ci' may ask for (5)" in str(err.value)
        assert service_priority.grant(_claims("release"), None) == 100
        assert service_priority.grant(_claims("release"), 500) == 500
        assert service_priority.grant(_claims("root", "admin"), 999) == 999
        with pytest.raises(OptionError):
            service_priority.grant(_claims("ci"), "7")
        with pytest.raises(OptionError):
            service_priority.grant(_claims("root", "admin"), PRIORITY_LIMIT + 1)
    bad = {"dtf.service.priority": {"max": "lots"}}
    with dask.config.set(bad), pytest.raises(OptionError, match=r"priority: max must be an int"):
        service_priority.grant(_claims("ci"), None)


def test_runs_waiting_for_a_slot_start_highest_priority_first() -> None:
    queue = RunQueue(1)
    gate = threading.Event()
    started: list[str] = []
    done = threading.Semaphore(0)

    def job(name: str) -> None:
        started.append(name)
        if name == "first":
            gate.wait(10)
        done.release()

    try:
        queue.submit(0, lambda: job("first"))  # takes the only slot and holds it
        while not started:
            threading.Event().wait(0.01)
        for name, prio in (("nightly-a", 0), ("nightly-b", 0), ("release", 10), ("low", -5)):
            queue.submit(prio, lambda n=name: job(n))  # type: ignore[misc]
        gate.set()
        for _ in range(5):
            assert done.acquire(timeout=10)
    finally:
        queue.shutdown()
    assert started == ["first", "release", "nightly-a", "nightly-b", "low"]
