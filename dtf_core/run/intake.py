"""A finished Dask task's results, as the coordinator may believe them.

Workers send plain data (:mod:`dtf_core.worker.wire`); this rebuilds the
:class:`~dtf_core.model.AttemptResult` objects, and turns anything that is not a
well-formed plain result, or that the client refused to deserialize, into a
failed attempt of category ``security`` for each payload of the task: a
crafted result is visible in the run, never mistaken for a pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dtf_core.errors import Category
from dtf_core.model import AttemptResult, TaskPayload
from dtf_core.run.fetch import Fetched
from dtf_core.run.state import decided_attempt, failed_results
from dtf_core.run.workers import WorkerView
from dtf_core.worker import wire

# How distributed words a result that is not msgpack (the worker could not send
# it as plain data) or a refused deserialization (protocol/serialize.py), and
# dtf's own refusal (cluster/safepickle.py).
_REFUSALS = ("Could not serialize object", "only able to deserialize", "dtf refused to unpickle")


def _refused(payloads: list[TaskPayload], why: str) -> list[AttemptResult]:
    return [
        decided_attempt(
            p.run_id, p.spec.task_id, p.attempt, "error", Category.SECURITY,
            f"result refused: {why}",
        )
        for p in payloads
    ]  # fmt: skip


def results_of(
    got: Fetched,
    payloads: list[TaskPayload],
    workers: WorkerView,
    verify: Callable[[AttemptResult], str | None] | None,
) -> list[AttemptResult]:
    """The results a finished task that ran ``payloads`` sent (fetched as ``got``)."""
    if got.error is not None:  # result lost in transit, or refused on the way in
        lost = got.error
        text = str(lost)
        if any(marker in text for marker in _REFUSALS):
            return _refused(payloads, f"{type(lost).__name__}: {text[:300]}")
        return failed_results(payloads, lost)
    raw: Any = got.value
    try:
        if not isinstance(raw, list | tuple):
            raise wire.WireError(f"expected a list of results, got {type(raw).__name__}")
        results = [wire.result_from_plain(r) for r in raw]
    except wire.WireError as exc:
        return _refused(payloads, str(exc))
    if verify is not None:
        results = [workers.verified(r, verify) for r in results]
    return results
