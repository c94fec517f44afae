"""The console's live state folds worker health in from run events and from
``/v1/workers``; no Textual, no Dask."""

from __future__ import annotations

from dtf_core.events import WorkerHealthChanged
from dtf_tui.sources.livestate import LiveState

W = {"address": "tcp://a:1", "name": "w1", "resources": {}, "nthreads": 1}


def test_health_from_run_events_survives_the_polls() -> None:
    state = LiveState(clock=lambda: 0.0)
    state.update_workers([W])
    assert state.snapshot("live").workers[0].health == ""
    state.on_event(
        WorkerHealthChanged("r1", "w1", "tcp://a:1", "quarantined", "3 in a row", "healthy")
    )
    w = state.snapshot("live").workers[0]
    assert (w.health, w.health_reason) == ("quarantined", "3 in a row")
    state.update_workers([W])  # the scheduler's view knows nothing of health
    assert state.snapshot("live").workers[0].health == "quarantined"


def test_health_from_the_service() -> None:
    state = LiveState(clock=lambda: 0.0)
    state.update_workers([{**W, "health": "degraded", "health_reason": "no heartbeat for 12 s"}])
    w = state.snapshot("live").workers[0]
    assert (w.health, w.health_reason) == ("degraded", "no heartbeat for 12 s")
