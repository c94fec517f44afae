"""The service's observability endpoints, added to :func:`~dtf_core.service.api.make_app`:

* ``GET /metrics``: Prometheus text (:mod:`dtf_core.service.metrics`). By
  default it asks for a token like the API (``viewer``; Prometheus sends it with
  ``authorization: {credentials_file: ...}``); ``serve --metrics public`` opens
  it to anyone who reaches the port, ``--metrics off`` removes it.
* ``GET /v1/coordinator``: this coordinator, whether it leads, since when, the
  standbys it knows, the database and the Dask dashboard
  (:mod:`dtf_core.service.leadership`); a ``viewer`` token.

``request_observer`` gives the API's request hook that times every request
under its route *template*.
"""

from __future__ import annotations

from typing import Any

import tornado.web

from dtf_core.service.api import Handler, RequestHook
from dtf_core.service.leadership import Presence
from dtf_core.service.metrics import CONTENT_TYPE, ServiceMetrics, route_template

METRICS_ACCESS = ("token", "public", "off")


class MetricsHandler(Handler):
    metrics: ServiceMetrics
    public: bool

    def initialize(  # type: ignore[override]
        self, manager: Any, secret: bytes, metrics: ServiceMetrics, public: bool
    ) -> None:
        super().initialize(manager, secret)
        self.metrics, self.public = metrics, public

    async def get(self) -> None:
        if not self.public:
            self.auth("viewer")
        body = await self.blocking(self.metrics.render)
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(body)


class CoordinatorHandler(Handler):
    presence: Presence
    extra: dict[str, Any]

    def initialize(  # type: ignore[override]
        self, manager: Any, secret: bytes, presence: Presence, extra: dict[str, Any]
    ) -> None:
        super().initialize(manager, secret)
        self.presence, self.extra = presence, extra

    async def get(self) -> None:
        self.auth("viewer")
        # Reads a folder of small files: off the event loop like the store reads.
        self.send(await self.blocking(lambda: self.presence.describe(**self.extra)))


def routes(
    manager: Any,
    secret: bytes,
    *,
    presence: Presence,
    metrics: ServiceMetrics | None,
    metrics_access: str = "token",
    extra: dict[str, Any] | None = None,
) -> list[tuple[Any, ...]]:
    """The endpoints above, for ``make_app(routes=...)``. ``extra`` adds keys
    to the coordinator's description (``dashboard``, ``scheduler``)."""
    args = {"manager": manager, "secret": secret}
    out: list[tuple[Any, ...]] = [
        (r"/v1/coordinator", CoordinatorHandler,
         {**args, "presence": presence, "extra": dict(extra or {})}),
    ]  # fmt: skip
    if metrics is not None and metrics_access != "off":
        public = metrics_access == "public"
        out.append((r"/metrics", MetricsHandler, {**args, "metrics": metrics, "public": public}))
    return out


def request_observer(metrics: ServiceMetrics) -> RequestHook:
    """Time each finished request under its route template (``other`` for
    paths no route matches: a scan of random URLs adds one series, not many)."""

    def observe(handler: tornado.web.RequestHandler) -> None:
        request = handler.request
        route = "other"
        app = handler.application
        for rule in getattr(app.wildcard_router, "rules", []):
            regex = getattr(rule.matcher, "regex", None)
            if regex is None:
                continue
            found = route_template(regex.pattern, request.path)
            if found is not None:
                route = found
                break
        metrics.observe_request(
            str(request.method), route, handler.get_status(), request.request_time()
        )

    return observe
