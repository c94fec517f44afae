"""The door of the browser console (``dtf-tui --web``): nothing is served
without a token.

Attached to ``dtf-core serve``, the token is an API token of that service
(role ``viewer`` or above), checked by asking the service itself, so the
browser console is behind exactly the API's door and its secret never leaves
the service. Browsing a database, there is no service to ask: the console makes
a random key when it starts and prints the link that carries it, once.

A browser presents the token once, as ``?token=`` (the answer is a redirect to
the same page without it, with a session cookie: HttpOnly, SameSite=Strict) or
as HTTP Basic (any user name, the token as password; what a browser's login
dialog sends). Scripts may send ``Authorization: Bearer``. The token is never
logged: the access log here names the path only, never the query string.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import html
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from dtf_core.errors import AuthError, DtfError
from dtf_core.service.client import CoordinatorClient

COOKIE = "dtf_console"
SESSION_S = 12 * 3600.0  # a session outlives no working day
logger = logging.getLogger("dtf.web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GateUnavailable(Exception):
    """The service that checks tokens did not answer (503: try again)."""


def coordinator_check(url: str, timeout: float = 5.0) -> Callable[[str], bool]:
    """Whether ``token`` opens the coordinator at ``url`` (a viewer route answers)."""

    def check(token: str) -> bool:
        try:
            CoordinatorClient(url, token, timeout=timeout, failover_wait=0.0).runs(1)
        except AuthError:
            return False
        except DtfError as exc:
            raise GateUnavailable(str(exc)) from None
        return True

    return check


def key_check(key: str) -> Callable[[str], bool]:
    """Whether ``token`` is the console's own random key (no service attached)."""

    def check(token: str) -> bool:
        return hmac.compare_digest(token.encode(), key.encode())

    return check


def presented_token(request: web.Request) -> str | None:
    """The token in ``?token=``, ``Authorization: Bearer`` or Basic (the password)."""
    if request.query.get("token"):
        return request.query["token"]
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or None
    return None


class TokenGate:
    """Sessions of the browsers that showed a good token, and the aiohttp
    middleware that asks every other request for one."""

    def __init__(
        self, check: Callable[[str], bool], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.check, self.clock = check, clock
        self._sessions: dict[str, float] = {}  # session id -> when it expires

    def open_session(self) -> str:
        now = self.clock()
        self._sessions = {k: t for k, t in self._sessions.items() if t > now}
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = now + SESSION_S
        return sid

    def session_ok(self, sid: str | None) -> bool:
        return bool(sid) and self._sessions.get(str(sid), 0.0) > self.clock()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await self._admit(request, handler)
        # The path only: a query string may hold the token.
        logger.info("%s %s %s", request.method, request.path, response.status)
        return response

    async def _admit(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.session_ok(request.cookies.get(COOKIE)):
            return await handler(request)
        token = presented_token(request)
        if token is None:
            return _refused("this console needs a token")
        try:
            ok = await asyncio.get_running_loop().run_in_executor(None, self.check, token)
        except GateUnavailable as exc:
            return web.Response(status=503, text=f"could not check the token: {exc}\n")
        if not ok:
            await asyncio.sleep(0.5)  # guessing keys costs time
            return _refused("the token was refused")
        sid = self.open_session()
        if "token" in request.query:
            # Off the address bar (and the browser's history) at once.
            query = {k: v for k, v in request.query.items() if k != "token"}
            location = str(request.rel_url.with_query(query))
            response: web.StreamResponse = web.Response(status=303, headers={"Location": location})
        else:
            response = await handler(request)
        if not response.prepared:  # a websocket is under way: it needs no cookie
            response.set_cookie(
                COOKIE, sid, max_age=int(SESSION_S), httponly=True, samesite="Strict", path="/",
                secure=request.secure,
            )  # fmt: skip
        return response


def _refused(why: str) -> web.Response:
    body = (
        "<!doctype html><title>dtf console</title><h1>dtf console</h1>"
        f"<p>{html.escape(why)}. Open this address with <code>?token=TOKEN</code> once "
        "(an API token of the coordinator, role viewer or above; or the key "
        "<code>dtf-tui --web</code> printed when it started), or sign in with the token as "
        "the password.</p>"
    )
    return web.Response(
        status=401, text=body, content_type="text/html",
        headers={"WWW-Authenticate": 'Basic realm="dtf console", charset="UTF-8"'},
    )  # fmt: skip
