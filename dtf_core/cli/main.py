"""The ``dtf-core`` command line (exit codes: see :mod:`dtf_core.cli.common`).

Commands of other capabilities live in ``cli_*`` modules and register here.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from dtf_core import __version__
from dtf_core.cli.common import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    RunOptions,
    cluster_options,
    default_db,
    execute,
    handle_errors,
    lock_timeout_option,
    output_options,
    plan_cluster,
)
from dtf_core.errors import OptionError

__all__ = ["default_db", "handle_errors", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dtf-core")
def main() -> None:
    """dtf: run test and benchmark suites on a Dask cluster, keep results in DuckDB.

    Start with `dtf-core run configs/examples/quickstart.toml`.
    """


def exit_for(status: str) -> None:
    if status == "cancelled":
        sys.exit(EXIT_CANCELLED)
    sys.exit(EXIT_OK if status == "passed" else EXIT_FAILED)


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False), required=False)
@cluster_options
@output_options
@lock_timeout_option
@click.option(
    "--resume",
    "resume_id",
    metavar="RUN_ID",
    default=None,
    help="Finish a run whose coordinator died (kill -9, lost machine): tasks already "
    "stored keep their results, the others run again. No SUITE needed.",
)
@handle_errors
def run(suite: str | None, resume_id: str | None, **kwargs: Any) -> None:
    """Run SUITE (a TOML suite file) and store every result in DuckDB."""
    from dtf_core import spec

    opts = RunOptions.from_kwargs(kwargs)
    if resume_id:
        if suite:
            raise OptionError("give either SUITE or --resume RUN_ID, not both")
        plans = plan_cluster(opts, None)
        result = execute(opts, plans, None, resume_id=resume_id)
        exit_for(result.status)
    if not suite:
        raise OptionError("missing SUITE (a suite file such as configs/examples/quickstart.toml)")
    # Everything that can be wrong with the input is checked before anything is
    # started or written.
    loaded = spec.load_suite(suite)
    plans = plan_cluster(opts, loaded.cluster)
    result = execute(opts, plans, lambda store, handle: (loaded, {}))
    exit_for(result.status)


@main.command("report")
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    default=None,
    help="DuckDB file (default: .dtf/dtf.duckdb).",
)
@click.option(
    "--run",
    "run_id",
    default=None,
    help="Run id (default: the latest run). `dtf-core runs` lists them.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "json", "junit", "html"]),
    default="md",
    show_default=True,
    help="html is one self-contained file with inline SVG charts.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write here instead of stdout.",
)
@handle_errors
def report_cmd(db: str | None, run_id: str | None, fmt: str, output: str | None) -> None:
    """Rebuild a run's report from the database."""
    from dtf_core import reporting
    from dtf_core.errors import RunNotFoundError
    from dtf_core.store import StoreReader

    db_path = db or default_db()
    with StoreReader(db_path) as store:
        run_id = run_id or store.latest_run_id()
        if run_id is None:
            raise RunNotFoundError(f"no runs in {db_path} yet; start one with `dtf-core run SUITE`")
        summary = reporting.build_summary(store, run_id)
    text = reporting.RENDERERS[fmt](summary)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        click.echo(text)


@main.command("runs")
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    default=None,
    help="DuckDB file (default: .dtf/dtf.duckdb).",
)
@click.option("--limit", type=int, default=20, show_default=True)
@handle_errors
def runs_cmd(db: str | None, limit: int) -> None:
    """List the latest runs in the database."""
    from dtf_core.store import StoreReader

    with StoreReader(db or default_db()) as store:
        rows = store.list_runs(limit=limit)
    if not rows:
        click.echo("no runs yet")
    for r in rows:
        click.echo(f"{r['run_id']}  {r['status']:<9}  {r['suite']}")


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@handle_errors
def validate(suite: str) -> None:
    """Check SUITE and list the tasks it expands to, without running anything."""
    from dtf_core import spec

    loaded = spec.load_suite(suite)
    click.echo(f"{loaded.path}: suite '{loaded.name}', {len(loaded.tasks)} task(s)")
    for t in loaded.tasks:
        need = ", ".join(f"{k}={v:g}" for k, v in sorted(t.requires.items()))
        click.echo(f"  {t.kind.value:<9} {t.task_id}" + (f"  requires {need}" if need else ""))


def _register_command_modules() -> None:
    # Each capability keeps its commands in its own module; imports inside the
    # commands keep `dtf-core --help` fast.
    from dtf_core.cli import analysis as cli_analysis
    from dtf_core.cli import cluster as cli_cluster
    from dtf_core.cli import testcmd as cli_pytest

    cli_analysis.register(main)
    cli_cluster.register(main)
    cli_pytest.register(main)


_register_command_modules()

if __name__ == "__main__":  # pragma: no cover
    main()
