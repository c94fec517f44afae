"""``dtf-core badge``: a README badge from the database (docs/ci.md)."""

from __future__ import annotations

import click

from dtf_core.cli.common import db_option, default_db, emit, format_option, handle_errors

KINDS = ("status", "passrate", "perf")


@click.command("badge")
@db_option
@click.option(
    "--suite",
    default=None,
    metavar="NAME",
    help="Only runs of suite NAME (`dtf-core runs` shows the names; default: any suite).",
)
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="status",
    show_default=True,
    help="status: the latest run's status; passrate: its tests passed; "
    "perf: open benchmark regressions in the history.",
)
@format_option("json", "svg")
@handle_errors
def badge_cmd(
    db: str | None, suite: str | None, kind: str, fmt: str, output: str | None
) -> None:  # fmt: skip
    """Write a badge: a shields.io endpoint JSON (serve it, or commit it, and point
    https://img.shields.io/endpoint?url=... at it) or a self-contained SVG."""
    from dtf_core.reporting.badge import make_badge, render_badge
    from dtf_core.store import StoreReader

    with StoreReader(db or default_db()) as store:
        badge = make_badge(store, kind, suite)
    emit(render_badge(badge, fmt), output)


def register(group: click.Group) -> None:
    group.add_command(badge_cmd)
