"""The request plumbing every endpoint of ``dtf-core serve`` shares: bearer
token checks, JSON answers, and dtf's errors as HTTP statuses, in the one JSON
shape ``{"error": "...", "status": N}`` (docs/cluster.md).

Blocking work runs off the event loop: Store reads and unpacking an upload
through :meth:`Handler.blocking`, computations (a summary, a rendered report)
through :meth:`Handler.heavy`, on the pools of :mod:`~dtf_core.service.readpath`
(a read never queues behind a computation). Both map dtf's errors: a run not found 404, an
upload above a limit 413, other bad input 400, a full queue 429 with
``Retry-After``, a service stopping in order 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
from collections.abc import Callable
from typing import Any

import tornado.web

from dtf_core.cluster import security
from dtf_core.errors import (
    AuthError,
    BadInputError,
    RunNotFoundError,
    ServiceBusyError,
    UploadTooLargeError,
)
from dtf_core.service.runmanager import ActiveRun, RunManager, StoppingError

RETRY_AFTER_S = 2  # what a stopping service tells clients to wait before trying again


class ApiError(tornado.web.HTTPError):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.message, self.headers = message, headers or {}


def stopping_error(message: str) -> ApiError:
    """503 + ``Retry-After``: the service stops in order, try again (elsewhere) soon."""
    return ApiError(503, message, {"Retry-After": str(RETRY_AFTER_S)})


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
        """``fn(*args)`` on the pool of quick reads."""
        return await self.pending(self.manager.readpath.quick.submit(fn, *args))

    async def heavy(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the pool of computations (one thread: CPU under the GIL)."""
        return await self.pending(self.manager.readpath.heavy.submit(fn, *args))

    async def shared(self, future: concurrent.futures.Future[Any]) -> Any:
        """A shared answer (service/readpath.py): one held in memory is used on
        the spot, without waiting for another turn of the loop; else awaited."""
        if future.done() and future.exception() is None:
            return future.result()
        return await self.pending(future)

    async def pending(self, future: concurrent.futures.Future[Any]) -> Any:
        """Wait for ``future`` (made on a pool) on the loop, with dtf's errors as statuses."""
        try:
            return await asyncio.wrap_future(future)
        except RunNotFoundError as exc:
            raise ApiError(404, str(exc)) from None
        except UploadTooLargeError as exc:
            raise ApiError(413, str(exc)) from None
        except BadInputError as exc:
            raise ApiError(400, str(exc)) from None
        except ServiceBusyError as exc:
            wait = str(max(1, math.ceil(exc.retry_after)))
            raise ApiError(429, str(exc), {"Retry-After": wait}) from None
        except StoppingError as exc:
            raise stopping_error(str(exc)) from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.message if isinstance(exc, ApiError) else self._reason
        for name, value in (exc.headers if isinstance(exc, ApiError) else {}).items():
            self.set_header(name, value)
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="dtf", error="invalid_token"')
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message, "status": status_code}))

    def run_or_404(self, run_id: str) -> ActiveRun | None:
        return self.manager.get(run_id)

    async def stored_run(self, run_id: str) -> dict[str, Any]:
        return dict(await self.blocking(self.manager.store.get_run, run_id))
