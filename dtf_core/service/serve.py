"""Wiring of ``dtf-core serve``: store, scheduler, client, runs, HTTP, signals.

Order matters: the Store opens first (a locked database is exit 3 before
anything starts), then the scheduler (``--start-scheduler`` runs
``dtf-core scheduler`` as a child, stopped by its pid on the way out), then the
Dask client on its own event-loop thread, and last the HTTP server on this
thread's event loop.

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
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import dask.utils

from dtf_core import config
from dtf_core.cluster import embedded as cluster
from dtf_core.cluster import safepickle, security
from dtf_core.cluster.tls import client_security
from dtf_core.errors import ClusterError, DatabaseLockedError, OptionError
from dtf_core.service.api import serve_forever
from dtf_core.service.runmanager import RunManager
from dtf_core.store import Store


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


def _say(text: str) -> None:
    click.echo(f"dtf-core serve: {text}", err=True)


def serve(opts: ServeOptions) -> None:
    if bool(opts.scheduler) == opts.start_scheduler:
        raise OptionError("give exactly one of --scheduler ADDRESS and --start-scheduler")
    secret = security.read_secret(opts.secret_file)
    result_key = (
        security.read_secret(opts.result_key_file, "result key file")
        if opts.result_key_file
        else None
    )
    sec = client_security(opts.tls_ca_file, opts.tls_cert, opts.tls_key)
    workdir = Path(opts.workdir or Path(opts.db).resolve().parent / "uploads").resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Nothing a worker sends may run code here (this process holds the API key).
    safepickle.install()
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(_open_store(opts))
        workdir.mkdir(parents=True, exist_ok=True)
        address = opts.scheduler
        if opts.start_scheduler:
            address = stack.enter_context(_scheduler_child(opts))
        assert address is not None
        handle = stack.enter_context(cluster.open_cluster(address, security=sec))
        manager = RunManager(
            handle.client, store, workdir=workdir,
            upload_limit=int(dask.utils.parse_bytes(str(config.get("service.upload-limit")))),
            max_concurrent=int(config.get("service.max-concurrent-runs")),
            keep_finished=int(config.get("service.keep-finished")),
            verify=security.ResultVerifier(result_key) if result_key else None,
            unschedulable_timeout=opts.unschedulable_timeout,
        )  # fmt: skip
        stack.callback(manager.shutdown)
        # Runs left `running` by a coordinator that died (kill -9, a lost host, the
        # leader a standby replaces) are finished before the API opens, so that a
        # client following one finds it here.
        for run_id in manager.resume_open_runs():
            _say(f"resuming run {run_id} left open by a previous coordinator")
        if result_key is None:
            _say("no --result-key-file: results from workers are NOT verified")
        _say(f"database {opts.db}; uploads in {workdir}; scheduler {address}")
        asyncio.run(_main(manager, secret, opts.host, opts.port))
    _say("stopped")


async def _main(manager: RunManager, secret: bytes, host: str, port: int) -> None:
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
    server = asyncio.create_task(
        serve_forever(manager, secret, host, port, lambda url: _say(f"listening on {url}"), close)
    )
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


def _open_store(opts: ServeOptions) -> Store:
    """The database, or with ``--standby`` the wait for it: the leader is
    whoever holds DuckDB's write lock, so a standby takes over exactly when the
    leader's process is gone, and two coordinators can never both write."""
    if not opts.standby:
        return Store(opts.db)
    poll = config.seconds("service.standby-poll")
    said = False
    while True:
        try:
            store = Store(opts.db, lock_timeout=0)  # the standby polls on its own
        except DatabaseLockedError as exc:
            if not said:
                _say(f"standby: {exc}; taking over when it is released")
                said = True
            time.sleep(poll)
            continue
        if said:
            _say("standby: took over the database; now the leader")
        return store


@contextlib.contextmanager
def _scheduler_child(opts: ServeOptions) -> Iterator[str]:
    argv = [sys.executable, "-m", "dtf_core.cli", "scheduler", "--host", opts.scheduler_host,
            "--port", str(opts.scheduler_port), "--secret-file", opts.secret_file]  # fmt: skip
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
