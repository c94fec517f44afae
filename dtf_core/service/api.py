"""``dtf-core serve``: the coordinator as an HTTP JSON API (tornado).

Every endpoint is under ``/v1`` and answers JSON (``{"error": ...}`` on
failure). Bearer JWT with roles (:mod:`dtf_core.cluster.security`): ``viewer`` reads,
``submitter`` also submits and cancels its own runs, ``admin`` also cancels any
run and issues tokens. 401 = token missing, invalid or expired; 403 = valid but
the role is not enough. Tokens travel only in the ``Authorization`` header, so
the access log (method, path, status, time) never holds one.

Store reads run on a thread pool: a run flushing results holds the Store's lock
for a moment, and the event loop must keep serving long-polls meanwhile.
docs/cluster.md lists the endpoints with examples.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import tornado.web
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.locks import Condition

from dtf_core import __version__, reporting
from dtf_core.cluster import embedded as cluster
from dtf_core.cluster import security
from dtf_core.errors import AuthError, BadInputError, ClusterError, RunNotFoundError
from dtf_core.service.runmanager import ActiveRun, RunManager

API_VERSION = 1
MAX_WAIT_S = 30.0  # longest long-poll
logger = logging.getLogger("dtf.service")


class ApiError(tornado.web.HTTPError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(status)
        self.message = message


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return str(obj)


class Handler(tornado.web.RequestHandler):
    manager: RunManager
    secret: bytes

    def initialize(self, manager: RunManager, secret: bytes) -> None:
        self.manager, self.secret = manager, secret

    # ----------------------------------------------------------------- helpers
    def auth(self, role: str) -> security.Claims:
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("missing bearer token (Authorization: Bearer TOKEN)")
            claims = security.verify_token(
                self.secret, token.strip(), audience=security.API_AUDIENCE
            )
            security.require_role(claims, role)
        except AuthError as exc:
            raise ApiError(exc.status, str(exc)) from None
        return claims

    def send(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(obj, default=_json_default))

    async def blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await IOLoop.current().run_in_executor(None, functools.partial(fn, *args))
        except RunNotFoundError as exc:
            raise ApiError(404, str(exc)) from None
        except BadInputError as exc:
            raise ApiError(400, str(exc)) from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.message if isinstance(exc, ApiError) else self._reason
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="dtf", error="invalid_token"')
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message, "status": status_code}))

    def run_or_404(self, run_id: str) -> ActiveRun | None:
        return self.manager.get(run_id)

    async def stored_run(self, run_id: str) -> dict[str, Any]:
        return dict(await self.blocking(self.manager.store.get_run, run_id))


class HealthHandler(Handler):
    def get(self) -> None:
        self.send({"status": "ok", "version": __version__, "api": API_VERSION})


class RunsHandler(Handler):
    async def get(self) -> None:
        self.auth("viewer")
        limit = int(self.get_query_argument("limit", "20"))
        stored = await self.blocking(self.manager.store.list_runs, limit)
        seen = {r["run_id"] for r in stored}
        queued = [r.describe() for r in self.manager.active() if r.run_id not in seen]
        self.send({"runs": queued + stored})

    async def post(self) -> None:
        claims = self.auth("submitter")
        try:
            body = json.loads(self.request.body or b"{}")
            suite_path = str(body["suite_path"])
            archive = base64.b64decode(body["archive"], validate=True)
            metadata = body.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise TypeError("metadata must be an object")
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ApiError(
                400, f"body must be JSON with suite_path, archive (base64), metadata: {exc}"
            ) from None
        if len(archive) > self.manager.upload_limit:
            raise ApiError(
                413, f"archive is {len(archive) / 1e6:.1f} MB, above the "
                f"{self.manager.upload_limit / 1e6:.0f} MB limit",
            )  # fmt: skip
        run = await self.blocking(
            self.manager.submit, claims.subject, suite_path, archive, metadata
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
            self.send({"events": [], "next": after, "finished": True, "status": stored["status"]})
            return
        if "text/event-stream" in self.request.headers.get("Accept", ""):
            await self._stream(run, after)
            return
        wait = min(float(self.get_query_argument("wait", "25")), MAX_WAIT_S)
        deadline = time.monotonic() + wait
        cond = _condition(run)
        while len(run.events) <= after and not run.finished:
            left = deadline - time.monotonic()
            if left <= 0 or not await cond.wait(timeout=IOLoop.current().time() + left):
                break
        events = run.events[after:]
        nxt = after + len(events)
        self.send(
            {"events": events, "next": nxt, "finished": run.finished and nxt >= len(run.events),
             "status": run.status}
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
                if run.finished and sent >= len(run.events):
                    break
                if not await cond.wait(timeout=IOLoop.current().time() + 15):
                    self.write(": keep-alive\n\n")
                await self.flush()
            await self.flush()
        except StreamClosedError:
            return
        self.finish()


class RunDataHandler(Handler):
    """tasks, errors, results (JSON summary), analysis, report (rendered)."""

    async def get(self, run_id: str, what: str) -> None:
        self.auth("viewer")
        store = self.manager.store
        active = self.manager.get(run_id)
        if active is not None and active.status == "queued":
            raise ApiError(409, f"run {run_id} is queued: nothing to show yet")
        await self.stored_run(run_id)
        if what == "tasks":
            self.send({"tasks": await self.blocking(store.tasks, run_id)})
        elif what == "errors":
            self.send({"errors": await self.blocking(store.errors, run_id)})
        elif what in ("results", "analysis", "report"):
            summary = await self.blocking(reporting.build_summary, store, run_id)
            if what == "results":
                self.send(json.loads(reporting.render_json(summary)))
            elif what == "analysis":
                self.send({"benchmarks": json.loads(reporting.render_json(summary))["benchmarks"]})
            else:
                fmt = self.get_query_argument("format", "md")
                render = reporting.RENDERERS.get(fmt)
                if render is None:
                    raise ApiError(400, f"format {fmt!r} is not md, json, junit or html")
                kind = "text/html" if fmt == "html" else "text/plain"
                self.set_header("Content-Type", f"{kind}; charset=utf-8")
                self.finish(render(summary))
        else:
            raise ApiError(404, f"no such resource: {what}")


class WorkersHandler(Handler):
    async def get(self) -> None:
        """Connected workers, each with what it sampled last (``sample``) and the
        health its runs decided last (``health``, ``health_reason``, ``health_since``,
        ``rel_speed``; ``unknown`` before any run judged it)."""
        self.auth("viewer")
        try:
            workers = await self.blocking(cluster.current_workers, self.manager.client)
        except ClusterError as exc:
            raise ApiError(503, str(exc)) from None
        judged = {h["worker"]: h for h in await self.blocking(self.manager.store.worker_health)}
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
        self.send({"workers": out})


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
    """Wake the HTTP waiters of ``run`` from any thread (Condition is loop-bound)."""
    loop = IOLoop.current()

    def notify() -> None:
        if run.waiters is not None:
            loop.add_callback(run.waiters.notify_all)

    return notify


def _log_request(handler: tornado.web.RequestHandler) -> None:
    r = handler.request
    logger.info("%d %s %s %.1fms", handler.get_status(), r.method, r.path, 1000 * r.request_time())


def make_app(manager: RunManager, secret: bytes) -> tornado.web.Application:
    args = {"manager": manager, "secret": secret}
    run = r"/v1/runs/([A-Za-z0-9_.-]+)"
    return tornado.web.Application(
        [
            (r"/v1/health", HealthHandler, args),
            (r"/v1/runs", RunsHandler, args),
            (run, RunHandler, args),
            (run + "/cancel", CancelHandler, args),
            (run + "/events", EventsHandler, args),
            (run + "/(tasks|errors|results|analysis|report)", RunDataHandler, args),
            (r"/v1/workers", WorkersHandler, args),
            (r"/v1/tokens", TokensHandler, args),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
        log_function=_log_request,
    )


async def serve_forever(
    manager: RunManager, secret: bytes, host: str, port: int, ready: Callable[[str], None]
) -> None:
    """Listen until cancelled (SIGINT/SIGTERM in the CLI)."""
    app = make_app(manager, secret)
    # base64 grows the archive by a third; headers and JSON need a little more.
    server = app.listen(port, address=host, max_body_size=int(manager.upload_limit * 1.4) + 4096)
    ready(f"http://{host}:{port}")
    try:
        await asyncio.Event().wait()
    finally:
        server.stop()
