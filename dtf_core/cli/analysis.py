"""Analysis commands of ``dtf-core``: compare, regressions, trends, stats, best, import.

Each command opens the database read-only (import: read-write), delegates to
``dtf_core.analysis`` and prints Markdown tables or, with ``--format json``, one
JSON document (``-o FILE`` writes either to a file). Exit codes as everywhere
(:func:`dtf_core.errors.exit_code`); ``--fail-on-regression`` (compare,
regressions, trends) exits 1 when a benchmark regressed within the filters
(``--benchmark``, ``--since``, ``--branch``), naming it and the commits to blame.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from dtf_core.cli.common import (
    baseline_option,
    benchmark_option,
    branch_option,
    db_option,
    default_db,
    emit,
    format_option,
    handle_errors,
    lock_timeout_option,
    pick_run,
    run_option,
    runs_option,
    since_option,
)
from dtf_core.cli.deprecation import renamed
from dtf_core.errors import OptionError

if TYPE_CHECKING:
    from dtf_core.analysis.baseline import BaselineSpec

# Analysis output: Markdown tables (the default) or one JSON document.
_formats = format_option("md", "json", json_alias=True)


def _emit(fmt: str, output: str | None, doc: dict[str, Any], markdown: Callable[[], str]) -> None:
    from dtf_core.reporting.jsonout import render_json

    emit(render_json(doc) if fmt == "json" else markdown(), output)


@click.command("compare")
@db_option
@baseline_option
@run_option
@branch_option
@benchmark_option
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
@_formats
@handle_errors
def compare_cmd(
    db: str | None,
    baseline: BaselineSpec | None,
    run_id: str | None,
    branch: str | None,
    benchmark: str | None,
    test: str,
    alpha: float,
    min_effect: float,
    fail_on_regression: bool,
    fmt: str,
    output: str | None,
) -> None:
    """Compare RUN (default: the latest, or the latest on --branch) with its
    baseline: regressed / improved / unchanged per benchmark. The baseline
    follows branches (--baseline); which one and why goes to stderr."""
    from dtf_core.analysis import baseline as baselines
    from dtf_core.analysis import compare
    from dtf_core.reporting import ci, render
    from dtf_core.store import StoreReader

    opts = compare.CompareOptions(test=test, alpha=alpha, min_effect=min_effect)  # type: ignore[arg-type]
    db_path = db or default_db()
    if run_id and branch:
        raise OptionError("give --run or --branch (its latest run), not both")
    with StoreReader(db_path) as store:
        run = run_id or pick_run(store, None, db_path, branch=branch)
        choice = baselines.select(store, run, baseline or baselines.AUTO)
        rows = compare.compare_runs(store, choice.run_id, run, opts) if choice.run_id else []
        commit = (store.get_run(run)["metadata"] or {}).get("commit")
    rows = compare.matching(rows, benchmark)
    if baseline is None or baseline.kind != "run":  # chosen by dtf: say which and why
        click.echo(render.baseline_line(choice.to_dict()), err=True)
    doc = {
        "baseline": choice.run_id,
        "baseline_choice": choice.to_dict(),
        "run": run,
        "options": vars(opts),
        "counts": compare.verdict_counts(rows),
        "comparisons": [c.to_dict() for c in rows],
    }
    _emit(fmt, output, doc, lambda: render.comparison_markdown(rows, choice.to_dict(), run, opts))
    if fail_on_regression:
        _gate(ci.comparison_gate([c.to_dict() for c in rows], choice.to_dict(), run, commit))


def _history_options(fn: Any) -> Any:
    return db_option(benchmark_option(since_option(branch_option(fn))))


@click.command("regressions")
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
    default=None,
    help=(
        "A fixed floor instead of the adaptive one: the smallest relative change of the "
        "median that counts (0.05 = 5 %). Default: 1.5x each series' own run-to-run noise, "
        "at least 1 %."
    ),
)
@click.option("--min-size", type=int, default=5, show_default=True, help="Runs a side, at least.")
@click.option("--all", "show_all", is_flag=True, help="Improvements too, not only regressions.")
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit 1 when a series' latest shift is a regression (names it and the commit range).",
)
@_formats
@handle_errors
def regressions_cmd(
    db: str | None,
    benchmark: str | None,
    since: str | None,
    branch: str | None,
    alpha: float,
    min_shift: float | None,
    min_size: int,
    show_all: bool,
    fail_on_regression: bool,
    fmt: str,
    output: str | None,
) -> None:
    """Level shifts over each benchmark's history: when, which run/commit, how much."""
    from dtf_core.analysis import changepoints, history
    from dtf_core.reporting import ci, render
    from dtf_core.store import StoreReader

    opts = changepoints.ChangePointOptions(alpha=alpha, min_size=min_size, min_shift=min_shift)
    with StoreReader(db or default_db()) as store:
        hist = history.load_history(
            store, benchmark=benchmark, since=history.since_seconds(since), branch=branch
        )
    changes = changepoints.find_changes(hist, opts)
    if not show_all:
        changes = [c for c in changes if c["kind"] == "regression"]
    doc = {
        "options": vars(opts),
        "series": len(hist.keys),
        "points": hist.n_points,
        "changes": changes,
    }
    _emit(fmt, output, doc, lambda: render.changes_markdown(changes, len(hist.keys), hist.n_points))
    if fail_on_regression:
        _gate(ci.regression_gate(changes))


