"""Analysis commands of ``dtf-core``: compare, regressions, trends, stats, best, import.

Each command opens the database read-only (import: read-write), delegates to
``dtf_core.analysis`` and prints a table or, with ``--json``, one JSON document.
Exit codes as everywhere (:mod:`dtf_core.cli.common`); ``compare
--fail-on-regression`` exits 1 when any benchmark regressed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from dtf_core.cli.common import EXIT_FAILED, default_db, handle_errors, lock_timeout_option

F = TypeVar("F", bound=Callable[..., Any])


def _db_option(fn: F) -> F:
    return click.option(
        "--db",
        type=click.Path(dir_okay=False),
        default=None,
        help="DuckDB file (default: .dtf/dtf.duckdb).",
    )(fn)


def _json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(fn)


def _echo_json(obj: Any) -> None:
    from dtf_core.reporting.jsonout import render_json

    click.echo(render_json(obj), nl=False)


@click.command("compare")
@_db_option
@click.option("--baseline", required=True, metavar="RUN", help="Run id to compare against.")
@click.option("--run", "run_id", required=True, metavar="RUN", help="Run id under test.")
@click.option(
    "--test",
    type=click.Choice(["mannwhitney", "welch"]),
    default="mannwhitney",
    show_default=True,
    help="Two-sample test on the raw samples.",
)
@click.option(
    "--alpha", type=float, default=0.05, show_default=True, help="False discovery rate (BH)."
)
@click.option(
    "--min-effect",
    type=float,
    default=0.05,
    show_default=True,
    help="Smallest relative change that counts (0.05 = 5 %).",
)
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when any benchmark regressed.")
@_json_option
@handle_errors
def compare_cmd(
    db: str | None,
    baseline: str,
    run_id: str,
    test: str,
    alpha: float,
    min_effect: float,
    fail_on_regression: bool,
    as_json: bool,
) -> None:
    """Compare RUN with BASELINE: regressed / improved / unchanged per benchmark."""
    from dtf_core.analysis import compare
    from dtf_core.reporting import render
    from dtf_core.store import StoreReader

    opts = compare.CompareOptions(test=test, alpha=alpha, min_effect=min_effect)  # type: ignore[arg-type]
    with StoreReader(db or default_db()) as store:
        rows = compare.compare_runs(store, baseline, run_id, opts)
    if as_json:
        _echo_json(
            {
                "baseline": baseline,
                "run": run_id,
                "options": vars(opts),
                "counts": compare.verdict_counts(rows),
                "comparisons": [c.to_dict() for c in rows],
            }
        )
    else:
        click.echo(render.comparison_markdown(rows, baseline, run_id, opts))
    if fail_on_regression and any(c.verdict == compare.REGRESSED for c in rows):
        sys.exit(EXIT_FAILED)


def _history_options(fn: F) -> F:
    for opt in reversed(
        [
            click.option(
                "--benchmark",
                default=None,
                metavar="NAME",
                help="Only benchmarks with this name (a glob: 'matmul*').",
            ),
            click.option(
                "--since",
                default=None,
                metavar="SPAN",
                help="Only runs started within SPAN before now (30d, 12h, 2w).",
            ),
        ]
    ):
        fn = opt(fn)
    return fn


@click.command("regressions")
@_db_option
@_history_options
@click.option(
    "--alpha",
    type=float,
    default=0.001,
    show_default=True,
    help="Significance of each shift (the false-alarm rate per series).",
)
@click.option(
    "--min-shift",
    type=float,
    default=0.05,
    show_default=True,
    help="Smallest relative change of the median that counts (0.05 = 5 %).",
)
@click.option("--min-size", type=int, default=5, show_default=True, help="Runs a side, at least.")
@click.option("--all", "show_all", is_flag=True, help="Improvements too, not only regressions.")
@_json_option
@handle_errors
def regressions_cmd(
    db: str | None,
    benchmark: str | None,
    since: str | None,
    alpha: float,
    min_shift: float,
    min_size: int,
    show_all: bool,
    as_json: bool,
) -> None:
    """Level shifts over each benchmark's history: when, which run/commit, how much."""
    from dtf_core.analysis import changepoints, history
    from dtf_core.reporting import render
    from dtf_core.store import StoreReader

    opts = changepoints.ChangePointOptions(alpha=alpha, min_size=min_size, min_shift=min_shift)
    with StoreReader(db or default_db()) as store:
        hist = history.load_history(store, benchmark=benchmark, since=history.since_seconds(since))
    changes = changepoints.find_changes(hist, opts)
    if not show_all:
        changes = [c for c in changes if c["kind"] == "regression"]
    if as_json:
        _echo_json(
            {
                "options": vars(opts),
                "series": len(hist.keys),
                "points": hist.n_points,
                "changes": changes,
            }
        )
    else:
        click.echo(render.changes_markdown(changes, len(hist.keys), hist.n_points))


