"""``dtf-core serve``: the coordinator as an HTTP JSON API (tornado), over
HTTPS when ``serve`` is given a certificate.

Every endpoint is under ``/v1`` and answers JSON (``{"error": ...}`` on
failure). Bearer JWT with roles (:mod:`dtf_core.cluster.security`): ``viewer`` reads,
``submitter`` also submits and cancels its own runs, ``admin`` also cancels any
run and issues tokens. 401 = token missing, invalid or expired; 403 = valid but
the role is not enough. Tokens travel only in the ``Authorization`` header, so
the access log (method, path, status, time) never holds one.

Store reads and computations run on thread pools (:mod:`dtf_core.service.readpath`):
the event loop must keep serving long-polls meanwhile. The
plumbing every handler shares (token checks, errors as statuses) is in
:mod:`dtf_core.service.handler`; what an upload may be, in
:mod:`dtf_core.service.limits`; the console's endpoints, in
:mod:`dtf_core.service.views.routes`. docs/api.md lists every endpoint.

While the service stops in order (:meth:`RunManager.drain`) it keeps answering
reads, refuses new runs with 503 and ``Retry-After``, and answers a client
following a run that was handed over with 503 too once it has every event:
the run goes on at the next coordinator, where the client finds it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import tornado.web
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.locks import Condition

from dtf_core import __version__, config, reporting
from dtf_core.cluster import embedded as cluster
from dtf_core.cluster import security
from dtf_core.errors import AuthError, BadInputError, ClusterError
from dtf_core.reporting import badge
from dtf_core.service import priority as run_priority
from dtf_core.service.handler import ApiError, Handler
from dtf_core.service.handler import stopping_error as _stopping
from dtf_core.service.limits import UploadLimits, size_text
from dtf_core.service.runmanager import ActiveRun, RunManager
from dtf_core.service.views.routes import routes as console_routes

API_VERSION = 1
MAX_WAIT_S = 30.0  # longest long-poll
logger = logging.getLogger("dtf.service")


class HealthHandler(Handler):
    def get(self) -> None:
        self.send(
            {"status": "stopping" if self.manager.stopping else "ok", "version": __version__,
             "api": API_VERSION, "instance": self.manager.instance}
        )  # fmt: skip


@tornado.web.stream_request_body
class RunsHandler(Handler):
    """The upload is read as a stream so that it is refused before it is held:
    the token is checked and the size compared with the limit as soon as the
    headers arrive. A refused body is still read (up to twice the limit, and
    thrown away) so that the client, which sends all of it before reading,
    gets the JSON answer instead of a reset connection."""

    _refusal: ApiError | None = None
    _claims: security.Claims | None = None

    def prepare(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        if self.request.method != "POST":
            return
        limit = _max_body(self.manager.limits.upload_limit)
        try:
            length = int(self.request.headers.get("Content-Length") or 0)
            self._claims = self.auth("submitter")
        except ValueError:
            raise ApiError(400, "Content-Length is not a number") from None
        except ApiError as exc:
            self._refusal = exc
        if length > limit:
            refusal = self._refusal or _body_too_large(length, self.manager.limits)
            self._refusal = refusal
            if length > 2 * limit:  # past the server's max_body_size: the connection closes
                raise refusal

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._refusal is None and self._size > _max_body(self.manager.limits.upload_limit):
            self._refusal = _body_too_large(self._size, self.manager.limits)
        if self._refusal is None:
            self._chunks.append(chunk)
        else:
            self._chunks.clear()

    async def get(self) -> None:
        self.auth("viewer")
        limit = int(self.get_query_argument("limit", "20"))
        store = self.manager.store
        # Shared by every poller until a run begins or ends (service/readpath.py).
        stored = await self.shared(
            self.manager.readpath.runs(limit, lambda: store.list_runs(limit))
        )
        seen = {r["run_id"] for r in stored}
        queued = [r.describe() for r in self.manager.active() if r.run_id not in seen]
        self.send({"runs": queued + stored})

    async def post(self) -> None:
        if self._refusal is not None:
            raise self._refusal
        claims = self._claims
        assert claims is not None
        if self.manager.stopping:
            raise _stopping("the service is stopping: submit the run to the next one")
        try:
            body = json.loads(b"".join(self._chunks) or b"{}")
            self._chunks.clear()
            suite_path = str(body["suite_path"])
            archive = base64.b64decode(body["archive"], validate=True)
            metadata = body.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise TypeError("metadata must be an object")
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ApiError(
                400, f"body must be JSON with suite_path, archive (base64), metadata: {exc}"
            ) from None
        try:  # 403 above what this subject may ask for (service/priority.py)
            priority = run_priority.grant(claims, body.get("priority"))
        except AuthError as exc:
            raise ApiError(exc.status, str(exc)) from None
        except BadInputError as exc:
            raise ApiError(400, str(exc)) from None
        run = await self.blocking(
            self.manager.submit, claims.subject, suite_path, archive, metadata, priority
        )
        _condition(run)
        self.send(run.describe(), 201)


class RunHandler(Handler):
    async def get(self, run_id: str) -> None:
        self.auth("viewer")
        active = self.manager.get(run_id)
        if active is not None and active.status == "queued":
            self.send(active.describe())
            return
        stored = await self.stored_run(run_id)
        out = {**stored, "done": None, "total": None}
        if active is not None:
            out.update(active.describe())
        self.send(out)


class CancelHandler(Handler):
    async def post(self, run_id: str) -> None:
        claims = self.auth("submitter")
        run = self.manager.get(run_id)
        if run is None:
            await self.stored_run(run_id)  # 404 when unknown
            raise ApiError(409, f"run {run_id} is not active")
        if run.owner != claims.subject and not security.has_role(claims, "admin"):
            raise ApiError(
                403, f"run {run_id} belongs to {run.owner!r}; only an admin may cancel it"
            )
        if run.finished:
            raise ApiError(409, f"run {run_id} already ended as {run.status}")
        self.manager.cancel(run)
        self.send({"run_id": run_id, "status": "cancelling"}, 202)


class EventsHandler(Handler):
    _closed = False

    def on_connection_close(self) -> None:
        self._closed = True

    async def get(self, run_id: str) -> None:
        self.auth("viewer")
        after = int(self.get_query_argument("after", "0"))
        run = self.manager.get(run_id)
        if run is None:
            stored = await self.stored_run(run_id)
            if stored["status"] == "running":  # open, but not here: another coordinator's
                raise _stopping(f"run {run_id} is not run by this coordinator (yet)")
            self.send({"events": [], "next": after, "finished": True, "status": stored["status"],
                       "instance": self.manager.instance})  # fmt: skip
            return
        if "text/event-stream" in self.request.headers.get("Accept", ""):
            await self._stream(run, after)
            return
        wait = min(float(self.get_query_argument("wait", "25")), MAX_WAIT_S)
        # ``after`` numbered by another process (a restart, a standby): answer at
        # once, so that the client starts again from 0 instead of waiting here.
        if self.get_query_argument("instance", self.manager.instance) != self.manager.instance:
            wait = 0.0
        deadline = time.monotonic() + wait
        cond = _condition(run)
        while len(run.events) <= after and not run.finished and not run.handed_over:
            left = deadline - time.monotonic()
            if left <= 0 or not await cond.wait(timeout=IOLoop.current().time() + left):
                break
        events = run.events[after:]
        if run.handed_over and not events:
            raise _stopping(f"run {run_id} goes on at the next coordinator")
        nxt = after + len(events)
        self.send(
            {"events": events, "next": nxt, "finished": run.finished and nxt >= len(run.events),
             "status": run.status, "instance": self.manager.instance}
        )  # fmt: skip

    async def _stream(self, run: ActiveRun, after: int) -> None:
        """Server-sent events until the run ends (``id`` = sequence number)."""
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        cond = _condition(run)
        sent = after
        try:
            while not self._closed:
                for ev in run.events[sent:]:
                    self.write(f"id: {ev['seq']}\nevent: {ev['type']}\ndata: {json.dumps(ev)}\n\n")
                    sent = ev["seq"]
                if (run.finished or run.handed_over) and sent >= len(run.events):
                    break
                if not await cond.wait(timeout=IOLoop.current().time() + 15):
                    self.write(": keep-alive\n\n")
                await self.flush()
            await self.flush()
        except StreamClosedError:
            return
        self.finish()


class RunDataHandler(Handler):
    """tasks, errors, attempts, results (JSON summary), analysis, report (rendered)."""

    async def get(self, run_id: str, what: str) -> None:
        self.auth("viewer")
        store = self.manager.store
        active = self.manager.get(run_id)
        if active is not None and active.status == "queued":
            raise ApiError(409, f"run {run_id} is queued: nothing to show yet")
        stored = await self.stored_run(run_id)
        if what == "tasks":
            self.send({"tasks": await self.blocking(store.tasks, run_id)})
        elif what == "errors":  # ?context=1: with each attempt's system snapshot
            ctx = bool(self.get_query_argument("context", ""))
            read = store.errors_with_context if ctx else store.errors
            self.send({"errors": await self.blocking(read, run_id)})
        elif what == "attempts":  # ?task=ID: one task's
            task = self.get_query_argument("task", None)
            self.send({"attempts": await self.blocking(store.attempts, run_id, task)})
        elif what in ("results", "analysis", "report"):
            # One summary per run, built when it ended and shared (service/readpath.py).
            final = stored["status"] != "running"
            summary = await self.pending(self.manager.readpath.summary(run_id, final))
            fmt = "json" if what != "report" else self.get_query_argument("format", "md")
            render = reporting.RENDERERS.get(fmt)
            if render is None:
                raise ApiError(400, f"format {fmt!r} is not md, json, junit or html")
            text = await self.heavy(render, summary)
            if what == "analysis":
                self.send({"benchmarks": json.loads(text)["benchmarks"]})
                return
            kind = "text/html" if fmt == "html" else "text/plain"
            if what == "results":
                kind = "application/json"
            self.set_header("Content-Type", f"{kind}; charset=utf-8")
            self.finish(text)
        else:
            raise ApiError(404, f"no such resource: {what}")


class WorkersHandler(Handler):
    async def get(self) -> None:
        """Connected workers, each with what it sampled last (``sample``) and the
        health its runs decided last (``health``, ``health_reason``, ``health_since``,
        ``rel_speed``; ``unknown`` before any run judged it). Read at most every
        half second, whoever asks (service/readpath.py)."""
        self.auth("viewer")
        manager = self.manager
        try:
            out = await self.shared(manager.readpath.workers(lambda: _workers(manager)))
        except ClusterError as exc:
            raise ApiError(503, str(exc)) from None
        self.send({"workers": out})


def _workers(manager: RunManager) -> list[dict[str, Any]]:
    workers = cluster.current_workers(manager.client)
    judged = {h["worker"]: h for h in manager.store.worker_health()}
    out = []
    for a, w in sorted(workers.items()):
        h = judged.get(w["name"])
        out.append(
            {
                "address": a, **w,
                "health": h["state"] if h else "unknown",
                "health_reason": (h["reason"] or "") if h else "",
                "health_since": h["since"] if h else None,
                "rel_speed": h["rel_speed"] if h else None,
            }
        )  # fmt: skip
    return out


class TokensHandler(Handler):
    def post(self) -> None:
        claims = self.auth("admin")
        try:
            body = json.loads(self.request.body or b"{}")
            ttl = security.parse_ttl(str(body.get("ttl", "7d")))
            token = security.issue_token(
                self.secret, role=str(body["role"]), subject=str(body["subject"]), ttl_s=ttl
            )
        except (ValueError, KeyError, BadInputError) as exc:
            raise ApiError(400, f"body must be JSON with role, subject, ttl: {exc}") from None
        logger.info("token issued by %s for %s (%s)", claims.subject, body["subject"], body["role"])
        self.send({"token": token, "expires_at": time.time() + ttl}, 201)


class BadgeHandler(Handler):
    """A README badge of a suite (``?kind=status|passrate|perf``): no token unless
    ``dtf.service.badges`` is ``token`` (``serve --badges token``)."""

    async def get(self, suite: str, fmt: str) -> None:
        if config.get("service.badges") == "token":
            self.auth("viewer")
        kind = self.get_query_argument("kind", "status")
        made = await self.blocking(badge.make_badge, self.manager.store, kind, suite)
        self.set_header("Cache-Control", "max-age=60")
        if fmt == "json":
            self.send(made.endpoint())
        else:
            self.set_header("Content-Type", "image/svg+xml; charset=utf-8")
            self.finish(badge.render_svg(made))


class NotFoundHandler(Handler):
    def prepare(self) -> None:
        raise ApiError(404, f"no endpoint {self.request.path}; see docs/cluster.md")


def _condition(run: ActiveRun) -> Condition:
    if run.waiters is None:
        run.waiters = Condition()
        run.notify = _notifier(run)
    cond: Condition = run.waiters
    return cond


def _notifier(run: ActiveRun) -> Callable[[], None]:
    """Wake the HTTP waiters of ``run`` from any thread (Condition is loop-bound).

    One wake-up on the loop at a time: a run emits thousands of events a
    second, and each ``add_callback`` from another thread is a write to the
    loop's wake-up pipe. The flag is cleared before the waiters are woken, so
    an event after that schedules the next wake-up; waiters read the events
    when they wake, however many came since."""
    loop = IOLoop.current()
    lock = threading.Lock()
    pending = False

    def wake() -> None:
        nonlocal pending
        with lock:
            pending = False
        if run.waiters is not None:
            run.waiters.notify_all()

    def notify() -> None:
        nonlocal pending
        if run.waiters is None:
            return
        with lock:
            if pending:
                return
            pending = True
        loop.add_callback(wake)

    return notify


def _log_request(handler: tornado.web.RequestHandler) -> None:
    r = handler.request
    logger.info("%d %s %s %.1fms", handler.get_status(), r.method, r.path, 1000 * r.request_time())


RequestHook = Callable[[tornado.web.RequestHandler], None]


def make_app(
    manager: RunManager,
    secret: bytes,
    *,
    routes: Sequence[tuple[Any, ...]] = (),
    on_request: RequestHook | None = None,
) -> tornado.web.Application:
    """The API; ``routes`` adds endpoints (:mod:`dtf_core.service.routes`), and
    ``on_request`` sees each finished request (the metrics' latency)."""
    args = {"manager": manager, "secret": secret}
    run = r"/v1/runs/([A-Za-z0-9_.-]+)"

    def log_request(handler: tornado.web.RequestHandler) -> None:
        _log_request(handler)
        if on_request is not None:
            on_request(handler)

    return tornado.web.Application(
        [
            *routes,
            (r"/v1/health", HealthHandler, args),
            (r"/v1/runs", RunsHandler, args),
            (run, RunHandler, args),
            (run + "/cancel", CancelHandler, args),
            (run + "/events", EventsHandler, args),
            (run + "/(tasks|errors|attempts|results|analysis|report)", RunDataHandler, args),
            (r"/v1/workers", WorkersHandler, args),
            (r"/v1/tokens", TokensHandler, args),
            (r"/v1/badges/(.+)\.(json|svg)", BadgeHandler, args),
            # What attached consoles read (docs/api.md; /v1/openapi.json lists every route).
            *console_routes(manager, secret),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
        log_function=log_request,
    )


def _max_body(upload_limit: int) -> int:
    # base64 grows the archive by a third; the JSON around it and the metadata need a little more.
    return int(upload_limit * 4 / 3) + 65536


def _body_too_large(size: int, limits: UploadLimits) -> ApiError:
    return ApiError(
        413, f"the upload is {size_text(size)} of base64, above this service's "
        f"{size_text(limits.upload_limit)} archive limit (serve --upload-limit); upload a "
        "smaller --root or keep data files out of the suite directory",
    )  # fmt: skip


async def serve_forever(
    manager: RunManager,
    secret: bytes,
    host: str,
    port: int,
    ready: Callable[[str], None],
    ssl_ctx: ssl.SSLContext | None = None,
    *,
    routes: Sequence[tuple[Any, ...]] = (),
    on_request: RequestHook | None = None,
    until: asyncio.Event | None = None,
) -> None:
    """Listen (HTTPS with ``ssl_ctx``) until ``until`` is set (or cancelled)."""
    app = make_app(manager, secret, routes=routes, on_request=on_request)
    # Uploads set their own bound once their token is checked (RunsHandler.prepare).
    server = app.listen(
        port, address=host, ssl_options=ssl_ctx,
        max_body_size=2 * _max_body(manager.limits.upload_limit),
    )  # fmt: skip
    ready(f"{'https' if ssl_ctx else 'http'}://{host}:{port}")
    try:
        await (until or asyncio.Event()).wait()
    finally:
        server.stop()
