"""Wiring of ``dtf-core serve``: store, scheduler, client, runs, HTTP, signals.

Order matters: the Store opens first (a locked database is exit 3 before
anything starts), then the scheduler (``--start-scheduler`` runs
``dtf-core scheduler`` as a child, stopped by its pid on the way out), then the
Dask client on its own event-loop thread, and last the HTTP server on this
thread's event loop (HTTPS with ``--api-tls-cert/--api-tls-key``). Upload
retention (:mod:`~dtf_core.service.retention`) starts once the runs left open
are resumed, so that their directories are known to be in use.

SIGTERM/SIGINT stop it in order (a deployment being upgraded, ``systemctl
restart``): new runs are refused (503), the runs in flight get
``dtf.service.drain-grace`` to record what is finishing and are then left open,
never cancelled (:meth:`RunManager.drain`); the API answers meanwhile, so that
clients following a run learn it goes on elsewhere. Then everything closes in
reverse; letting go of the database is what lets a standby take over and
resume those runs, as the next start of this service would. A second signal
cuts the grace short.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import dask.config

from dtf_core import config
from dtf_core.cluster import embedded as cluster
from dtf_core.cluster import safepickle, security
from dtf_core.cluster.tls import client_security
from dtf_core.errors import ClusterError, DatabaseLockedError, OptionError
from dtf_core.service.api import serve_forever
from dtf_core.service.client import is_loopback
from dtf_core.service.leadership import Presence, public_url
from dtf_core.service.limits import UploadLimits
from dtf_core.service.observe import Observability
from dtf_core.service.retention import UploadJanitor
from dtf_core.service.runmanager import RunManager
from dtf_core.store import Store

if TYPE_CHECKING:
    from distributed import Client


@dataclass
class ServeOptions:
    scheduler: str | None
    start_scheduler: bool
    scheduler_host: str
    scheduler_port: int
    db: str
    host: str
    port: int
    secret_file: str
    result_key_file: str | None
    workdir: str | None
    unschedulable_timeout: float | None
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    standby: bool = False
    api_tls_cert: str | None = None
    api_tls_key: str | None = None
    # serve's limit options by name (limits.SETTINGS); None: the config's value
    limits: dict[str, Any] = field(default_factory=dict)
    badges: str | None = None  # public | token; default: dtf.service.badges
    worker_key_file: str | None = None
    dashboard: str | None = None  # --dashboard: of the scheduler started here
    metrics: str = "token"  # --metrics token|public|off


SHARED_KEY = (
    "{where} checks worker tokens with serve's API key: one secret for both lets a "
    "compromised scheduler mint admin tokens. Give the scheduler its own key "
    "(`dtf-core token secret worker.key`, then `dtf-core scheduler --secret-file worker.key` "
    "and worker tokens reissued with it; docs/security.md)"
)


def _say(text: str) -> None:
    click.echo(f"dtf-core serve: {text}", err=True)


def _read_keys(opts: ServeOptions) -> tuple[bytes, bytes | None]:
    """The API key and the result key, refusing any that does another key's job."""
    if bool(opts.scheduler) == opts.start_scheduler:
        raise OptionError("give exactly one of --scheduler ADDRESS and --start-scheduler")
    if opts.dashboard and opts.scheduler:
        raise OptionError(
            "--dashboard sets the dashboard of the scheduler serve starts (--start-scheduler); "
            "one given with --scheduler has its own (serve links to it either way)"
        )
    secret = security.read_secret(opts.secret_file, "API key file")
    result_key = (
        security.read_secret(opts.result_key_file, "result key file")
        if opts.result_key_file
        else None
    )
    if result_key == secret:
        raise OptionError(
            "--result-key-file holds serve's API key: every worker reads the result key, so "
            "any worker could mint admin tokens; make a separate one (dtf-core token secret FILE)"
        )
    if opts.start_scheduler:
        if not opts.worker_key_file:
            raise OptionError(
                "--start-scheduler needs --worker-key-file FILE: the scheduler checks worker "
                "tokens with its own key, never serve's API key (make one with "
                "`dtf-core token secret FILE` and reissue worker tokens with it)"
            )
        wkey = security.read_secret(opts.worker_key_file, "worker key file")
        if wkey == secret:
            raise OptionError(SHARED_KEY.format(where="--worker-key-file"))
        if wkey == result_key:
            raise OptionError(
                "--worker-key-file holds the result key: every worker reads the result key, so "
                "any worker could admit others; make a separate one (dtf-core token secret FILE)"
            )
    elif opts.worker_key_file:
        raise OptionError(
            "--worker-key-file goes with --start-scheduler; a scheduler started on its own "
            "reads its key itself (dtf-core scheduler --secret-file)"
        )
    return secret, result_key


