"""The ``dtf-core`` command line: the group, run/report/runs/validate; the
other command families live in sibling modules and register here. The grammar
they share (options, output, exit codes) is in :mod:`dtf_core.cli.common` and
docs/cli.md.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

import click

from dtf_core import __version__
from dtf_core.cli.clusterplan import plan_cluster
from dtf_core.cli.common import (
    RunOptions,
    baseline_option,
    check_writable,
    ci_file_options,
    cluster_options,
    db_option,
    default_db,
    emit,
    failure_options,
    format_option,
    handle_errors,
    lock_timeout_option,
    output_options,
    pick_run,
    priority_option,
    run_option,
    speculation_option,
)
from dtf_core.cli.deprecation import one_line_deprecations
from dtf_core.cli.execution import execute
from dtf_core.errors import OptionError, exit_code

if TYPE_CHECKING:
    from dtf_core.analysis.baseline import BaselineSpec

__all__ = ["console", "default_db", "handle_errors", "main"]


@click.group("dtf-core", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dtf-core")
def main() -> None:
    """dtf: run test and benchmark suites on a Dask cluster, keep results in DuckDB.

    Start with `dtf-core run configs/examples/quickstart.toml`.
    """


def console() -> None:
    """The ``dtf-core`` console script (and ``python -m dtf_core.cli``)."""
    one_line_deprecations("dtf-core")
    try:
        main()
    except SystemExit as exc:
        quick_exit(exc.code)


def quick_exit(code: str | int | None) -> None:
    """Exit once the command is done, without the interpreter's teardown.

    Everything a command opens is closed by then (the store, the cluster, files);
    what remains is freeing every module and object one by one, which with Dask,
    pandas and DuckDB loaded cost 0.1-0.3 s of CPU on the path a user waits for
    (docs/benchmarks.md). The exit handlers still run (logging, coverage); with a
    non-daemon thread still at work, or without CPython's handler list, the usual
    exit waits for it instead.
    """
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if run_exit_handlers is None or any(not t.daemon for t in others):
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # what sys.exit does with a message
        print(code, file=sys.stderr)
        status = 1
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False), required=False)
@cluster_options
@db_option
@output_options
@lock_timeout_option
@failure_options
@baseline_option
@priority_option
@speculation_option
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
        sys.exit(exit_code(result.status))
    if not suite:
        raise OptionError("missing SUITE (a suite file such as configs/examples/quickstart.toml)")
    # Everything that can be wrong with the input is checked before anything is
    # started or written.
    loaded = spec.load_suite(suite)
    plans = plan_cluster(opts, loaded.cluster)
    result = execute(opts, plans, lambda store, handle: (loaded, {}))
    sys.exit(exit_code(result.status))


@main.command("report")
@db_option
@run_option
@baseline_option
@format_option("md", "json", "junit", "html")
@ci_file_options
@handle_errors
def report_cmd(
    db: str | None,
    run_id: str | None,
    baseline: BaselineSpec | None,
    fmt: str,
    output: str | None,
    pr_comment: str | None,
    metrics_report: str | None,
) -> None:
    """Rebuild a run's report from the database (html: one file, inline SVG charts)."""
    from dtf_core import reporting
    from dtf_core.reporting.write import write_ci_files
    from dtf_core.store import StoreReader

    check_writable(pr_comment, metrics_report)
    db_path = db or default_db()
    with StoreReader(db_path) as store:
        summary = reporting.build_summary(store, pick_run(store, run_id, db_path), baseline)
    write_ci_files(summary, pr_comment=pr_comment, metrics=metrics_report)
    emit(reporting.RENDERERS[fmt](summary), output)


@main.command("runs")
@db_option
@click.option(
    "--limit", type=int, default=20, show_default=True, help="How many runs, newest first."
)
@format_option("text", "json")
@handle_errors
def runs_cmd(db: str | None, limit: int, fmt: str, output: str | None) -> None:
    """List the latest runs in the database."""
    from dtf_core.reporting.jsonout import render_json
    from dtf_core.store import StoreReader

    with StoreReader(db or default_db()) as store:
        rows = store.list_runs(limit=limit)
    if fmt == "json":
        emit(render_json({"runs": rows}), output)
        return
    lines = [f"{r['run_id']}  {r['status']:<9}  {r['suite']}" for r in rows]
    emit("\n".join(lines) or "no runs yet", output)


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
    from dtf_core.cli import badge as cli_badge
    from dtf_core.cli import cluster as cli_cluster
    from dtf_core.cli import deploy as cli_deploy
    from dtf_core.cli import plan as cli_plan
    from dtf_core.cli import testcmd as cli_pytest
    from dtf_core.cli import workers as cli_workers

    cli_analysis.register(main)
    cli_badge.register(main)
    cli_cluster.register(main)
    cli_deploy.register(main)
    cli_plan.register(main)
    cli_pytest.register(main)
    cli_workers.register(main)


_register_command_modules()

if __name__ == "__main__":  # pragma: no cover
    console()
