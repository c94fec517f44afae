"""Ending a run's in-flight work early: ``--maxfail`` reached, or the run cancelled.

One function for both ways a run stops before its tasks are done: the Dask
tasks not spared are cancelled (the workers' reaper kills their process
groups), and every task that is not final, and not spared, ends ``cancelled``
through the run loop's ``end`` (stored and announced). A task whose attempt
was in flight keeps that attempt's number; one that was waiting never started
its next attempt, which gets the new number.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dtf_core.errors import Category
from dtf_core.model import TaskKind, TaskPayload
from dtf_core.run.recovery import End
from dtf_core.run.state import TaskState

log = logging.getLogger(__name__)


def cancel_all(
    client: Any,
    inflight: dict[str, tuple[Any, list[TaskPayload]]],
    states: dict[str, TaskState],
    end: End,
    message: str,
    spare: Callable[[str, list[TaskPayload]], bool] = lambda key, payloads: False,
) -> None:
    """Cancel what ``spare`` does not keep running, and end the rest as cancelled."""
    spared: set[str] = set()
    doomed = []
    for key, (fut, payloads) in list(inflight.items()):
        if spare(key, payloads):
            spared.update(p.spec.task_id for p in payloads)
            continue
        inflight.pop(key, None)
        doomed.append(fut)
    try:
        client.cancel(doomed, force=True)
    except Exception:
        log.debug("cancelling %d in-flight future(s) failed", len(doomed), exc_info=True)
    for st in states.values():
        if st.final is None and st.spec.task_id not in spared:
            if not st.inflight:
                st.attempt += 1  # a waiting task never started this attempt
            st.inflight = False
            end(st, "cancelled", Category.CANCELLED, message)


def yielding(ask_yield: Callable[[str], bool]) -> Callable[[str, list[TaskPayload]], bool]:
    """Spare the pytest chunks that agree to stop after their current test: their
    results, failures included, are still recorded."""

    def spare(key: str, payloads: list[TaskPayload]) -> bool:
        return all(p.spec.kind is TaskKind.PYTEST for p in payloads) and ask_yield(key)

    return spare