def _check_scheduler_key(client: Client, secret: bytes, address: str) -> None:
    held = cluster.scheduler_key_id(client)
    if held is None:
        _say(
            f"the scheduler at {address} does not say which worker key it holds (no dtf "
            "preload, or an older one): make sure it is not serve's API key"
        )
    elif held == security.key_id(secret):
        raise OptionError(SHARED_KEY.format(where=f"the scheduler at {address}"))


def serve(opts: ServeOptions) -> None:
    secret, result_key = _read_keys(opts)
    # A token revoked with `dtf-core token revoke --secret-file API_KEY` is
    # refused from the next request on.
    security.watch_revocations(secret, opts.secret_file)
    sec = client_security(opts.tls_ca_file, opts.tls_cert, opts.tls_key)
    https = api_ssl_context(opts.api_tls_cert, opts.api_tls_key)
    bounds = UploadLimits.from_config(**opts.limits)
    if opts.badges:
        dask.config.set({"dtf.service.badges": opts.badges})  # read per request by the API
    workdir = Path(opts.workdir or Path(opts.db).resolve().parent / "uploads").resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Nothing a worker sends may run code here (this process holds the API key).
    safepickle.install()
    presence = Presence(opts.db, public_url(opts.host, opts.port))
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(_open_store(opts, presence))
        stack.callback(presence.leave)
        workdir.mkdir(parents=True, exist_ok=True)
        address = opts.scheduler
        if opts.start_scheduler:
            address = stack.enter_context(_scheduler_child(opts))
        assert address is not None
        handle = stack.enter_context(cluster.open_cluster(address, security=sec))
        _check_scheduler_key(handle.client, secret, address)
        manager = RunManager(
            handle.client, store, workdir=workdir,
            limits=bounds,
            max_concurrent=int(config.get("service.max-concurrent-runs")),
            keep_finished=int(config.get("service.keep-finished")),
            verify=security.ResultVerifier(result_key) if result_key else None,
            unschedulable_timeout=opts.unschedulable_timeout,
        )  # fmt: skip
        stack.callback(manager.shutdown)
        observe = Observability(manager, handle, opts, presence, secret)
        # Runs left `running` by a coordinator that died (kill -9, a lost host, the
        # leader a standby replaces) are finished before the API opens, so that a
        # client following one finds it here.
        for run_id in manager.resume_open_runs():
            _say(f"resuming run {run_id} left open by a previous coordinator")
        janitor = UploadJanitor(
            workdir, manager.in_use, keep=bounds.keep_uploads,
            keep_for=bounds.keep_uploads_for, interval=bounds.prune_interval,
        )  # fmt: skip
        janitor.start()  # after the resumed runs are known: their directories stay
        stack.callback(janitor.stop)
        if result_key is None:
            _say("no --result-key-file: results from workers are NOT verified")
        if https is None and not is_loopback(opts.host):
            _say(
                f"the API on {opts.host} is plain HTTP: clients refuse to send tokens to it "
                "without --insecure; give --api-tls-cert/--api-tls-key (or a TLS proxy)"
            )
        _say(f"database {opts.db}; uploads in {workdir}; scheduler {address}")
        _say(bounds.describe())
        if handle.dashboard:
            _say(f"Dask dashboard: {handle.dashboard}")
        _settle_heap()
        asyncio.run(_main(manager, secret, opts.host, opts.port, https, observe))
    _say("stopped")


def _settle_heap() -> None:
    """Keep what start-up made (the libraries, the client: most of the heap) out of
    the cyclic GC's full collections, which walk every tracked object with the GIL
    held: one took 213-378 ms in serve during a 1,000-task run, and the API's
    loop stood still that long (docs/benchmarks.md "Service"). Frozen objects are
    still freed by reference counting; only cycles among them stay."""
    gc.collect()
    gc.freeze()


