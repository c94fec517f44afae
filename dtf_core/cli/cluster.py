"""Cluster mode commands: ``scheduler``, ``worker``, ``serve``, ``submit`` and
``tls`` (docs/cluster.md); ``token`` lives in :mod:`dtf_core.cli.tokens`."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

import click

from dtf_core.cli import tokens
from dtf_core.cli.common import (
    client_tls_options,
    dashboard_option,
    db_option,
    default_db,
    handle_errors,
    output_options,
    priority_option,
)
from dtf_core.errors import OptionError, exit_code

_TLS_FLAGS = ("--tls-ca-file", "--tls-cert", "--tls-key")


def _tls_options(fn: Any) -> Any:
    for flag, help_ in reversed(
        (
            ("--tls-ca-file", "Mutual TLS: the CA that signed every certificate."),
            ("--tls-cert", "Mutual TLS: this process's certificate."),
            ("--tls-key", "Mutual TLS: this process's private key."),
        )
    ):
        fn = click.option(flag, type=click.Path(dir_okay=False, exists=True), help=help_)(fn)
    return fn


def _tls_argv(kwargs: dict[str, Any]) -> dict[str, str]:
    values = {f: kwargs.get(f[2:].replace("-", "_")) for f in _TLS_FLAGS}
    given = {f: str(v) for f, v in values.items() if v}
    if given and len(given) != 3:
        raise OptionError("mutual TLS needs all of --tls-ca-file, --tls-cert and --tls-key")
    return given


# serve's limits (dtf_core.service.limits): flag, metavar, what it bounds; the
# default of each is its dask config key, dtf.service.<flag without -->.
_LIMITS = (
    ("--upload-limit", "SIZE", "Largest suite archive accepted (compressed); 413 above."),
    ("--unpacked-limit", "SIZE", "Most an archive may unpack to (gzip bombs stop here); 413."),
    ("--entry-limit", "N", "Most files and directories in one archive; 413 above."),
    ("--queue-limit", "N", "Most runs queued or running at once, all submitters; 429 above."),
    ("--submitter-queue-limit", "N", "The same per submitter (token subject); 429 above."),
    ("--keep-uploads", "N", "Upload directories of finished runs kept, newest first (0: all)."),
    ("--keep-uploads-for", "AGE", "Remove them this long after their run ended: 7d (0: never)."),
)


def _limit_options(fn: Any) -> Any:
    for flag, metavar, help_ in reversed(_LIMITS):
        key = f"dtf.service.{flag[2:]}"
        fn = click.option(flag, default=None, metavar=metavar, help=f"{help_} Default: {key}.")(fn)
    return fn


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(scheduler_cmd)
    group.add_command(worker_cmd)
    group.add_command(serve_cmd)
    group.add_command(submit_cmd)
    group.add_command(tokens.token_group)
    group.add_command(tls_group)


# ------------------------------------------------------------------- scheduler
def scheduler_argv(
    host: str, port: int, dashboard_address: str, secret_file: str, tls: dict[str, str]
) -> list[str]:
    argv = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", host,
            "--port", str(port)]  # fmt: skip
    if dashboard_address.lower() in ("none", "off", ""):
        argv.append("--no-dashboard")
    else:
        argv += ["--dashboard-address", dashboard_address]
    for flag, value in tls.items():
        argv += [flag, value]
    if tls:
        argv += ["--protocol", "tls"]
    return [
        *argv,
        "--preload",
        "dtf_core.scheduler_preload",
        "--dtf-secret-file",
        secret_file,
    ]


@click.command("scheduler")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; 0.0.0.0 (or the host's address) for remote workers.",
)
@click.option("--port", type=int, default=8786, show_default=True, help="Port to listen on.")
@click.option(
    "--dashboard-address",
    default=None,
    help="Dashboard address (default 127.0.0.1:8787; `none` turns it off).",
)
@click.option(
    "--secret-file",
    required=True,
    type=click.Path(dir_okay=False),
    help="Worker admission key (worker.key of `dtf-core token init`): workers need a token "
    "signed with it. Never serve's API key.",
)
@_tls_options
@handle_errors
def scheduler_cmd(host: str, port: int, dashboard_address: str | None, secret_file: str,
                  **tls: Any) -> None:  # fmt: skip
    """A stock Dask scheduler with dtf's preload (workers need a token; it runs
    no client code but dtf's own task graphs)."""
    from dtf_core import config
    from dtf_core.cluster import security

    # A bad file is one line here, not a traceback there.
    security.read_secret(secret_file, "worker key file")
    addr = dashboard_address or str(config.get("scheduler.dashboard-address"))
    argv = scheduler_argv(host, port, addr, os.path.abspath(secret_file), _tls_argv(tls))
    sys.stdout.flush()
    os.execv(sys.executable, argv)  # the same pid: service managers and tests see one process


