"""Dask scheduler preload: only workers with a valid dtf worker token may join.

    dask scheduler --preload dtf_core.scheduler_preload --dtf-secret-file /etc/dtf/secret

(``dtf-core scheduler`` runs exactly that.) Dask has no worker authentication
and ``SchedulerPlugin.add_worker`` cannot veto, so this wraps the scheduler's
``register-worker`` handler: a worker whose token (sent by
:mod:`dtf_core.worker_preload` in the registration's ``extra``) is missing,
invalid or expired is answered ``{"status": "error"}``; it logs the reason and
exits, and is never added. The token itself is dropped from ``extra`` so that
no client can read it back from the scheduler.

It refuses the handlers that would run a client-supplied callable in the
scheduler (:data:`REFUSED_HANDLERS`: ``run_on_scheduler``, scheduler plugins,
``feed``), and lets one worker token admit one live worker at a time.

It also sets what a shared cluster needs: a ``no-workers-timeout`` (else a task
no worker can run waits forever), a short ``worker-ttl`` (else a hung host
keeps its tasks for 5 minutes), queueing that keeps priorities across runs
(:mod:`~dtf_core.cluster.queueing`), and it warns when the dashboard listens on
a non-loopback address.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import click
import dask.utils
from tornado.ioloop import PeriodicCallback

from dtf_core import config
from dtf_core.cluster import queueing, security
from dtf_core.errors import AuthError, DtfError

# Under "distributed" so that Dask's logging setup formats and shows it.
logger = logging.getLogger("distributed.dtf")

TOKEN_KEY = "dtf-token"  # where the worker preload puts its token in ``extra``
REFUSED = "dtf: worker refused by the scheduler"  # dtf-core worker stops on this


def check_worker(secret: bytes, extra: dict[str, Any] | None) -> security.Claims:
    """The worker's claims, or :class:`AuthError` saying why it may not join."""
    token = (extra or {}).get(TOKEN_KEY)
    if not token:
        raise AuthError(
            "no dtf worker token (start it with --preload dtf_core.worker_preload "
            "--dtf-token-file FILE)"
        )
    return security.verify_token(secret, str(token), audience=security.WORKER_AUDIENCE)


def install(scheduler: Any, secret: bytes) -> None:
    """Wrap ``register-worker`` on ``scheduler`` and apply dtf's timeouts."""
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
    _refuse_code_handlers(scheduler)
    _apply_timeouts(scheduler)
    _warn_public_dashboard(scheduler)


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


@click.command(context_settings={"ignore_unknown_options": False})
@click.option(
    "--dtf-secret-file",
    type=str,
    default=None,
    help="File holding the deployment secret that signs worker tokens.",
)
def dask_setup(scheduler: Any, dtf_secret_file: str | None) -> None:
    if not dtf_secret_file:
        # Refuse to run open: a dtf preload without a secret would admit anyone.
        raise RuntimeError("dtf_core.scheduler_preload needs --dtf-secret-file FILE")
    try:
        secret = security.read_secret(dtf_secret_file)
    except DtfError as exc:
        raise RuntimeError(f"dtf_core.scheduler_preload: {exc}") from None
    install(scheduler, secret)
    logger.info(
        "dtf: workers need a token; no-workers-timeout %s, worker-ttl %s",
        dask.utils.format_time(scheduler.no_workers_timeout),
        dask.utils.format_time(scheduler.worker_ttl),
    )
