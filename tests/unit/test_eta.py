"""The run's ETA (dtf_core.run.eta): the same figure as summing over every task,
at a constant cost per finished task (it was quadratic in the run's size)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from dtf_core.model import TaskFinal
from dtf_core.run.eta import Eta
from dtf_core.run.state import TaskState
from tests.support.factories import task_spec


class CountingEstimates(Mapping[str, float]):
    """Estimates that count how often they are looked up."""

    def __init__(self, data: dict[str, float]) -> None:
        self.data = data
        self.lookups = 0

    def __getitem__(self, key: str) -> float:
        self.lookups += 1
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def states(n: int) -> dict[str, TaskState]:
    return {f"t{i}": TaskState(task_spec(f"t{i}")) for i in range(n)}


def finish(st: TaskState, wall: float) -> None:
    st.wall_s = wall
    st.final = TaskFinal(st.spec.task_id, "passed", None, "", 1, False, wall, "w")


def by_sum(sts: dict[str, TaskState], est: Mapping[str, float], slots: int) -> float:
    """The ETA as summed over every task (what the run loop used to do per task)."""
    left = sum(est.get(t, 0.0) for t, s in sts.items() if s.final is None)
    done_est = sum(est.get(t, 0.0) for t, s in sts.items() if s.final is not None)
    done_real = sum(s.wall_s for s in sts.values() if s.final is not None)
    scale = done_real / done_est if done_est > 0 and done_real > 0 else 1.0
    return left * scale / slots


def test_matches_the_sum_over_every_task_as_tasks_finish() -> None:
    sts = states(50)
    est = {f"t{i}": 0.5 + i % 7 for i in range(40)}  # ten tasks without an estimate
    finish(sts["t3"], 2.0)  # final before the run (resume): counted as done
    eta = Eta(sts, est)
    assert eta.seconds(lambda: 4) == pytest.approx(by_sum(sts, est, 4))
    for i, st in enumerate(sts.values()):
        if st.final is None:
            finish(st, 0.25 * (i % 5))
            got = eta.finished(st, lambda: 3)
            assert got == pytest.approx(by_sum(sts, est, 3), abs=1e-9)
    assert eta.seconds(lambda: 3) == pytest.approx(0.0, abs=1e-9)


def test_one_lookup_per_finished_task() -> None:
    sts = states(2000)
    est = CountingEstimates({t: 1.0 for t in sts})
    eta = Eta(sts, est)
    assert est.lookups == 2000  # the starting sums: once
    for st in list(sts.values())[:500]:
        finish(st, 1.0)
        eta.finished(st, lambda: 2)
    assert est.lookups == 2500


def test_no_estimates_no_eta_and_no_worker_count() -> None:
    sts = states(3)

    def slots() -> int:
        raise AssertionError("counted the worker threads for nothing")

    eta = Eta(sts, {})
    finish(sts["t0"], 1.0)
    assert eta.finished(sts["t0"], slots) is None
    assert eta.seconds(slots) is None
