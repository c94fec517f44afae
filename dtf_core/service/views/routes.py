"""The endpoints of ``dtf-core serve`` that attached consoles read: the shared
snapshot, the change counter they follow, a task's attempts with their output,
benchmark series with their analysis, and the OpenAPI document of the whole
API (docs/api.md).

Registered by :func:`dtf_core.service.api.make_app` through :func:`routes`; the
token checks and the error shape are the API's own (:class:`Handler`).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tornado.iostream import StreamClosedError

from dtf_core.errors import DtfError
from dtf_core.service.handler import ApiError, Handler
from dtf_core.service.runmanager import RunManager
from dtf_core.service.views import openapi, trend, wire
from dtf_core.service.views.console import MAX_AGE, MIN_BUILD_GAP, ConsoleFeed
from dtf_core.service.views.snapshot import SeriesKey

MAX_WAIT_S = 30.0  # longest long-poll
KEEP_ALIVE_S = 15.0  # a comment line on an idle stream, so that proxies keep it open
RUN = r"/v1/runs/([A-Za-z0-9_.-]+)"


class FeedHandler(Handler):
    feed: ConsoleFeed

    def initialize(self, manager: RunManager, secret: bytes, feed: ConsoleFeed) -> None:  # type: ignore[override]
        super().initialize(manager, secret)
        self.feed = feed

    def _int(self, name: str) -> int:
        value = self.get_query_argument(name, "0")
        try:
            return int(value)
        except ValueError:
            raise ApiError(400, f"?{name}= takes a whole number, not {value!r}") from None


class ConsoleHandler(FeedHandler):
    """The console snapshot; ``?generation=N`` asks for one that reflects change N,
    ``&since=G&epoch=E`` for only what changed after the generation G the console
    holds (a full snapshot when that cannot be answered)."""

    async def get(self) -> None:
        self.auth("viewer")
        want = self._int("generation")
        since, epoch = self._int("since"), self.get_query_argument("epoch", "")
        try:
            body = await self.feed.snapshot_body(want, since, epoch)
        except DtfError as exc:
            raise ApiError(503, f"the snapshot could not be read: {exc}") from None
        self.set_header("Content-Type", "application/json")
        self.finish(body)


class StreamHandler(FeedHandler):
    """A route that answers with server-sent events for as long as the client
    reads them (``_closed`` once it has gone)."""

    _closed = False

    def on_connection_close(self) -> None:
        self._closed = True

    def begin_events(self) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # nginx: pass events on at once


class ConsoleStreamHandler(StreamHandler):
    """Server-sent events, one per published build (``event: console``, the
    build's number as ``id``): the first is the delta from ``?since=G&epoch=E``
    (the build the console holds) or the whole snapshot, each next one the delta
    from the one before, exactly as ``/v1/console?since=`` answers. A console
    that follows it makes no request per build: twenty consoles cost the service
    one build and twenty writes of the same bytes. A comment line every
    :data:`KEEP_ALIVE_S` on a quiet stream. The token is checked again at
    least once a second: once it expires or is revoked the stream ends, and
    the console's reconnection is refused with the reason."""

    async def get(self) -> None:
        self.auth("viewer")
        held, epoch = self._int("since"), self.get_query_argument("epoch", "")
        self.begin_events()
        try:
            with self.feed.watching():
                await self._follow(held, epoch)
        except StreamClosedError:
            return

    async def _follow(self, held: int, epoch: str) -> None:
        quiet = time.monotonic()  # the last line written
        while not self._closed:
            build = await self.feed.next_build(held, epoch, MAX_AGE)
            if self._closed:
                return
            try:
                self.auth("viewer")  # at least once a second: quick, it is remembered
            except ApiError:
                return  # expired or revoked since it connected
            if build is not None:
                body = build.body(held, epoch)
                self.write(b"event: console\nid: %d\ndata: %s\n\n" % (build.serial, body))
                held, epoch = build.serial, build.epoch
            elif time.monotonic() - quiet >= KEEP_ALIVE_S:
                self.write(b": keep-alive\n\n")
            else:
                continue
            quiet = time.monotonic()
            await self.flush()


class ChangesHandler(StreamHandler):
    """Long-poll (``?after=N&wait=S``) or server-sent events (``Accept:
    text/event-stream``) of the change counter; a stream sends at most one
    event per :data:`MIN_BUILD_GAP`, however fast runs move."""

    async def get(self) -> None:
        self.auth("viewer")
        after = int(self.get_query_argument("after", "0"))
        if "text/event-stream" in self.request.headers.get("Accept", ""):
            await self._stream(after)
            return
        wait = min(float(self.get_query_argument("wait", "25")), MAX_WAIT_S)
        self.send(await self.feed.wait_change(after, wait))

    async def _stream(self, after: int) -> None:
        self.begin_events()
        sent = after
        try:
            while not self._closed:
                mark = await self.feed.wait_change(sent, KEEP_ALIVE_S)
                if mark["generation"] > sent:
                    sent = mark["generation"]
                    self.write(f"id: {sent}\nevent: change\ndata: {json.dumps(mark)}\n\n")
                else:
                    self.write(": keep-alive\n\n")
                await self.flush()
                await asyncio.sleep(MIN_BUILD_GAP)  # one event per burst
        except StreamClosedError:
            return


class BenchmarksHandler(FeedHandler):
    """The benchmark series the database holds (benchmark x hardware)."""

    async def get(self) -> None:
        self.auth("viewer")
        found = await self.blocking(self.feed.all_series)
        self.send({"series": [wire.encode(k) for k in found]})


class SeriesHandler(FeedHandler):
    """One series (``?benchmark=B&hardware=H``) with its change points and forecast."""

    async def get(self) -> None:
        self.auth("viewer")
        key = SeriesKey(
            self.get_query_argument("benchmark", ""), self.get_query_argument("hardware", "")
        )
        if not key.benchmark:
            raise ApiError(400, "give the benchmark: ?benchmark=NAME&hardware=LABEL")
        found = (await self.blocking(self.feed.all_series)).get(key)
        if found is None:
            raise ApiError(404, f"no benchmark history for {key.label}")
        view = await self.heavy(trend.analyse, found)
        self.send({"series": wire.encode(found), "analysis": wire.encode(view)})


class OpenApiHandler(Handler):
    """The API described (no token: it is the same for everyone, and public in docs/api.md)."""

    def get(self) -> None:
        self.send(openapi.DOCUMENT)


def routes(manager: RunManager, secret: bytes) -> list[tuple[str, type, dict[str, Any]]]:
    args: dict[str, Any] = {"manager": manager, "secret": secret}
    fed = {**args, "feed": ConsoleFeed(manager)}
    return [
        (r"/v1/console", ConsoleHandler, fed),
        (r"/v1/console/stream", ConsoleStreamHandler, fed),
        (r"/v1/changes", ChangesHandler, fed),
        (r"/v1/benchmarks", BenchmarksHandler, fed),
        (r"/v1/benchmarks/series", SeriesHandler, fed),
        (r"/v1/openapi.json", OpenApiHandler, args),
    ]
