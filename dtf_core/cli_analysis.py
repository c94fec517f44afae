"""Analysis commands of ``dtf-core``: compare, regressions, trends, stats, best, import.

Each command opens the database read-only (import: read-write), delegates to
``dtf_core.analysis`` and prints a table or, with ``--json``, one JSON document.
Exit codes as everywhere (:mod:`dtf_core.cli_common`); ``compare
--fail-on-regression`` exits 1 when any benchmark regressed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .cli_common import EXIT_FAILED, default_db, handle_errors

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
    from .report import render_json

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
    from .analysis import compare, render
    from .store import Store

    opts = compare.CompareOptions(test=test, alpha=alpha, min_effect=min_effect)  # type: ignore[arg-type]
    with Store(db or default_db(), read_only=True) as store:
        rows = compare.compare_runs(store, baseline, run_id, opts)
    if as_json:
        _echo_json(
            {
                "baseline": baseline,
                "run": run_id,
                "options": vars(opts),
                "counts": render.verdict_counts(rows),
                "comparisons": [c.to_dict() for c in rows],
            }
        )
    else:
        click.echo(render.comparison_markdown(rows, baseline, run_id, opts))
    if fail_on_regression and any(c.verdict == compare.REGRESSED for c in rows):
        sys.exit(EXIT_FAILED)


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(compare_cmd)