# ---------------------------------------------------------------------- worker
@click.command("worker")
@click.argument("scheduler")
@click.option(
    "--token-file",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="File holding a worker token (`dtf-core token issue --role worker`), owner-only.",
)
@click.option(
    "--resources",
    "-r",
    default="",
    metavar="NAME=N[,NAME=N]",
    help="Extra or overriding resource tags, e.g. GPU=1 or CUDA=1.",
)
@click.option("--nthreads", type=int, default=None, help="Threads (default: usable cores).")
@click.option("--name", default=None, help="Worker name (default: host name).")
@click.option(
    "--result-key-file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    envvar="DTF_RESULT_KEY_FILE",
    help="Key that signs every result (the same file as serve's), owner-only.",
)
@click.option(
    "--task-user",
    default=None,
    metavar="USER",
    help="Run the Dask worker, and so every task, as this unprivileged user (dtf-core "
    "worker must start as root): tasks cannot read the token or key files.",
)
@click.option(
    "--nanny/--no-nanny",
    default=True,
    show_default=True,
    help="Run the worker under a Dask nanny process (restarts it when a task kills it).",
)
@click.option("--dry-run", is_flag=True, help="Print the resources and the command; start nothing.")
@_tls_options
@handle_errors
def worker_cmd(scheduler: str, token_file: str, resources: str, nthreads: int | None,
               name: str | None, result_key_file: str | None, task_user: str | None,
               nanny: bool, dry_run: bool, **tls: Any) -> None:  # fmt: skip
    """Detect this host's hardware, run `dask worker` with it, relaunch it when it exits.

    The token and the result key reach the worker over a pipe, never on its
    command line or in its environment (docs/security.md)."""
    from dtf_core.cluster import handover, hardware, security, supervisor

    token = security.read_token_file(token_file, "worker token file")
    key = security.read_secret(result_key_file, "result key file") if result_key_file else None
    user = handover.TaskUser.resolve(task_user) if task_user else None
    info = hardware.describe()
    res = {**supervisor.derive_resources(info), **hardware.parse_resources(resources)}
    threads = nthreads or int(info["logical_cores"])
    if threads < 1:
        raise OptionError(f"--nthreads must be at least 1, got {threads}")
    home = user.home() if user is not None and not dry_run else None
    argv = supervisor.worker_argv(
        scheduler, name=name or socket.gethostname(), nthreads=threads, resources=res,
        nanny=nanny, tls=_tls_argv(tls), local_directory=str(home) if home else None,
    )  # fmt: skip
    click.echo(f"dtf-core worker: {hardware.label(info)}", err=True)
    click.echo(
        "dtf-core worker: resources " + " ".join(f"{k}={v:g}" for k, v in sorted(res.items())),
        err=True,
    )
    if dry_run:
        click.echo(" ".join(argv))
        return
    if user is not None:
        click.echo(f"dtf-core worker: tasks run as {user.name} (uid {user.uid})", err=True)
    sup = supervisor.Supervisor(
        argv, credentials=handover.encode(token, key), task_user=user,
        home=str(home) if home else None,
    )  # fmt: skip
    sup.install_signal_handlers()
    try:
        rc = sup.run()
    finally:
        if home is not None:
            handover.TaskUser.cleanup(home)
    sys.exit(rc)


