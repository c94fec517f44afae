"""The ``dtf-tui`` command line.

    dtf-tui [--db PATH]                      browse history (read-only)
    dtf-tui --coordinator URL --token T      attach to `dtf-core serve`
    dtf-tui run SUITE [run options]          run SUITE with the console as its view

Exit codes follow ``dtf-core``: ``run`` exits with its run's code (0 passed,
1 failed, 130 cancelled), 2 for bad input, 3 when dtf could not work.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from dtf_core.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_OPERATIONAL,
    RunOptions,
    cluster_options,
    default_db,
    plan_cluster,
)
from dtf_core.errors import BadInputError, DtfError


def _fail(message: str, code: int) -> None:
    click.echo(f"dtf-tui: error: {message}", err=True)
    sys.exit(code)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    default=None,
    help="DuckDB file to browse, read-only (default: .dtf/dtf.duckdb).",
)
@click.option(
    "--coordinator", metavar="URL", default=None, help="Attach to `dtf-core serve` at URL."
)
@click.option(
    "--token", envvar="DTF_TOKEN", default=None, help="Bearer token for --coordinator ($DTF_TOKEN)."
)
@click.option(
    "--interval", type=float, default=None, help="Seconds between polls (default per source)."
)
@click.option(
    "--bell",
    type=click.Choice(["critical", "error", "warning", "off"]),
    default="critical",
    show_default=True,
    help="Ring the terminal bell for new errors this severe or worse.",
)
@click.pass_context
def main(
    ctx: click.Context,
    db: str | None,
    coordinator: str | None,
    token: str | None,
    interval: float | None,
    bell: str,
) -> None:
    """dtf's terminal console: workers, tasks, errors and trends, live."""
    ctx.obj = {"interval": interval, "bell": bell}
    if ctx.invoked_subcommand is not None:
        return
    from dtf_tui.sources.db import DbSource
    from dtf_tui.sources.http import HttpSource

    if coordinator and db:
        _fail("--db and --coordinator are two different sources: pick one", EXIT_BAD_INPUT)
    source = HttpSource(coordinator, token) if coordinator else DbSource(db or default_db())
    _run_app(source, interval, bell)


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
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    default=None,
    help="DuckDB file (default: .dtf/dtf.duckdb; dask config dtf.db).",
)
@click.pass_context
def run_cmd(ctx: click.Context, suite: str, db: str | None, **kwargs: Any) -> None:
    """Run SUITE (as `dtf-core run` does) with the console as its view.

    Quitting the console cancels a run still going.
    """
    from dtf_core import spec
    from dtf_tui.sources.live import LiveSource

    try:
        loaded = spec.load_suite(suite)
        opts = RunOptions.from_kwargs({**kwargs, "db": db})
        plans = plan_cluster(opts, loaded.cluster)
    except BadInputError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
        return
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
    )
    _run_app(source, ctx.obj["interval"], ctx.obj["bell"])
    if source.result is None:
        _fail("the run did not finish", EXIT_OPERATIONAL)
        return
    status = source.result.status
    click.echo(f"run {source.result.run_id} {status.upper()}")
    sys.exit({"passed": EXIT_OK, "cancelled": EXIT_CANCELLED}.get(status, EXIT_FAILED))


__all__ = ["DtfError", "main"]