@click.command("trends")
@_history_options
@click.option(
    "--horizon",
    default="7d",
    show_default=True,
    metavar="SPAN",
    help="How far ahead to forecast: 7d, 12h, 2w.",
)
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
@click.option("--all", "show_all", is_flag=True, help="Stable series too (Markdown only).")
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when a series is getting worse.")
@_formats
@handle_errors
def trends_cmd(
    db: str | None,
    benchmark: str | None,
    since: str | None,
    branch: str | None,
    horizon: str,
    alpha: float,
    min_effect: float,
    show_all: bool,
    fail_on_regression: bool,
    fmt: str,
    output: str | None,
) -> None:
    """Trends (slope, significance), anomalous runs and a short forecast per series."""
    from dtf_core.analysis import history, trends
    from dtf_core.reporting import ci, render
    from dtf_core.store import StoreReader

    opts = trends.TrendOptions(
        alpha=alpha,
        min_effect=min_effect,
        horizon_days=history.parse_span(horizon, "--horizon") / history.DAY,
    )
    with StoreReader(db or default_db()) as store:
        hist = history.load_history(
            store, benchmark=benchmark, since=history.since_seconds(since), branch=branch
        )
    rows = trends.find_trends(hist, opts)
    shown = rows if show_all else [r for r in rows if r["verdict"] in ("worsening", "improving")]
    doc = {"options": vars(opts), "series": len(rows), "trends": rows}
    _emit(fmt, output, doc, lambda: render.trends_markdown(rows, shown))
    if fail_on_regression:
        _gate(ci.trend_gate(rows))


def _gate(verdict: tuple[int, list[str]]) -> None:
    """The CI gate: one line per regression on stderr, exit 1 when there is one."""
    code, lines = verdict
    for line in lines:
        click.echo(line, err=True)
    if code:
        sys.exit(code)


@click.command("stats")
@db_option
@runs_option
@benchmark_option
@click.option(
    "--by",
    default="benchmark,params,hardware",
    show_default=True,
    help="Group by: benchmark, params, hardware, run_id, suite, commit, branch, python, "
    "param:NAME (comma-separated).",
)
@_formats
@handle_errors
def stats_cmd(
    db: str | None,
    run_ids: tuple[str, ...],
    benchmark: str | None,
    by: str,
    fmt: str,
    output: str | None,
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
    groups = aggregate.records(df)
    _emit(fmt, output, {"by": dims, "groups": groups}, lambda: render.stats_markdown(groups, dims))


@click.command("best")
@db_option
@run_option
@click.option(
    "--alpha", type=float, default=0.05, show_default=True, help="False discovery rate (BH)."
)
@_formats
@handle_errors
def best_cmd(
    db: str | None, run_id: str | None, alpha: float, fmt: str, output: str | None
) -> None:
    """The best tuned setting (a benchmark's `tune` keys) per benchmark, input
    (its other params) and hardware in a run, and whether it is significantly best."""
    from dtf_core.analysis import best
    from dtf_core.reporting import render
    from dtf_core.store import StoreReader

    db_path = db or default_db()
    with StoreReader(db_path) as store:
        run = pick_run(store, run_id, db_path)
        samples = store.samples_of_runs([run])
        tuned = store.tuned_settings([run])
    rows = best.best_configurations(samples, tuned, alpha)
    untuned = best.untuned(samples, tuned)
    _emit(
        fmt,
        output,
        {"run": run, "best": rows, "untuned": untuned},
        lambda: render.best_markdown(rows, untuned, run),
    )


_INPUT_FORMATS = click.Choice(["csv", "parquet", "pytest-benchmark", "asv"])


@click.command("import")
@db_option
@lock_timeout_option
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--input-format",
    "fmt",
    type=_INPUT_FORMATS,
    default=None,
    help="What FILE holds (default: from its name and contents).",
)
@click.option("--suite", default="imported", show_default=True, help="Suite name of the runs.")
@renamed(
    "--format",
    "--input-format",
    "fmt",
    "import --format is deprecated (--format says what a command prints); use --input-format",
    type=_INPUT_FORMATS,
)
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