# ----------------------------------------------------------------------- serve
@click.command("serve")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Use an existing Dask scheduler (tcp://host:8786).",
)
@click.option(
    "--start-scheduler",
    is_flag=True,
    help="Start `dtf-core scheduler` as a child process (see --scheduler-host/-port).",
)
@click.option(
    "--scheduler-host",
    default="127.0.0.1",
    show_default=True,
    help="With --start-scheduler: the interface it listens on.",
)
@click.option(
    "--scheduler-port",
    type=int,
    default=8786,
    show_default=True,
    help="With --start-scheduler: the port it listens on.",
)
@db_option
@click.option(
    "--standby",
    is_flag=True,
    help="If another serve holds the database, wait (silently, not listening) and take "
    "over when it dies: resume its open runs, then serve. Clients list both URLs.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="API interface.")
@click.option("--port", type=int, default=8780, show_default=True, help="API port.")
@click.option(
    "--secret-file",
    required=True,
    type=click.Path(dir_okay=False),
    help="API key (api.key of `dtf-core token init`): signs and checks API tokens. "
    "Only serve reads it.",
)
@click.option(
    "--worker-key-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="With --start-scheduler: the worker admission key the scheduler checks worker "
    "tokens with (never the API key).",
)
@click.option(
    "--result-key-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Verify every result's signature with this key (workers sign with it).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where uploaded suites are unpacked (default: uploads/ beside the database).",
)
@click.option(
    "--unschedulable-timeout",
    type=float,
    default=None,
    help="Seconds a task waits for a capable worker (default 30).",
)
@click.option(
    "--api-tls-cert", type=click.Path(dir_okay=False, exists=True), default=None,
    metavar="FILE", help="Serve the API over HTTPS with this certificate (PEM, chain first).",
)  # fmt: skip
@click.option(
    "--api-tls-key", type=click.Path(dir_okay=False, exists=True), default=None,
    metavar="FILE", help="The private key of --api-tls-cert.",
)  # fmt: skip
@click.option(
    "--badges", type=click.Choice(["public", "token"]), default=None,
    help="GET /v1/badges/SUITE.json|.svg without a token (public) or with a viewer token "
    "(default: dtf.service.badges, public).",
)  # fmt: skip
@_limit_options
@dashboard_option
@click.option(
    "--metrics",
    type=click.Choice(["token", "public", "off"]),
    default="token",
    show_default=True,
    help="Prometheus metrics at /metrics: behind a viewer token like the API, open to anyone "
    "who reaches the port, or not served.",
)
@_tls_options
@handle_errors
def serve_cmd(**kwargs: Any) -> None:
    """Run the coordinator as an HTTP(S) service (API under /v1, bearer tokens).

    This process alone writes the database (--db); clients read through it."""
    from dtf_core.service.serve import ServeOptions, serve

    tls = {k: kwargs.pop(k) for k in ("tls_ca_file", "tls_cert", "tls_key")}
    names = [flag[2:].replace("-", "_") for flag, *_ in _LIMITS]
    limits = {name: kwargs.pop(name) for name in names}
    opts = ServeOptions(**kwargs, **tls, limits=limits)
    opts.db = opts.db or default_db()
    serve(opts)


# ---------------------------------------------------------------------- submit
@click.command("submit")
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option(
    "--coordinator",
    "url",
    required=True,
    metavar="URL",
    help="The service, e.g. http://dtf.example.com:8780.",
)
@click.option("--token", default=None, help="Bearer token (default: $DTF_TOKEN; visible in ps).")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="File holding the bearer token (`dtf-core token issue --role submitter`).",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Directory to upload (default: the suite's directory).",
)
@click.option("--no-wait", is_flag=True, help="Print the run id and return once accepted.")
@client_tls_options
@priority_option
@click.option(
    "--follow-timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
    help="Once the run is accepted, keep reconnecting this long while no coordinator "
    "answers, e.g. during a restart (dtf.service.follow-timeout: 600).",
)  # fmt: skip
@output_options
# Refused with a pointer to `serve --db` (service.submit): the service owns the database.
@click.option("--db", hidden=True, default=None)
@handle_errors
def submit_cmd(suite: str, url: str, token: str | None, token_file: str | None,
               root: str | None, no_wait: bool, **kwargs: Any) -> None:  # fmt: skip
    """Upload SUITE to a `dtf-core serve`, follow it, write the same reports as `run`."""
    from dtf_core.service.submit import submit

    if token_file:
        from dtf_core.cluster.security import read_token_file

        token = read_token_file(token_file)  # owner-only, like every credential file
    status = submit(suite, url, token, root=root, no_wait=no_wait, **kwargs)
    sys.exit(exit_code(status))


# ------------------------------------------------------------------------- tls
@click.group("tls")
def tls_group() -> None:
    """Certificates for mutual TLS between scheduler, workers and clients."""


@tls_group.command("certs")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Host name or IP the certificate is valid for (repeat); localhost is included.",
)
@click.option(
    "--days", type=int, default=365, show_default=True, help="How long the certificates are valid."
)
@handle_errors
def tls_certs(out_dir: str, hosts: tuple[str, ...], days: int) -> None:
    """Write a CA and one certificate + key (server and client use) into OUT_DIR."""
    from dtf_core.cluster.tls import make_certs

    for p in make_certs(out_dir, list(hosts), days):
        click.echo(str(p))
