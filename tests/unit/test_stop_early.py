"""``--maxfail`` reached (dtf_core.run.stopping.stop_early): which running work is
cancelled and which is left to report. The chunk whose streamed failure reached
the limit is never cancelled: its pytest may have just exited (its own
``--maxfail``), too late to yield and not yet finished, and cancelling it lost
the failure that stopped the run (seen: "10 passed, 2 cancelled", no failure)."""

from __future__ import annotations

from typing import Any

from dtf_core.model import TaskKind, TaskPayload, TaskSpec
from dtf_core.run import stopping
from dtf_core.run.maxfail import FailureLimit
from dtf_core.run.state import TaskState


class _Future:
    status = "pending"


class _Client:
    """Stands in for the Dask client: records what is cancelled."""

    def __init__(self) -> None:
        self.cancelled: list[Any] = []

    def cancel(self, futures: list[Any], force: bool = False) -> None:
        self.cancelled.extend(futures)


def _state(task_id: str) -> TaskState:
    spec = TaskSpec(
        task_id=task_id, name=task_id, kind=TaskKind.PYTEST, root=".", timeout=60.0, retries=0,
        nodeids=[f"test_{task_id}.py"],
    )  # fmt: skip
    return TaskState(spec, attempt=1, inflight=True)


def test_the_chunk_that_streamed_the_failure_is_left_to_report() -> None:
    states = {t: _state(t) for t in ("pytest-1", "pytest-2", "pytest-3")}
    futures = {t: _Future() for t in states}
    inflight: dict[str, tuple[Any, Any]] = {
        f"k-{t}": (futures[t], [TaskPayload("r1", st.spec, 1, f"k-{t}")])
        for t, st in states.items()
    }
    limit = FailureLimit(1)
    limit.note_stream("pytest-1", {"failed": 1})
    assert limit.reached() and limit.streamed() == {"pytest-1"}
    ended: list[tuple[str, str]] = []

    def end(st: TaskState, status: str, *_: Any) -> None:
        st.final = object()  # type: ignore[assignment]
        ended.append((st.spec.task_id, status))

    # No chunk can yield: pytest-1 has just exited, the others never started pytest.
    client = _Client()
    stopping.stop_early(client, inflight, states, end, lambda key: False, limit.streamed())  # type: ignore[arg-type]
    assert "k-pytest-1" in inflight and states["pytest-1"].final is None
    assert futures["pytest-1"] not in client.cancelled
    assert sorted(ended) == [("pytest-2", "cancelled"), ("pytest-3", "cancelled")]

    # A chunk that streamed a failure and can still yield is asked to (it stops
    # after its current test: -x does not let it run on).
    states = {t: _state(t) for t in ("pytest-1",)}
    inflight = {"k": (_Future(), [TaskPayload("r1", states["pytest-1"].spec, 1, "k")])}
    asked: list[str] = []
    stopping.stop_early(
        _Client(), inflight, states, end, lambda key: asked.append(key) or True, {"pytest-1"}
    )  # type: ignore[arg-type]
    assert asked == ["k"] and "k" in inflight

    # Without the streamed failures (as before): the failing chunk was cancelled too.
    states = {t: _state(t) for t in ("pytest-1",)}
    inflight = {"k": (_Future(), [TaskPayload("r1", states["pytest-1"].spec, 1, "k")])}
    ended.clear()
    stopping.stop_early(_Client(), inflight, states, end, lambda key: False)  # type: ignore[arg-type]
    assert ended == [("pytest-1", "cancelled")]
