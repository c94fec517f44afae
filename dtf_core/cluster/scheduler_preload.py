"""Dask scheduler preload: only workers with a valid dtf worker token may join,
and the scheduler runs no code a client sends.

    dask scheduler --preload dtf_core.scheduler_preload --dtf-secret-file /etc/dtf/worker.key

(``dtf-core scheduler`` runs exactly that.) Dask has no worker authentication
and ``SchedulerPlugin.add_worker`` cannot veto, so this wraps the scheduler's
``register-worker`` handler: a worker whose token (sent by
:mod:`dtf_core.worker_preload` in the registration's ``extra``) is missing,
invalid or expired is answered ``{"status": "error"}``; it logs the reason and
exits, and is never added. The token itself is dropped from ``extra`` so that
no client can read it back from the scheduler.

The file is the worker admission key, and nothing else: the scheduler must
never hold the API key (docs/security.md). A token on the revocation list next
to it (``dtf-core token revoke``) is refused at join, and a connected worker
whose token is revoked is removed within :data:`SWEEP_S`. One worker token
admits one live worker at a time.

Dask unpickles what clients send in the scheduler process, before any handler
runs: :func:`dtf_core.cluster.graphpickle.install` limits that to dtf's own task
graphs. The handlers that would run a client-supplied callable
(:data:`REFUSED_HANDLERS`: ``run_on_scheduler``, scheduler plugins, ``feed``)
are refused as well, and ``dtf_key_id`` tells ``serve`` which key this
scheduler holds (by :func:`~dtf_core.cluster.security.key_id`, never the key),
so that a deployment that still shares one secret is stopped at start.

It also sets what a shared cluster needs: a ``no-workers-timeout`` (else a task
no worker can run waits forever), a short ``worker-ttl`` (else a hung host
keeps its tasks for 5 minutes), queueing that keeps priorities across runs
(:mod:`~dtf_core.cluster.queueing`), and it warns when the dashboard listens on
a non-loopback address.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import click
import dask.utils
from tornado.ioloop import PeriodicCallback

from dtf_core import config
from dtf_core.cluster import graphpickle, queueing, security
from dtf_core.cluster.revocation import RevocationList
from dtf_core.errors import AuthError, DtfError

# Under "distributed" so that Dask's logging setup formats and shows it.
logger = logging.getLogger("distributed.dtf")

TOKEN_KEY = "dtf-token"  # where the worker preload puts its token in ``extra``
REFUSED = "dtf: worker refused by the scheduler"  # dtf-core worker stops on this
KEY_ID_HANDLER = "dtf_key_id"
SWEEP_S = 2.0  # how often connected workers' tokens are checked against the revocation list


def check_worker(secret: bytes, extra: dict[str, Any] | None) -> security.Claims:
    """The worker's claims, or :class:`AuthError` saying why it may not join."""
    token = (extra or {}).get(TOKEN_KEY)
    if not token:
        raise AuthError(
            "no dtf worker token (start it with --preload dtf_core.worker_preload "
            "--dtf-token-file FILE)"
        )
    return security.verify_token(secret, str(token), audience=security.WORKER_AUDIENCE)


def install(scheduler: Any, secret: bytes, revoked: RevocationList | None = None) -> None:
    """Wrap ``register-worker`` on ``scheduler``, refuse the code-running
    handlers and apply dtf's timeouts. ``revoked``: drop connected workers
    whose token lands on it (joins check it through ``verify_token``)."""
    original: Callable[..., Awaitable[Any]] = scheduler.handlers["register-worker"]
    live: dict[str, str] = {}  # token id -> address of the worker it admitted

    async def register_worker(comm: Any, *, extra: dict | None = None, **kwargs: Any) -> Any:
        who = f"{kwargs.get('name')!r} at {kwargs.get('address')}"
        try:
            claims = check_worker(secret, extra)
        except AuthError as exc:
            logger.warning("%s: %s: %s", REFUSED, who, exc)
            scheduler.log_event("dtf", {"action": "worker-refused", "worker": who, "why": str(exc)})
            await comm.write(
                {"status": "error", "message": f"{REFUSED}: {exc}", "time": time.time()}
            )
            # Closing here ends the handler loop quietly instead of with a traceback.
            await comm.close()
            return None
        holder = live.get(claims.token_id)
        if claims.token_id and holder is not None and holder in scheduler.workers:
            # A copied token (a task read it on its worker) must not admit a
            # second, rogue worker while the one it was issued to is connected.
            why = f"token {claims.token_id} is in use by the connected worker {holder}"
            logger.warning("%s: %s: %s", REFUSED, who, why)
            scheduler.log_event("dtf", {"action": "worker-refused", "worker": who, "why": why})
            await comm.write(
                {"status": "error", "message": f"{REFUSED}: {why}", "time": time.time()}
            )
            await comm.close()
            return None
        if claims.token_id:
            live[claims.token_id] = str(kwargs.get("address"))
        extra = {k: v for k, v in (extra or {}).items() if k != TOKEN_KEY}
        extra["dtf-subject"] = claims.subject
        return await original(comm, extra=extra, **kwargs)

    scheduler.handlers["register-worker"] = register_worker
    scheduler.handlers[KEY_ID_HANDLER] = lambda *_, **__: {"admission": security.key_id(secret)}
    if revoked is not None:
        scheduler.periodic_callbacks["dtf-revoked"] = PeriodicCallback(
            lambda: _drop_revoked(scheduler, live, revoked), SWEEP_S * 1000
        )
    _refuse_code_handlers(scheduler)
    _apply_timeouts(scheduler)
    _warn_public_dashboard(scheduler)


