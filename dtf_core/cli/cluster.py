"""Cluster mode commands: ``scheduler``, ``worker``, ``serve``, ``submit``,
``token`` and ``tls`` (docs/cluster.md)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import click

from dtf_core.cli.common import db_option, default_db, handle_errors, output_options
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


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(scheduler_cmd)
    group.add_command(worker_cmd)
    group.add_command(serve_cmd)
    group.add_command(submit_cmd)
    group.add_command(token_group)
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
    help="Deployment secret: workers need a token signed with it.",
)
@_tls_options
@handle_errors
def scheduler_cmd(host: str, port: int, dashboard_address: str | None, secret_file: str,
                  **tls: Any) -> None:  # fmt: skip
    """A stock Dask scheduler with dtf's preload (workers need a token)."""
    from dtf_core import config
    from dtf_core.cluster import security

    security.read_secret(secret_file)  # a bad file is one line here, not a traceback there
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
    help="File holding a worker token (`dtf-core token issue --role worker`).",
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
    help="Key that signs every result (the same file as serve's).",
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
               name: str | None, result_key_file: str | None, nanny: bool, dry_run: bool,
               **tls: Any) -> None:  # fmt: skip
    """Detect this host's hardware, run `dask worker` with it, relaunch it when it exits."""
    from dtf_core.cluster import hardware, supervisor

    info = hardware.describe()
    res = {**supervisor.derive_resources(info), **hardware.parse_resources(resources)}
    threads = nthreads or int(info["logical_cores"])
    if threads < 1:
        raise OptionError(f"--nthreads must be at least 1, got {threads}")
    argv = supervisor.worker_argv(
        scheduler, name=name or socket.gethostname(), nthreads=threads, resources=res,
        token_file=os.path.abspath(token_file),
        result_key_file=os.path.abspath(result_key_file) if result_key_file else None,
        nanny=nanny, tls=_tls_argv(tls),
    )  # fmt: skip
    click.echo(f"dtf-core worker: {hardware.label(info)}", err=True)
    click.echo(
        "dtf-core worker: resources " + " ".join(f"{k}={v:g}" for k, v in sorted(res.items())),
        err=True,
    )
    if dry_run:
        click.echo(" ".join(argv))
        return
    sup = supervisor.Supervisor(argv)
    sup.install_signal_handlers()
    sys.exit(sup.run())


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
    help="Deployment secret that signs and checks tokens.",
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
@_tls_options
@handle_errors
def serve_cmd(**kwargs: Any) -> None:
    """Run the coordinator as an HTTP service (API under /v1, bearer tokens).

    This process alone writes the database (--db); clients read through it."""
    from dtf_core.service.serve import ServeOptions, serve

    tls = {k: kwargs.pop(k) for k in ("tls_ca_file", "tls_cert", "tls_key")}
    opts = ServeOptions(**kwargs, **tls)
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
@click.option(
    "--follow-timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
    help="Keep reconnecting this long while no coordinator answers, e.g. during a restart "
    "(dtf.service.follow-timeout: 600).",
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
        token = Path(token_file).read_text().strip()
    status = submit(suite, url, token, root=root, no_wait=no_wait, **kwargs)
    sys.exit(exit_code(status))


# ----------------------------------------------------------------------- token
@click.group("token")
def token_group() -> None:
    """Make the deployment secret and issue tokens."""


@token_group.command("secret")
@click.argument("file", type=click.Path(dir_okay=False))
@handle_errors
def token_secret(file: str) -> None:
    """Create FILE holding a new random secret (owner-only); never overwrites."""
    from dtf_core.cluster import security

    security.write_secret(file)
    click.echo(f"wrote a new secret to {file}", err=True)


@token_group.command("issue")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["viewer", "submitter", "admin", "worker"]),
    help="API role, or `worker` for a worker's token.",
)
@click.option("--subject", required=True, help="Who holds it (user, CI job, host).")
@click.option("--ttl", default="7d", show_default=True, help="Lifetime: 30m, 12h, 7d, 2w.")
@click.option(
    "--secret-file",
    required=True,
    type=click.Path(dir_okay=False),
    help="The deployment secret that signs the token (`dtf-core token secret`).",
)
@handle_errors
def token_issue(role: str, subject: str, ttl: str, secret_file: str) -> None:
    """Print a signed token on stdout."""
    from dtf_core.cluster import security

    secret = security.read_secret(secret_file)
    click.echo(
        security.issue_token(secret, role=role, subject=subject, ttl_s=security.parse_ttl(ttl))
    )


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