@click.command("trends")
@_db_option
@_history_options
@click.option("--horizon", default="7d", show_default=True, help="How far ahead to forecast.")
@click.option(
    "--alpha", type=float, default=0.05, show_default=True, help="False discovery rate (BH)."
)
@click.option(
    "--min-effect",
    type=float,
    default=0.05,
    show_default=True,
    help="Smallest move over the window that counts as a trend (0.05 = 5 %).",
)
@click.option("--all", "show_all", is_flag=True, help="Stable series too.")
@_json_option
@handle_errors
def trends_cmd(
    db: str | None,
    benchmark: str | None,
    since: str | None,
    horizon: str,
    alpha: float,
    min_effect: float,
    show_all: bool,
    as_json: bool,
) -> None:
    """Trends (slope, significance), anomalous runs and a short forecast per series."""
    from dtf_core.analysis import history, trends
    from dtf_core.reporting import render
    from dtf_core.store import StoreReader

    opts = trends.TrendOptions(
        alpha=alpha,
        min_effect=min_effect,
        horizon_days=history.parse_span(horizon, "--horizon") / history.DAY,
    )
    with StoreReader(db or default_db()) as store:
        hist = history.load_history(store, benchmark=benchmark, since=history.since_seconds(since))
    rows = trends.find_trends(hist, opts)
    if as_json:
        _echo_json({"options": vars(opts), "series": len(rows), "trends": rows})
        return
    shown = rows if show_all else [r for r in rows if r["verdict"] in ("worsening", "improving")]
    click.echo(render.trends_markdown(rows, shown))


@click.command("stats")
@_db_option
@click.option(
    "--run", "run_ids", multiple=True, metavar="RUN", help="Only these runs (repeatable)."
)
@click.option("--benchmark", default=None, metavar="NAME", help="Only these (a glob).")
@click.option(
    "--by",
    default="benchmark,params,hardware",
    show_default=True,
    help="Group by: benchmark, params, hardware, run_id, suite, commit, branch, python, "
    "param:NAME (comma-separated).",
)
@_json_option
@handle_errors
def stats_cmd(
    db: str | None, run_ids: tuple[str, ...], benchmark: str | None, by: str, as_json: bool
) -> None:
    """n, mean, median, stdev, MAD, p5/p95 and the median's 95 % CI per group."""
    from dtf_core.analysis import aggregate
    from dtf_core.reporting import render
    from dtf_core.store import StoreReader

    dims = aggregate.parse_by(by)
    with StoreReader(db or default_db()) as store:
        for r in run_ids:
            store.get_run(r)
        df = aggregate.aggregate(store, dims, run_ids=run_ids or None, benchmark=benchmark)
    if as_json:
        _echo_json({"by": dims, "groups": aggregate.records(df)})
    else:
        click.echo(render.stats_markdown(aggregate.records(df), dims))


@click.command("best")
@_db_option
@click.option("--run", "run_id", default=None, metavar="RUN", help="Default: the latest run.")
@click.option(
    "--alpha", type=float, default=0.05, show_default=True, help="False discovery rate (BH)."
)
@_json_option
@handle_errors
def best_cmd(db: str | None, run_id: str | None, alpha: float, as_json: bool) -> None:
    """The best parameter configuration per benchmark and hardware in a run."""
    from dtf_core.analysis import best
    from dtf_core.errors import RunNotFoundError
    from dtf_core.reporting import render
    from dtf_core.store import StoreReader

    db_path = db or default_db()
    with StoreReader(db_path) as store:
        run_id = run_id or store.latest_run_id()
        if run_id is None:
            raise RunNotFoundError(f"no runs in {db_path} yet")
        store.get_run(run_id)
        rows = best.best_configurations(store.samples_of_runs([run_id]), alpha)
    if as_json:
        _echo_json({"run": run_id, "best": rows})
    else:
        click.echo(render.best_markdown(rows, run_id))


@click.command("import")
@_db_option
@lock_timeout_option
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "pytest-benchmark", "asv"]),
    default=None,
    help="Default: from the file name and contents.",
)
@click.option("--suite", default="imported", show_default=True, help="Suite name of the runs.")
@handle_errors
def import_cmd(
    db: str | None, lock_timeout: float | None, file: str, fmt: str | None, suite: str
) -> None:
    """Import benchmark history from FILE: CSV/Parquet (see docs/analysis.md),
    pytest-benchmark JSON or an asv result file. All or nothing."""
    from dtf_core.analysis import importers
    from dtf_core.store import Store

    db_path = db or default_db()
    frame = importers.read_history(file, fmt)  # validated before the database is opened
    with Store(db_path, lock_timeout=lock_timeout) as store:
        runs, n = store.import_samples(frame, suite=suite, source=file)
    click.echo(f"imported {n:,} samples in {runs:,} runs from {file} into {db_path}")


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    for command in (
        compare_cmd,
        regressions_cmd,
        trends_cmd,
        stats_cmd,
        best_cmd,
        import_cmd,
    ):
        group.add_command(command)
