"""What the ``dtf-core`` commands share: error handling and exit codes, the
cluster and output options, and running a suite with a progress view.

Exit codes: 0 everything passed, 1 something failed / timed out / was
unschedulable, 2 bad input (one line on stderr, nothing written), 3 dtf could
not do its job (database locked, scheduler unreachable), 130 cancelled.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dtf_core import config as dtf_config
from dtf_core.errors import BadInputError, DtfError, OptionError

if TYPE_CHECKING:
    from dtf_core.cluster.embedded import ClusterHandle, WorkerPlan
    from dtf_core.model import ClusterSpec, Suite
    from dtf_core.run.coordinator import RunResult
    from dtf_core.store import Store

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_OPERATIONAL, EXIT_CANCELLED = 0, 1, 2, 3, 130


def fail(message: str, code: int) -> None:
    click.echo(f"dtf-core: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: F) -> F:
    """Turn dtf's errors into one line and an exit code: never a traceback for bad input."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BadInputError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except DtfError as exc:
            fail(str(exc), EXIT_OPERATIONAL)
        except KeyboardInterrupt:
            fail("interrupted", EXIT_CANCELLED)

    return wrapper  # type: ignore[return-value]


def default_db() -> str:
    return str(dtf_config.get("db"))


def cluster_options(fn: F) -> F:
    """--workers/--threads-per-worker/--resources (embedded) and --scheduler."""
    options = [
        click.option(
            "--workers", "-w", type=int, default=None,
            help="Embedded cluster: worker processes (default: the suite's [cluster], else 2).",
        ),
        click.option(
            "--threads-per-worker", "-t", type=int, default=None,
            help="Embedded cluster: threads per worker (default 1).",
        ),
        click.option(
            "--resources", "-r", multiple=True, metavar="NAME=N[,NAME=N]",
            help=(
                "Embedded cluster: extra resource tags. The i-th --resources tags worker i "
                "(so `-r GPU=1` tags one worker); prefix with `*:` to tag every worker. "
                "Adds to or overrides what was detected."
            ),
        ),
        click.option(
            "--scheduler", metavar="ADDRESS", default=None,
            help="Use an existing Dask scheduler (tcp://host:8786) instead of an embedded cluster.",
        ),
        click.option(
            "--unschedulable-timeout", type=float, default=None,
            help=(
                "Seconds a task waits for a worker with its resources before it ends as "
                "unschedulable (default: 0 embedded, 30 with --scheduler)."
            ),
        ),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def lock_timeout_option(fn: F) -> F:
    """--lock-timeout: how long a writer waits for another process to let go of --db."""
    return click.option(
        "--lock-timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
        help="Seconds to wait for another process holding --db (dtf.store.lock-timeout: 10).",
    )(fn)  # fmt: skip


def output_options(fn: F) -> F:
    """--db, --report, --junit, --json, --quiet."""
    options = [
        click.option(
            "--db", type=click.Path(dir_okay=False), default=None,
            help="DuckDB file (default: .dtf/dtf.duckdb; dask config dtf.db).",
        ),
        click.option(
            "--report", "report_md", type=click.Path(dir_okay=False), default=None,
            help="Write a Markdown report here.",
        ),
        click.option(
            "--junit", type=click.Path(dir_okay=False), default=None, help="Write JUnit XML here."
        ),
        click.option(
            "--json", "json_path", type=click.Path(dir_okay=False), default=None,
            help="Write a JSON summary here.",
        ),
        click.option(
            "--html", "html_path", type=click.Path(dir_okay=False), default=None,
            help="Write a self-contained HTML report (inline SVG charts) here.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="Only the final line."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


@dataclass
class RunOptions:
    workers: int | None = None
    threads_per_worker: int | None = None
    resources: tuple[str, ...] = ()
    scheduler: str | None = None
    unschedulable_timeout: float | None = None
    db: str | None = None
    lock_timeout: float | None = None
    report_md: str | None = None
    junit: str | None = None
    json_path: str | None = None
    html_path: str | None = None
    quiet: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> RunOptions:
        names = set(cls.__dataclass_fields__) - {"extra"}
        opts = cls(**{k: v for k, v in kwargs.items() if k in names})
        opts.extra = {k: v for k, v in kwargs.items() if k not in names}
        return opts


def parse_resource_options(
    values: tuple[str, ...],
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """``--resources`` values: the i-th tags worker i; ``*:`` prefix tags every worker."""
    from dtf_core.cluster.hardware import parse_resources

    per_worker: list[dict[str, float]] = []
    everyone: dict[str, float] = {}
    for value in values:
        if value.startswith("*:"):
            everyone.update(parse_resources(value[2:]))
        else:
            per_worker.append(parse_resources(value))
    return per_worker, everyone


def plan_cluster(opts: RunOptions, wanted: ClusterSpec | None) -> list[WorkerPlan] | None:
    """Worker plans for the embedded cluster (None with --scheduler); checks the
    options and the output paths before anything starts."""
    from dtf_core.cluster import embedded as cluster

    for target in (opts.report_md, opts.junit, opts.json_path, opts.html_path):
        if target and not os.path.isdir(os.path.dirname(os.path.abspath(target))):
            raise OptionError(f"cannot write {target}: its directory does not exist")
    per_worker, everyone = parse_resource_options(opts.resources)
    if opts.scheduler is not None:
        if opts.workers or opts.threads_per_worker or opts.resources:
            raise OptionError(
                "--workers, --threads-per-worker and --resources describe the embedded "
                "cluster; they cannot be used with --scheduler"
            )
        return None
    for name, value in (
        ("--workers", opts.workers),
        ("--threads-per-worker", opts.threads_per_worker),
    ):
        if value is not None and value < 1:
            raise OptionError(f"{name} must be at least 1, got {value}")
    n = opts.workers or (wanted.workers if wanted else None) or 2
    t = opts.threads_per_worker or (wanted.threads_per_worker if wanted else None) or 1
    tags = [dict(x) for x in (per_worker or (wanted.worker_resources if wanted else []))]
    if everyone:
        tags = [{**everyone, **tag} for tag in (tags + [{}] * max(0, n - len(tags)))]
    return cluster.plan_workers(n, t, tags)


Builder = Callable[["Store", "ClusterHandle"], tuple["Suite", dict[str, float]]]
Reporter = Callable[["Store", str], None]


def execute(
    opts: RunOptions,
    plans: list[WorkerPlan] | None,
    build: Builder | None,
    *,
    write_reports: Reporter | None = None,
    metadata_dir: str | None = None,
    resume_id: str | None = None,
) -> RunResult:
    """Open the store and the cluster, build the suite (it may read history and
    see the workers), run it with a progress view, and write the reports."""
    from dtf_core import context, reporting
    from dtf_core.cluster import embedded as cluster
    from dtf_core.run.coordinator import Coordinator
    from dtf_core.run.progress import ProgressView
    from dtf_core.store import Store

    db_path = opts.db or default_db()
    view = ProgressView(live=False if opts.quiet else None)
    with Store(db_path, lock_timeout=opts.lock_timeout) as store:
        if plans is not None and not opts.quiet:
            view.info(f"embedded cluster: {len(plans)} worker(s) on 127.0.0.1")
            for p in plans:
                view.info(f"  {p.describe()}")
        if resume_id:
            store.get_run(resume_id)  # a wrong id is bad input, before any cluster starts
        with cluster.open_cluster(opts.scheduler, plans=plans) as handle:
            suite, estimates = build(store, handle) if build else (None, {})
            coord = Coordinator(
                handle.client,
                store,
                embedded=handle.embedded,
                unschedulable_timeout=opts.unschedulable_timeout,
                listeners=[] if opts.quiet else [view],
                estimates=estimates,
            )
            with view:
                if suite is None:
                    assert resume_id is not None
                    result = coord.resume(resume_id)
                else:
                    meta = context.collect(metadata_dir or os.path.dirname(suite.path))
                    result = coord.run(suite, metadata=meta)
        if write_reports is not None:
            write_reports(store, result.run_id)
        else:
            reporting.write_reports(
                store,
                result.run_id,
                markdown=opts.report_md,
                junit=opts.junit,
                json_path=opts.json_path,
                html=opts.html_path,
            )
        written = [p for p in (opts.report_md, opts.junit, opts.json_path, opts.html_path) if p]
        if opts.quiet:
            click.echo(f"run {result.run_id} {result.status.upper()}")
        else:
            view.info(
                f"results in {db_path}" + (f"; reports: {', '.join(written)}" if written else "")
            )
    return result
