"""HTTP client of ``dtf-core serve`` (used by ``dtf-core submit`` and ``dtf-tui``).

Standard library only (urllib). Errors become dtf errors: 401/403 ->
:class:`~dtf_core.errors.AuthError` (the server's one-line reason), 429 ->
:class:`~dtf_core.errors.ServiceBusyError`, other 4xx ->
:class:`~dtf_core.errors.OptionError`, unreachable or 5xx ->
:class:`~dtf_core.errors.ServiceError`. The token is sent only in the
``Authorization`` header and never appears in a message.

Transport: ``https://`` URLs are verified against the system's trust store, or
against ``ca_file`` (``--ca``); a certificate that fails is bad input (exit 2)
saying so. A token is never sent over plain ``http://`` to a host that is not
loopback (127.0.0.0/8, ::1, localhost) unless ``insecure`` (``--insecure``):
the refusal comes from the constructor, before any connection.

Coordinators come and go (a restart, a standby taking over): a request that
no coordinator received (connection refused, or 503 with ``Retry-After`` from
one that is stopping) and a read that failed in any way are tried again, on
every URL given, with backoff, for ``follow_timeout`` seconds
(``dtf-core submit --follow-timeout``); without it, for
``dtf.service.failover-wait`` when several URLs are given, else not at all.
A full queue (429) is another matter: :meth:`CoordinatorClient.submit` waits
for it only as long as ``busy_wait``.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from dtf_core import config
from dtf_core.backoff import backoff
from dtf_core.errors import (
    AuthError,
    OptionError,
    RunNotFoundError,
    ServiceBusyError,
    ServiceError,
)

TOKEN_ENV = "DTF_TOKEN"
T = TypeVar("T")


class CoordinatorClient:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        failover_wait: float | None = None,
        ca_file: str | None = None,
        insecure: bool = False,
        follow_timeout: float | None = None,
    ) -> None:
        # Several comma-separated URLs name a leader and its standbys: the client
        # follows whichever answers (a standby only listens once it leads).
        self.bases = [u.strip().rstrip("/") for u in url.split(",") if u.strip()]
        self.token = token or os.environ.get(TOKEN_ENV) or None
        for base in self.bases or [url]:
            parsed = urllib.parse.urlparse(base)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise OptionError(f"--coordinator {base!r} is not an http(s)://HOST:PORT address")
            plain = parsed.scheme == "http" and not is_loopback(parsed.hostname or "")
            if self.token and plain and not insecure:
                raise OptionError(
                    f"refusing to send a token over plain HTTP to {base}: use https:// "
                    "(`dtf-core serve --api-tls-cert/--api-tls-key`), or pass --insecure "
                    "if the network in between is trusted"
                )
        self.base = self.bases[0]
        https = any(b.startswith("https:") for b in self.bases)
        self.ssl_context = _ssl_context(ca_file) if https or ca_file else None
        self.timeout = timeout
        self.failover_wait = (
            config.seconds("service.failover-wait") if failover_wait is None else failover_wait
        )
        self.follow_timeout = follow_timeout
        self.switches = 0  # how often the client moved to another coordinator

    # ------------------------------------------------------------------ calls
    def health(self) -> dict[str, Any]:
        return dict(self._json("GET", "/v1/health"))

    def submit(
        self,
        suite_path: str,
        archive: bytes,
        metadata: dict[str, Any],
        priority: int | None = None,
        *,
        busy_wait: float = 0.0,
        on_busy: Callable[[str], None] = lambda message: None,
    ) -> dict[str, Any]:
        """Upload a run. ``priority``: None asks for the service's default for this
        token's subject. A full queue (429) is tried again after the server's
        ``Retry-After`` while ``busy_wait`` seconds last, telling ``on_busy``; then
        :class:`ServiceBusyError`."""
        body: dict[str, Any] = {
            "suite_path": suite_path,
            "archive": base64.b64encode(archive).decode("ascii"),
            "metadata": metadata,
        }
        if priority is not None:
            body["priority"] = priority
        deadline = time.monotonic() + busy_wait
        while True:
            try:
                return dict(self._json("POST", "/v1/runs", body, timeout=max(self.timeout, 120.0)))
            except ServiceBusyError as exc:
                pause = max(1.0, exc.retry_after)
                if time.monotonic() + pause > deadline:
                    if busy_wait > 0:
                        raise ServiceBusyError(
                            f"{exc} (still busy after {busy_wait:g}s of retries)", exc.retry_after
                        ) from None
                    raise
                on_busy(f"{exc}; trying again in {pause:g}s")
                time.sleep(pause)

    def run(self, run_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/runs/{_q(run_id)}"))

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/v1/runs?limit={limit}")["runs"])

    def cancel(self, run_id: str) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/runs/{_q(run_id)}/cancel", {}))

    def events(
        self, run_id: str, after: int = 0, wait: float = 25.0, instance: str | None = None
    ) -> dict[str, Any]:
        """One long-poll: events after sequence ``after``, waiting up to ``wait`` s.
        ``instance``: the service process that numbered ``after``; another one
        answers at once (its numbering starts afresh)."""
        path = f"/v1/runs/{_q(run_id)}/events?after={after}&wait={wait:g}"
        if instance:
            path += f"&instance={_q(instance)}"
        return dict(self._json("GET", path, timeout=wait + self.timeout))

    def follow(self, run_id: str, after: int = 0) -> Iterator[dict[str, Any]]:
        """Every event of the run until it ends, across a change of coordinator
        (a standby, a restart): the next one numbers the resumed run's events
        afresh, so the client reads them from the start."""
        seen = None  # the coordinator instance that numbered ``after``
        while True:
            switches = self.switches
            # A restart between two polls: the next process answers at once.
            page = self.events(run_id, after, instance=seen if after else None)
            instance = page.get("instance")  # None from a service before instances
            moved = self.switches != switches if instance is None else seen not in (None, instance)
            if moved and after:
                after = 0
                page = self.events(run_id, after)
                instance = page.get("instance")
            seen = instance
            yield from page["events"]
            after = int(page["next"])
            if page["finished"]:
                return

    def tasks(self, run_id: str) -> list[dict[str, Any]]:
        return list(self._json("GET", f"/v1/runs/{_q(run_id)}/tasks")["tasks"])

    def errors(self, run_id: str, context: bool = False) -> list[dict[str, Any]]:
        """``context``: with each attempt's system snapshot (kilobytes a row)."""
        query = "?context=1" if context else ""
        return list(self._json("GET", f"/v1/runs/{_q(run_id)}/errors{query}")["errors"])

    def attempts(self, run_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
        """Every attempt of the run (or of one task), output tails and snapshots included."""
        query = f"?task={_q(task_id)}" if task_id is not None else ""
        return list(self._json("GET", f"/v1/runs/{_q(run_id)}/attempts{query}")["attempts"])

    def results(self, run_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/runs/{_q(run_id)}/results"))

    def analysis(self, run_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/runs/{_q(run_id)}/analysis"))

    def report(self, run_id: str, fmt: str) -> str:
        return self._request("GET", f"/v1/runs/{_q(run_id)}/report?format={fmt}").decode()

    def coordinator(self) -> dict[str, Any]:
        """The coordinator answering: leader or not, since when, its standbys."""
        return dict(self._json("GET", "/v1/coordinator"))

    def workers(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/workers")["workers"])

    # ------------------------------------------- what attached consoles read
    def console(self, generation: int = 0, since: int = 0, epoch: str = "") -> dict[str, Any]:
        """The shared console snapshot, reflecting at least change ``generation``;
        with ``since``/``epoch`` (the ``build`` and ``epoch`` of the one held),
        maybe only what changed after it
        (:func:`dtf_core.service.views.wire.apply_delta`)."""
        path = f"/v1/console?generation={generation}"
        if since:
            path += f"&since={since}&epoch={_q(epoch)}"
        return dict(self._json("GET", path))

    def console_stream(
        self, since: int = 0, epoch: str = "", idle: float = 60.0
    ) -> Iterator[dict[str, Any]]:
        """Every console build the service publishes, as it publishes it
        (``/v1/console/stream``, server-sent events): the first a delta from
        build ``since`` of ``epoch`` or a whole snapshot, each next one the
        delta from the one before, as :meth:`console` answers. Tries each URL
        given, as a request does; ends when the connection does. ``idle``: the
        longest wait for a line (the service sends one every 15 s)."""
        path = f"/v1/console/stream?since={since}&epoch={_q(epoch)}"
        resp = self._first_answer(
            lambda base: self._open(base, "GET", path, None, idle, "text/event-stream")
        )
        with resp:
            yield from _sse_data(resp, self.base)

    def changes(self, after: int = 0, wait: float = 25.0) -> dict[str, Any]:
        """One long-poll of the change counter: ``{"generation", "epoch"}``."""
        path = f"/v1/changes?after={after}&wait={wait:g}"
        return dict(self._json("GET", path, timeout=wait + self.timeout))

    def benchmarks(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/v1/benchmarks")["series"])

    def series(self, benchmark: str, hardware: str) -> dict[str, Any]:
        path = f"/v1/benchmarks/series?benchmark={_q(benchmark)}&hardware={_q(hardware)}"
        return dict(self._json("GET", path))

    def issue_token(self, role: str, subject: str, ttl: str) -> dict[str, Any]:
        return dict(
            self._json("POST", "/v1/tokens", {"role": role, "subject": subject, "ttl": ttl})
        )

    # -------------------------------------------------------------- transport
    def _json(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        return json.loads(self._request(method, path, body, timeout))

    def _request(
        self, method: str, path: str, body: Any = None, timeout: float | None = None
    ) -> bytes:
        patience = self.follow_timeout
        if patience is None:
            patience = self.failover_wait if len(self.bases) > 1 else 0.0
        deadline = time.monotonic() + patience
        failures = 0
        while True:
            try:
                return self._first_answer(
                    lambda base: self._request_one(base, method, path, body, timeout)
                )
            except ServiceError as exc:
                if not exc.unreachable:
                    raise
                last = exc
            left = deadline - time.monotonic()
            if left <= 0:
                if len(self.bases) == 1 and not patience:
                    raise last
                raise ServiceError(
                    f"no coordinator answered within {patience:g}s ({', '.join(self.bases)}); "
                    f"last: {last}",
                    unreachable=True,
                )
            time.sleep(min(left, backoff(failures, 0.5, 5.0)))
            failures += 1

    def _first_answer(self, attempt: Callable[[str], T]) -> T:
        """``attempt(base)`` on each URL in turn, the one that answered last first:
        the first that reaches a coordinator is the one asked first from then on.
        When none is reachable, the last one's ServiceError."""
        last: ServiceError | None = None
        for base in [self.base] + [b for b in self.bases if b != self.base]:
            try:
                found = attempt(base)
            except ServiceError as exc:
                if not exc.unreachable:
                    raise
                last = exc
                continue
            if base != self.base:
                self.base, self.switches = base, self.switches + 1
            return found
        assert last is not None  # there is always one URL
        raise last

    def _request_one(
        self, base: str, method: str, path: str, body: Any, timeout: float | None
    ) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        with self._open(base, method, path, data, timeout, "application/json") as resp:
            try:
                payload: bytes = resp.read()
            except (TimeoutError, OSError, http.client.HTTPException) as exc:
                # The answer broke off (a timeout, the service gone): as unreachable.
                raise _transport_error(base, method, exc) from None
            return payload

    def _open(
        self,
        base: str,
        method: str,
        path: str,
        data: bytes | None,
        timeout: float | None,
        accept: str,
    ) -> http.client.HTTPResponse:
        """The response, its body not yet read; failures as dtf errors."""
        req = urllib.request.Request(base + path, data=data, method=method)
        req.add_header("Accept", accept)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            resp: http.client.HTTPResponse = urllib.request.urlopen(
                req, timeout=timeout or self.timeout, context=self.ssl_context
            )
            return resp
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, path) from None
        except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _transport_error(base, method, exc) from None


def _transport_error(base: str, method: str, exc: Exception) -> Exception:
    """A failure of the connection as a dtf error: a certificate not accepted is
    bad input; anything else a ServiceError, to be tried again elsewhere when safe."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ssl.SSLCertVerificationError):
        return OptionError(
            f"the certificate of {base} was not accepted ({reason.verify_message}); "
            "pass --ca FILE with the CA that signed it (`dtf-core tls certs` writes "
            "ca.pem), and use a host name the certificate names"
        )
    # A refused connection never reached the server: safe to send elsewhere.
    # Anything else may have been received, so only reads are repeated.
    safe = method == "GET" or isinstance(reason, ConnectionRefusedError)
    hint = ""
    if isinstance(reason, ssl.SSLError):
        hint = " (does it serve plain http://?)"
    elif isinstance(reason, ConnectionResetError) and base.startswith("http:"):
        hint = " (does it serve https://?)"
    return ServiceError(
        f"could not reach the coordinator at {base}: {reason}{hint}", unreachable=safe
    )


def _sse_data(resp: http.client.HTTPResponse, base: str) -> Iterator[dict[str, Any]]:
    """The JSON ``data`` of each server-sent event (comments and other fields
    skipped); a broken connection or a bad event is a ServiceError."""
    data: list[bytes] = []
    try:
        for line in resp:
            line = line.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
            elif not line and data:
                yield dict(json.loads(b"\n".join(data)))
                data = []
    except (TimeoutError, OSError, http.client.HTTPException, ValueError) as exc:
        raise ServiceError(f"the stream from {base} broke off: {exc}", unreachable=True) from None


class EndpointMissingError(OptionError):
    """The coordinator does not have this route: an older ``dtf-core serve``."""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: where a token in clear text stays on this machine."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise OptionError(f"--ca {ca_file}: not a readable PEM CA certificate ({exc})") from None


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _http_error(exc: urllib.error.HTTPError, path: str) -> Exception:
    try:
        message = str(json.loads(exc.read() or b"{}").get("error") or exc.reason)
    except (ValueError, AttributeError):
        message = str(exc.reason)
    code = exc.code
    if code == 429:
        try:
            retry_after = float(exc.headers.get("Retry-After") or 0)
        except ValueError:
            retry_after = 0.0
        return ServiceBusyError(f"the coordinator is busy: {message} (HTTP 429)", retry_after)
    if code in (401, 403):
        verb = "refused the token" if code == 401 else "denied the request"
        return AuthError(f"the coordinator {verb}: {message} (HTTP {code})", code)
    if code == 404 and message.startswith("no endpoint "):
        return EndpointMissingError(f"the coordinator has no {path.split('?')[0]}: {message}")
    if code == 404 and "/runs/" in path:
        return RunNotFoundError(message)
    if 400 <= code < 500:
        return OptionError(f"the coordinator rejected the request: {message} (HTTP {code})")
    if code == 503 and exc.headers.get("Retry-After"):
        # A coordinator that is stopping (or not yet running the run) did not
        # act on the request: safe to send again, here later or elsewhere.
        return ServiceError(
            f"the coordinator is unavailable: {message} (HTTP 503)", unreachable=True
        )
    return ServiceError(f"the coordinator failed: {message} (HTTP {code})")
