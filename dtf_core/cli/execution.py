"""What ``run`` and ``test`` share once their input is checked: open the store and the
cluster (an embedded one starts first, in the background), build and run the suite with
a progress view, write the reports."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from dtf_core.cli.common import RunOptions, default_db

if TYPE_CHECKING:
    from dtf_core.cluster.embedded import ClusterHandle, Starting, WorkerPlan
    from dtf_core.model import Suite
    from dtf_core.run.coordinator import RunResult
    from dtf_core.store import Store

Builder = Callable[["Store", "ClusterHandle"], tuple["Suite", dict[str, float]]]
Reporter = Callable[["Store", str, "dict[str, Any] | None"], None]


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
    from dtf_core.cluster import embedded as cluster

    # An embedded cluster starts first, in the background: its workers' start is most
    # of a short run's wait, and the imports below and the database fit in it. Not for
    # --resume, whose run id is checked before anything starts.
    starting = None
    if plans is not None and opts.scheduler is None and resume_id is None:
        starting = cluster.Starting(plans, opts.dashboard)
    try:
        return _execute(opts, plans, build, write_reports, metadata_dir, resume_id, starting)
    finally:
        if starting is not None:
            starting.close()  # only when the run never took it over (the store failed)


def _execute(
    opts: RunOptions,
    plans: list[WorkerPlan] | None,
    build: Builder | None,
    write_reports: Reporter | None,
    metadata_dir: str | None,
    resume_id: str | None,
    starting: Starting | None,
) -> RunResult:
    from dtf_core import context, reporting
    from dtf_core.cluster import embedded as cluster
    from dtf_core.reporting.ci import emit_github
    from dtf_core.reporting.terminal import short_summary
    from dtf_core.reporting.write import wants_summary
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
        with cluster.open_cluster(
            opts.scheduler, plans=plans, dashboard=opts.dashboard, starting=starting
        ) as handle:
            if opts.dashboard is not None and not opts.quiet:
                view.info(f"Dask dashboard: {handle.dashboard or 'could not be started'}")
                for note in filter(None, [cluster.dashboard_needs_bokeh()]):
                    view.info(note)
            suite, estimates = build(store, handle) if build else (None, {})
            coord = Coordinator(
                handle.client,
                store,
                embedded=handle.embedded,
                unschedulable_timeout=opts.unschedulable_timeout,
                listeners=[] if opts.quiet else [view],
                estimates=estimates,
                max_failures=opts.max_failures,
                priority=opts.priority or 0,
                speculation={"on": True, "off": False}.get(opts.speculation or ""),
            )
            with view:
                if suite is None:
                    assert resume_id is not None
                    result = coord.resume(resume_id)
                else:
                    meta = context.collect(metadata_dir or os.path.dirname(suite.path))
                    if handle.dashboard:  # the reports name it
                        meta["dashboard"] = handle.dashboard
                    result = coord.run(suite, metadata=meta)
        # One summary for the reports and the end of the run on the terminal;
        # none when nothing shows it (a quiet run without reports).
        shown = not opts.quiet or wants_summary(*opts.files())
        summary = reporting.build_summary(store, result.run_id, opts.baseline) if shown else None
        if write_reports is not None:
            write_reports(store, result.run_id, summary)
        else:
            reporting.write_reports(
                store,
                result.run_id,
                markdown=opts.markdown,
                junit=opts.junit,
                json_path=opts.json_path,
                html=opts.html_path,
                pr_comment=opts.pr_comment,
                metrics=opts.metrics_report,
                summary=summary,
            )
        if summary is not None and not opts.quiet:
            view.info(short_summary(summary, tb=opts.tb or "short"))
        if summary is not None:
            emit_github(summary)  # annotations and step outputs, on GitHub Actions only
        written = [p for p in opts.files() if p]
        if opts.quiet:
            click.echo(f"run {result.run_id} {result.status.upper()}")
        else:
            view.info(
                f"results in {db_path}" + (f"; reports: {', '.join(written)}" if written else "")
            )
    return result
