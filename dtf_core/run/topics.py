"""One subscription per client and topic, shared by the runs on that client.

Dask keeps one handler per topic and client, and ``dtf-core serve`` runs many
coordinators on one client: a second ``subscribe_topic`` would silently take
the first run's events, and one run's ``unsubscribe_topic`` at its end would
cut every other run's. Each run registers its handler here under its run id;
one dispatcher per topic hands each event (a dict with ``run_id``) to its run.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from distributed import Client

log = logging.getLogger(__name__)


_routes: weakref.WeakKeyDictionary[Client, dict[str, dict[str, Callable[[Any], None]]]] = (
    weakref.WeakKeyDictionary()
)
_routes_lock = threading.Lock()


def route(client: Client, topic: str, run_id: str, handler: Callable[[Any], None]) -> None:
    """Hand ``run_id``'s events on ``topic`` to ``handler`` (on the client's event
    loop: the handler must only queue them). Call again after a reconnect."""
    with _routes_lock:
        table = _routes.setdefault(client, {}).setdefault(topic, {})
        table[run_id] = handler

    def dispatch(event: tuple[float, Any]) -> None:
        msg = event[1]
        if isinstance(msg, dict):
            target = table.get(str(msg.get("run_id")))
            if target is not None:
                target(msg)

    # Every connect: a scheduler that came back knows no subscriptions.
    client.subscribe_topic(topic, dispatch)


def unroute(client: Client, topic: str, run_id: str) -> None:
    """Stop handing ``run_id``'s events; the last run on the topic unsubscribes."""
    with _routes_lock:
        table = _routes.get(client, {}).get(topic, {})
        table.pop(run_id, None)
        last = not table
    if last:
        try:
            client.unsubscribe_topic(topic)
        except Exception:
            log.debug("unsubscribing from %s failed", topic, exc_info=True)