_removals: set[asyncio.Future[Any]] = set()  # kept until done (the loop holds weak refs)


def _drop_revoked(scheduler: Any, live: dict[str, str], revoked: RevocationList) -> None:
    for token_id, address in list(live.items()):
        if address in scheduler.workers and revoked.listed(token_id):
            live.pop(token_id)
            logger.warning("dtf: removing worker %s: its token %s was revoked", address, token_id)
            scheduler.log_event("dtf", {"action": "worker-revoked", "worker": address})
            fut = asyncio.ensure_future(
                scheduler.remove_worker(address, stimulus_id=f"dtf-token-revoked-{time.time()}")
            )
            _removals.add(fut)
            fut.add_done_callback(_removals.discard)


# Handlers that unpickle and run a caller-supplied callable (or write files) in
# the scheduler process. Dask does not know who calls: any client, including one
# a task makes on a worker, could. dtf uses none of them (docs/security.md).
REFUSED_HANDLERS = (
    "run_function",  # Client.run_on_scheduler
    "register_scheduler_plugin",  # Client.register_plugin(SchedulerPlugin)
    "unregister_scheduler_plugin",
    "feed",  # Client._run_on_scheduler's periodic cousin: function/setup/teardown
    "dump_cluster_state_to_url",  # writes wherever the caller says (fsspec URL)
)
_PICKLED_KEY_HANDLERS = ("retire_workers", "workers_to_close")  # ``key=`` may be a pickle


def _refuse_code_handlers(scheduler: Any) -> None:
    def refuser(op: str) -> Callable[..., Any]:
        def refuse(*_: Any, **__: Any) -> Any:
            scheduler.log_event("dtf", {"action": "handler-refused", "op": op})
            logger.warning("dtf: refused %r: this scheduler runs no client-supplied code", op)
            raise PermissionError(f"dtf: the scheduler refuses {op!r} (docs/security.md)")

        return refuse

    for op in REFUSED_HANDLERS:
        if op in scheduler.handlers:
            scheduler.handlers[op] = refuser(op)
    for op in _PICKLED_KEY_HANDLERS:
        original = scheduler.handlers.get(op)
        if original is not None:
            scheduler.handlers[op] = _no_pickled_key(op, original, refuser(op))


def _no_pickled_key(
    op: str, original: Callable[..., Any], refuse: Callable[..., Any]
) -> Callable[..., Any]:
    def handler(*args: Any, **kwargs: Any) -> Any:
        if isinstance(kwargs.get("key"), bytes | bytearray):
            return refuse()
        return original(*args, **kwargs)

    return handler


def _apply_timeouts(scheduler: Any) -> None:
    # The Scheduler read these from dask.config before preloads ran; set them on
    # the object. Periodic callbacks start after the preload, so replacing the
    # worker-ttl one here takes effect from the start.
    scheduler.no_workers_timeout = config.seconds("scheduler.no-workers-timeout")
    ttl = config.seconds("scheduler.worker-ttl")
    scheduler.worker_ttl = ttl
    old = scheduler.periodic_callbacks.get("worker-ttl")
    if old is not None:
        old.stop()
    scheduler.periodic_callbacks["worker-ttl"] = PeriodicCallback(
        scheduler.check_worker_ttl, ttl * 1000
    )
    # Priorities across runs: the highest-priority waiting task starts next.
    queueing.install(scheduler)


def _warn_public_dashboard(scheduler: Any) -> None:
    server = scheduler.services.get("dashboard")
    if server is None:
        return
    try:
        hosts = {str(sock.getsockname()[0]) for sock in server.http_server._sockets.values()}
    except Exception:  # tornado internals moved: not worth failing over
        return
    public = {h for h in hosts if h not in ("127.0.0.1", "::1", "localhost")}
    if public:
        logger.warning(
            "dtf: the dashboard listens on %s; anyone who reaches it sees task names and "
            "logs. Pass --dashboard-address 127.0.0.1:8787 (dtf-core scheduler does).",
            ", ".join(sorted(public)),
        )


def _stop(why: str) -> NoReturn:
    logger.error("dtf_core.scheduler_preload: %s; not starting", why)
    raise SystemExit(2) from None


@click.command(context_settings={"ignore_unknown_options": False})
@click.option(
    "--dtf-secret-file",
    type=str,
    default=None,
    help="File holding the worker admission key that signs worker tokens (never the API key).",
)
def dask_setup(scheduler: Any, dtf_secret_file: str | None) -> None:
    # Dask logs an Exception from a preload and starts the scheduler anyway,
    # open to any worker and any pickle: stop the process instead.
    if not dtf_secret_file:
        _stop("needs --dtf-secret-file FILE")
    try:
        secret = security.read_secret(str(dtf_secret_file), "worker key file")
    except DtfError as exc:
        _stop(str(exc))
    # Before the first client connects: from here on, a pickle that is not a dtf
    # task graph is refused while its message is read.
    graphpickle.install()
    install(scheduler, secret, security.watch_revocations(secret, dtf_secret_file))
    logger.info(
        "dtf: workers need a token; no-workers-timeout %s, worker-ttl %s",
        dask.utils.format_time(scheduler.no_workers_timeout),
        dask.utils.format_time(scheduler.worker_ttl),
    )