async def _main(
    manager: RunManager,
    secret: bytes,
    host: str,
    port: int,
    https: ssl.SSLContext | None,
    observe: Observability,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    grace = config.seconds("service.drain-grace")
    signals: list[int] = []

    def on_signal(sig: int) -> None:
        signals.append(sig)
        if len(signals) == 1:
            _say(f"{signal.Signals(sig).name}: stopping in order; no new runs, the runs in "
                 f"flight get {grace:g}s and then stay open for the next coordinator")  # fmt: skip
            manager.drain(grace)
            stop.set()
        else:
            _say("asked again: leaving the runs in flight now")
            manager.drain(0.0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    close = asyncio.Event()
    listening = serve_forever(
        manager, secret, host, port, lambda url: _say(f"listening on {url}"), https,
        routes=observe.routes, on_request=observe.on_request, until=close,
    )  # fmt: skip
    server = asyncio.create_task(listening)
    done, _ = await asyncio.wait(
        [server, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    if server in done:
        server.result()  # it could not listen: raise why
        return
    # The API keeps answering while the runs let go (reads, 503 for new runs, the
    # hand-over to clients following a run); the margin covers their last writes.
    if not await loop.run_in_executor(None, manager.wait_drained, grace + 30.0):
        _say("runs still working after the grace; stopping anyway")
    await asyncio.sleep(0.5)  # the waiting followers are answered (woken via the loop)
    close.set()
    await server


def api_ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The server side of the API's HTTPS, or None for plain HTTP; bad files
    are bad input, found before anything starts."""
    if not cert and not key:
        return None
    if not (cert and key):
        raise OptionError("HTTPS needs both --api-tls-cert and --api-tls-key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise OptionError(
            f"--api-tls-cert {cert} / --api-tls-key {key}: not a PEM certificate and its "
            f"private key ({exc}); `dtf-core tls certs DIR` writes a pair"
        ) from None
    return ctx


def _open_store(opts: ServeOptions, presence: Presence) -> Store:
    """The database, or with ``--standby`` the wait for it: the leader is
    whoever holds DuckDB's write lock, so a standby takes over exactly when the
    leader's process is gone, and two coordinators can never both write.
    ``presence`` tells the leader about this standby while it waits."""
    if not opts.standby:
        store = Store(opts.db)
        presence.lead()
        return store
    poll = config.seconds("service.standby-poll")
    said = False
    while True:
        try:
            store = Store(opts.db, lock_timeout=0)  # the standby polls on its own
        except DatabaseLockedError as exc:
            if not said:
                _say(f"standby: {exc}; taking over when it is released")
                said = True
            presence.beat()
            time.sleep(poll)
            continue
        if said:
            _say("standby: took over the database; now the leader")
        presence.lead(took_over=said)
        return store


@contextlib.contextmanager
def _scheduler_child(opts: ServeOptions) -> Iterator[str]:
    argv = [sys.executable, "-m", "dtf_core.cli", "scheduler", "--host", opts.scheduler_host,
            "--port", str(opts.scheduler_port),
            "--secret-file", str(opts.worker_key_file)]  # fmt: skip
    if opts.dashboard:
        argv += ["--dashboard-address", opts.dashboard]
    for flag, value in (("--tls-ca-file", opts.tls_ca_file), ("--tls-cert", opts.tls_cert),
                        ("--tls-key", opts.tls_key)):  # fmt: skip
        if value:
            argv += [flag, value]
    box = {"proc": subprocess.Popen(argv)}
    scheme = "tls" if opts.tls_cert else "tcp"
    address = f"{scheme}://{opts.scheduler_host}:{opts.scheduler_port}"
    stopping = threading.Event()

    def keep_alive() -> None:
        # The scheduler we manage is restarted whenever it dies; the runs notice
        # the loss, wait, and resubmit their unfinished tasks (DESIGN: workers
        # started by `dtf-core worker` come back by themselves).
        while not stopping.wait(0.5):
            if box["proc"].poll() is not None and not stopping.is_set():
                _say(f"the scheduler exited (rc {box['proc'].returncode}); restarting it")
                box["proc"] = subprocess.Popen(argv)

    try:
        # The client's own connect timeout does the waiting; fail early if it died.
        time.sleep(0.5)
        if box["proc"].poll() is not None:
            raise ClusterError(f"the scheduler exited at start (rc {box['proc'].returncode})")
        threading.Thread(target=keep_alive, daemon=True, name="dtf-scheduler-keeper").start()
        yield address
    finally:
        stopping.set()
        proc = box["proc"]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # our own child, by pid
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
