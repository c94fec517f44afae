"""Embedded workers drop Dask's lost-heartbeat traceback, and only that record
(dtf_core.cluster.embedded.LostHeartbeatQuiet)."""

from __future__ import annotations

import logging

from dtf_core.cluster.embedded import LostHeartbeatQuiet


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1, msg, None, None)


def test_only_the_lost_heartbeat_record_is_dropped() -> None:
    quiet = LostHeartbeatQuiet()
    assert not quiet._keep(_record("Failed to communicate with scheduler during heartbeat."))
    assert quiet._keep(_record("Compute Failed"))
    assert quiet._keep(_record("Worker stream died during communication"))
