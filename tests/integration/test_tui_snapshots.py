"""How each screen looks on the seeded database (pytest-textual-snapshot).

The clock is stopped and the source label fixed, so nothing in these pictures
depends on the day they are taken. Update after a deliberate change with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at the diff.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.tui_seed import make_app, seed, wait_until

from dtf_tui.screens.task_detail import TaskDetailScreen
from dtf_tui.screens.trends import TrendsScreen
from dtf_tui.widgets.vtable import VirtualTable


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed(tmp_path_factory.mktemp("tui-snap") / "seeded.duckdb")


def _goto(*keys: str, then: Callable[[Any], Any] | None = None):  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await wait_until(pilot, lambda: pilot.app.snapshot is not None)
        await pilot.press(*keys)
        if then is not None:
            await then(pilot)
        await pilot.pause()

    return run_before


async def _trend_loaded(pilot) -> None:  # type: ignore[no-untyped-def]
    screen = pilot.app.screen
    assert isinstance(screen, TrendsScreen)
    await wait_until(pilot, lambda: screen.series is not None)


async def _open_failed_task(pilot) -> None:  # type: ignore[no-untyped-def]
    table = pilot.app.screen.query_one("#tasks", VirtualTable)
    table.cursor = [t.task_id for t in table.items].index("test_db_migration")
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, TaskDetailScreen))
    await wait_until(pilot, lambda: bool(pilot.app.screen.attempts))


def test_overview(snap_compare, db: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(db), terminal_size=(120, 40), run_before=_goto())


def test_overview_80x24_light(snap_compare, db: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(db), terminal_size=(80, 24), run_before=_goto("d"))


def test_workers(snap_compare, db: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(db), terminal_size=(120, 40), run_before=_goto("2"))


def test_tasks(snap_compare, db: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(db), terminal_size=(120, 40), run_before=_goto("3"))


def test_tasks_80x24_filtered(snap_compare, db: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(
        make_app(db), terminal_size=(80, 24), run_before=_goto("3", "slash", "f", "a", "i", "l")
    )


def test_task_detail(snap_compare, db: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(
        make_app(db), terminal_size=(120, 40), run_before=_goto("3", then=_open_failed_task)
    )


def test_errors(snap_compare, db: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(db), terminal_size=(120, 40), run_before=_goto("4"))


def test_trends(snap_compare, db: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(
        make_app(db), terminal_size=(120, 40), run_before=_goto("5", then=_trend_loaded)
    )


def test_help(snap_compare, db: Path) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(db), terminal_size=(120, 40), run_before=_goto("question_mark"))
