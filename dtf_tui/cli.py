"""The ``dtf-tui`` command line (the ``dtf-tui`` console script, ``python -m dtf_tui``).

    dtf-tui [--db FILE]                      browse history (read-only)
    dtf-tui --coordinator URL --token T      attach to `dtf-core serve` (--ca FILE for HTTPS)
    dtf-tui --web [--host H --port N] ...    the same console, served to browsers
    dtf-tui run SUITE [run options]          run SUITE with the console as its view

Errors and exit codes are ``dtf-core``'s (docs/cli.md), by the same code: bad
input is one line and exit 2, dtf failing is exit 3, ``run`` exits with its
run's code (0 passed, 1 failed, 130 cancelled).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from dtf_core import __version__
from dtf_core.cli.clusterplan import plan_cluster
from dtf_core.cli.common import (
    EXIT_OPERATIONAL,
    RunOptions,
    client_tls_options,
    cluster_options,
    db_option,
    default_db,
    fail,
    handle_errors,
)
from dtf_core.errors import DtfError, OptionError, exit_code

DEFAULT_WEB_PORT = 8790  # dtf_tui.web's, without importing textual-serve for --help


@click.group(
    "dtf-tui", invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="dtf-tui")
@db_option
@click.option(
    "--coordinator", metavar="URL", default=None, help="Attach to `dtf-core serve` at URL."
)
@click.option(
    "--token", envvar="DTF_TOKEN", default=None, help="Bearer token for --coordinator ($DTF_TOKEN)."
)
@client_tls_options
@click.option(
    "--interval", type=float, default=None, help="Seconds between polls (default per source)."
)
@click.option(
    "--web",
    is_flag=True,
    help="Serve the console to browsers (textual-serve) instead of this terminal; "
    "behind --coordinator's tokens, or a key printed at start.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="--web: the interface.")
@click.option(
    "--port", type=int, default=DEFAULT_WEB_PORT, show_default=True, help="--web: the port."
)
@click.option(
    "--bell",
    type=click.Choice(["critical", "error", "warning", "off"]),
    default="critical",
    show_default=True,
    help="Ring the terminal bell for new errors this severe or worse.",
)
@click.pass_context
@handle_errors
def main(
    ctx: click.Context,
    db: str | None,
    coordinator: str | None,
    token: str | None,
    ca_file: str | None,
    insecure: bool,
    interval: float | None,
    web: bool,
    host: str,
    port: int,
    bell: str,
) -> None:
    """dtf's terminal console: workers, tasks, errors and trends, live.

    Without a command it browses --db read-only, or attaches to --coordinator.
    """
    ctx.obj = {"interval": interval, "bell": bell}
    if ctx.invoked_subcommand is not None:
        if web:
            raise OptionError("--web serves the console of --db or --coordinator, not of a run")
        return
    if web:
        _serve_web(db, coordinator, token, host, port, interval, bell)
        return
    from dtf_tui.sources import SourceError
    from dtf_tui.sources.db import DbSource
    from dtf_tui.sources.http import HttpSource

    if coordinator and db:
        raise OptionError("--db and --coordinator are two different sources: pick one")
    try:
        source = (
            HttpSource(coordinator, token, ca_file=ca_file, insecure=insecure)
            if coordinator
            else DbSource(db or default_db())
        )
    except SourceError as exc:
        # A source wraps dtf's errors so that the app can show them and retry;
        # before the app starts, they are the user's input (a bad URL) or dtf's.
        if isinstance(exc.__cause__, DtfError):
            raise exc.__cause__ from None
        raise
    _run_app(source, interval, bell)


def _serve_web(
    db: str | None,
    coordinator: str | None,
    token: str | None,
    host: str,
    port: int,
    interval: float | None,
    bell: str,
) -> None:
    if coordinator and db:
        raise OptionError("--db and --coordinator are two different sources: pick one")
    try:
        from dtf_tui.web import serve_console
    except ImportError as exc:
        raise OptionError(
            f"dtf-tui --web needs textual-serve ({exc.name} is missing): pip install 'dtf[web]'"
        ) from None
    options = ["--bell", bell] + (["--interval", f"{interval:g}"] if interval else [])
    serve_console(host=host, port=port, coordinator=coordinator, token=token,
                  db=None if coordinator else (db or default_db()), options=options)  # fmt: skip


def _run_app(source: Any, interval: float | None, bell: str) -> None:
    from dtf_tui.app import DtfApp

    app = DtfApp(source, poll_interval=interval, bell_severity=bell)
    app.muted = bell == "off"
    try:
        app.run()
    finally:
        source.close()


@main.command("run")
@click.argument("suite", type=click.Path(dir_okay=False))
@cluster_options
@db_option
@click.pass_context
@handle_errors
def run_cmd(ctx: click.Context, suite: str, **kwargs: Any) -> None:
    """Run SUITE (as `dtf-core run` does) with the console as its view.

    Quitting the console cancels a run still going.
    """
    from dtf_core import spec
    from dtf_tui.sources.live import LiveSource

    loaded = spec.load_suite(suite)
    opts = RunOptions.from_kwargs(kwargs)
    plans = plan_cluster(opts, loaded.cluster)
    # Worker processes are spawned while Textual owns stdio; multiprocessing's
    # resource tracker, started lazily, would then hand the child an invalid
    # stderr descriptor ("bad value(s) in fds_to_keep"). Start it now.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    source = LiveSource(
        suite=loaded,
        plans=plans,
        scheduler=opts.scheduler,
        db_path=opts.db or default_db(),
        unschedulable_timeout=opts.unschedulable_timeout,
        dashboard=opts.dashboard,
    )
    _run_app(source, ctx.obj["interval"], ctx.obj["bell"])
    if source.result is None:
        fail("the run did not finish", EXIT_OPERATIONAL)
        return
    status = source.result.status
    click.echo(f"run {source.result.run_id} {status.upper()}")
    sys.exit(exit_code(status))


__all__ = ["main"]
