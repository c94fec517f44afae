"""The ``dtf-core`` command line.

Exit codes: 0 everything passed, 1 something failed / timed out / was
unschedulable, 2 bad input (one line on stderr, nothing written), 3 dtf could
not do its job (database locked, scheduler unreachable), 130 cancelled.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from . import __version__
from . import config as dtf_config
from .errors import BadInputError, DtfError, OptionError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_OPERATIONAL, EXIT_CANCELLED = 0, 1, 2, 3, 130


def _fail(message: str, code: int) -> None:
    click.echo(f"dtf-core: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: F) -> F:
    """Turn dtf's errors into one line and an exit code: never a traceback for bad input."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BadInputError as exc:
            _fail(str(exc), EXIT_BAD_INPUT)
        except DtfError as exc:
            _fail(str(exc), EXIT_OPERATIONAL)
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_CANCELLED)

    return wrapper  # type: ignore[return-value]


def default_db() -> str:
    return str(dtf_config.get("db"))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dtf-core")
def main() -> None:
    """dtf: run test and benchmark suites on a Dask cluster, keep results in DuckDB.

    Start with `dtf-core run configs/examples/quickstart.toml`.
    """


def _parse_resource_options(
    values: tuple[str, ...],
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """``--resources`` values: the i-th tags worker i; ``*:`` prefix tags every worker."""
    from .hardware import parse_resources

    per_worker: list[dict[str, float]] = []
    everyone: dict[str, float] = {}
    for value in values:
        if value.startswith("*:"):
            everyone.update(parse_resources(value[2:]))
        else:
            per_worker.append(parse_resources(value))
    return per_worker, everyone


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@click.option(
    "--workers",
    "-w",
    type=int,
    default=None,
    help="Embedded cluster: worker processes (default: the suite's [cluster], else 2).",
)
@click.option(
    "--threads-per-worker",
    "-t",
    type=int,
    default=None,
    help="Embedded cluster: threads per worker (default 1).",
)
@click.option(
    "--resources",
    "-r",
    multiple=True,
    metavar="NAME=N[,NAME=N]",
    help=(
        "Embedded cluster: extra resource tags. The i-th --resources tags worker i "
        "(so `-r GPU=1` tags one worker); prefix with `*:` to tag every worker. "
        "Adds to or overrides what was detected."
    ),
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Use an existing Dask scheduler (tcp://host:8786) instead of an embedded cluster.",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    default=None,
    help="DuckDB file (default: .dtf/dtf.duckdb; dask config dtf.db).",
)
@click.option(
    "--report",
    "report_md",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a Markdown report here.",
)
@click.option(
    "--junit", type=click.Path(dir_okay=False), default=None, help="Write JUnit XML here."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a JSON summary here.",
)
@click.option(
    "--unschedulable-timeout",
    type=float,
    default=None,
    help=(
        "Seconds a task waits for a worker with its resources before it ends as "
        "unschedulable (default: 0 embedded, 30 with --scheduler)."
    ),
)
@click.option("--quiet", "-q", is_flag=True, help="Only the final line.")
@handle_errors
def run(
    suite: str,
    workers: int | None,
    threads_per_worker: int | None,
    resources: tuple[str, ...],
    scheduler: str | None,
    db: str | None,
    report_md: str | None,
    junit: str | None,
    json_path: str | None,
    unschedulable_timeout: float | None,
    quiet: bool,
) -> None:
    """Run SUITE (a TOML suite file) and store every result in DuckDB."""
    from . import cluster, context, report, spec
    from .coordinator import Coordinator
    from .progress import ProgressView
    from .store import Store

    # Everything that can be wrong with the input is checked before anything is
    # started or written.
    loaded = spec.load_suite(suite)
    per_worker, everyone = _parse_resource_options(resources)
    plans = None
    if scheduler is None:
        n = workers or loaded.cluster.workers or 2
        t = threads_per_worker or loaded.cluster.threads_per_worker or 1
        tags = [dict(x) for x in (per_worker or loaded.cluster.worker_resources)]
        if everyone:
            tags = [{**everyone, **tag} for tag in (tags + [{}] * max(0, n - len(tags)))]
        plans = cluster.plan_workers(n, t, tags)
    elif workers or threads_per_worker or resources:
        raise OptionError(
            "--workers, --threads-per-worker and --resources describe the embedded "
            "cluster; they cannot be used with --scheduler"
        )
    db_path = db or default_db()
    for target in (report_md, junit, json_path):
        if target and not os.path.isdir(os.path.dirname(os.path.abspath(target))):
            raise OptionError(f"cannot write {target}: its directory does not exist")

    view = ProgressView(live=False if quiet else None)
    with Store(db_path) as store:
        if scheduler is None and not quiet:
            view.info(f"embedded cluster: {len(plans or [])} worker(s) on 127.0.0.1")
            for p in plans or []:
                view.info(f"  {p.describe()}")
        with cluster.open_cluster(scheduler, plans=plans) as handle:
            coord = Coordinator(
                handle.client,
                store,
                embedded=handle.embedded,
                unschedulable_timeout=unschedulable_timeout,
                listeners=[] if quiet else [view],
            )
            with view:
                result = coord.run(loaded, metadata=context.collect(os.path.dirname(loaded.path)))
        report.write_reports(
            store, result.run_id, markdown=report_md, junit=junit, json_path=json_path
        )
        written = [p for p in (report_md, junit, json_path) if p]
        if quiet:
            click.echo(f"run {result.run_id} {result.status.upper()}")
        else:
            view.info(
                f"results in {db_path}" + (f"; reports: {', '.join(written)}" if written else "")
            )
    if result.status == "cancelled":
        sys.exit(EXIT_CANCELLED)
    sys.exit(EXIT_OK if result.status == "passed" else EXIT_FAILED)


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
    "--format", "fmt", type=click.Choice(["md", "json", "junit"]), default="md", show_default=True
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
    from . import report
    from .errors import RunNotFoundError
    from .store import Store

    db_path = db or default_db()
    with Store(db_path, read_only=True) as store:
        run_id = run_id or store.latest_run_id()
        if run_id is None:
            raise RunNotFoundError(f"no runs in {db_path} yet; start one with `dtf-core run SUITE`")
        summary = report.build_summary(store, run_id)
    render = {
        "md": report.render_markdown,
        "json": report.render_json,
        "junit": report.render_junit,
    }[fmt]
    text = render(summary)
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
    from .store import Store

    with Store(db or default_db(), read_only=True) as store:
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
    from . import spec

    loaded = spec.load_suite(suite)
    click.echo(f"{loaded.path}: suite '{loaded.name}', {len(loaded.tasks)} task(s)")
    for t in loaded.tasks:
        need = ", ".join(f"{k}={v:g}" for k, v in sorted(t.requires.items()))
        click.echo(f"  {t.kind.value:<9} {t.task_id}" + (f"  requires {need}" if need else ""))


def _register_command_modules() -> None:
    # Each capability keeps its commands in its own module; imports inside the
    # commands keep `dtf-core --help` fast.
    from . import cli_analysis, cli_cluster

    cli_analysis.register(main)
    cli_cluster.register(main)


_register_command_modules()

if __name__ == "__main__":  # pragma: no cover
    main()
