"""The console driven through Pilot, on the seeded database and on fake sources."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from support.tui_seed import (
    EPYC,
    LATEST,
    NOW,
    SHIFT_AT,
    XEON,
    async_test,
    make_app,
    screen_text,
    seed,
    wait_until,
)

from dtf_tui.app import DtfApp
from dtf_tui.screens.errors import ErrorsScreen
from dtf_tui.screens.help import HelpScreen
from dtf_tui.screens.task_detail import TaskDetailScreen
from dtf_tui.screens.tasks import TasksScreen
from dtf_tui.screens.trends import TrendsScreen
from dtf_tui.snapshot import (
    AttemptInfo,
    ClusterSnapshot,
    ErrorEvent,
    SeriesKey,
    TaskRow,
    TrendSeries,
    WorkerInfo,
)
from dtf_tui.sources import SourceError
from dtf_tui.widgets.trend_chart import TrendChart
from dtf_tui.widgets.vtable import VirtualTable

SIZE = (120, 40)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed(tmp_path_factory.mktemp("tui") / "seeded.duckdb")


async def _loaded(pilot) -> None:  # type: ignore[no-untyped-def]
    await wait_until(pilot, lambda: pilot.app.snapshot is not None)


def _table(app: DtfApp, selector: str) -> VirtualTable:
    return app.screen.query_one(selector, VirtualTable)


@async_test
async def test_failed_task_shows_its_category_and_output(db: Path) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot)
        await pilot.press("3")
        assert isinstance(app.screen, TasksScreen)
        table = _table(app, "#tasks")
        failed = next(t for t in table.items if t.task_id == "test_db_migration")
        assert (failed.status, failed.category) == ("failed", "test-failure")
        text = screen_text(app)
        assert "test_db_migration" in text and "test-failure" in text
        assert f"run {LATEST}" in text

        table.cursor = list(table.items).index(failed)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskDetailScreen))
        detail = app.screen
        assert isinstance(detail, TaskDetailScreen)
        await wait_until(pilot, lambda: bool(detail.attempts))
        text = screen_text(app)
        assert "severity error" in text
        assert "E   AssertionError: expected 42 rows, got 41" in text  # the stderr tail
        await pilot.press("escape")
        assert isinstance(app.screen, TasksScreen)


@async_test
async def test_slash_filter_narrows_the_table_and_escape_clears_it(db: Path) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot)
        await pilot.press("3")
        table = _table(app, "#tasks")
        assert len(table.items) == 11
        await pilot.press("slash", "t", "i", "m", "e", "o", "u", "t")
        assert [t.task_id for t in table.items] == ["load_test"]
        assert "1 of 11 tasks · filter 'timeout'" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("escape")
        assert len(table.items) == 11


@async_test
async def test_sorting_by_status_puts_failures_first(db: Path) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot)
        await pilot.press("3")
        table = _table(app, "#tasks")
        table.sort_by("status")
        await pilot.pause()
        assert [t.status for t in table.items[:3]] == ["failed", "timed_out", "unschedulable"]
        await pilot.press("S")  # reverse
        assert table.items[0].status == "passed"


@async_test
async def test_workers_screen_lists_recorded_workers_with_resources(db: Path) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot)
        await pilot.press("2")
        table = _table(app, "#workers")
        assert [w.name for w in table.items] == ["dtf-0", "dtf-1"]
        text = screen_text(app)
        assert "CPU=8, GPU=1" in text and "recorded" in text


@async_test
async def test_overview_shows_the_run_in_flight_with_progress(db: Path) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot)
        runs = _table(app, "#runs")
        assert runs.items[0].run_id == LATEST  # in flight first
        text = screen_text(app)
        assert "1 in flight" in text and "10/11" in text and "pass rate 70.0%" in text
        assert "2 critical" in text


@async_test
async def test_errors_screen_groups_patterns_and_switches_range_and_grouping(db: Path) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot)
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, ErrorsScreen)
        patterns = _table(app, "#patterns").items
        top = patterns[0]
        assert (top.count, top.severity, top.category) == (2, "critical", "worker-lost")
        assert top.text == "worker died while running the task (<addr> after <n> s)"
        assert top.workers == 2
        assert {r[0] for r in _table(app, "#by-category").items} == {
            "worker-lost", "test-failure", "timeout", "unschedulable",
        }  # fmt: skip
        await pilot.press("r")  # 24h -> 7d
        assert screen.range_name == "7d"
        await pilot.press("r")  # 7d -> 1h
        assert screen.range_name == "1h"
        await pilot.press("g")
        places = {r[0] for r in _table(app, "#by-place").items}
        assert EPYC in places and any(XEON in p for p in places)


@async_test
async def test_trend_chart_marks_the_seeded_change_point_as_a_regression(db: Path) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot)
        await pilot.press("5")
        screen = app.screen
        assert isinstance(screen, TrendsScreen)
        chart = screen.query_one(TrendChart)
        await wait_until(pilot, lambda: screen.series is not None)
        assert screen.series is not None and screen.series.key.hardware == EPYC
        assert chart.change_points == [SHIFT_AT]
        assert chart.view.regressions == [SHIFT_AT]
        assert chart.view.forecast  # a band ahead of the last run
        text = screen_text(app)
        assert f"change point at run #{SHIFT_AT}" in text and "REGRESSION" in text

        from textual.widgets import Select

        screen.query_one("#hardware", Select).value = XEON
        await wait_until(
            pilot, lambda: screen.series is not None and screen.series.key.hardware == XEON
        )
        assert chart.change_points == []
        assert "no change point" in screen_text(app)


@async_test
async def test_help_theme_and_command_palette(db: Path) -> None:
    app = make_app(db)
    async with app.run_test(size=SIZE) as pilot:
        await _loaded(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "/` filter" in screen_text(app) or "filter" in screen_text(app)
        await pilot.press("escape")
        dark = app.theme
        await pilot.press("d")
        assert app.theme != dark
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands["Screen: Errors"].callback()  # type: ignore[call-arg]
        await pilot.pause()
        assert app.current_mode == "errors"
        commands["Mute bell"].callback()  # type: ignore[call-arg]
        assert app.muted


# ---- fake sources: the bell, the banner, reconnects ---------------------------------


class FakeSource:
    """A source whose next answers the test decides."""

    label = "fake"
    poll_interval = 0.02

    def __init__(self) -> None:
        self.snapshot = ClusterSnapshot(source="fake", taken_at=NOW)
        self.fail: str | None = None

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def poll(self) -> ClusterSnapshot:
        if self.fail:
            raise SourceError(self.fail)
        return self.snapshot

    def attempts(self, run_id: str, task_id: str) -> list[AttemptInfo]:
        return []

    def series_keys(self) -> list[SeriesKey]:
        return []

    def series(self, key: SeriesKey) -> TrendSeries:
        raise SourceError("none")


def _error(i: int, severity: str) -> ErrorEvent:
    return ErrorEvent("r", f"t{i}", 1, NOW, "worker-lost", severity, "boom", "w0")


@async_test
async def test_bell_rings_for_new_critical_errors_unless_muted() -> None:
    source = FakeSource()
    source.snapshot = replace(source.snapshot, errors=(_error(0, "critical"),))
    app = DtfApp(source, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.polls >= 2)
        assert app.bells == 0  # what was there at the start is history, not news
        source.snapshot = replace(
            source.snapshot, errors=(_error(0, "critical"), _error(1, "error"))
        )
        await wait_until(pilot, lambda: len(app.snapshot.errors) == 2)  # type: ignore[union-attr]
        assert app.bells == 0  # below the bell's severity
        source.snapshot = replace(
            source.snapshot, errors=(*source.snapshot.errors, _error(2, "critical"))
        )
        await wait_until(pilot, lambda: app.bells == 1)
        await pilot.press("m")
        source.snapshot = replace(
            source.snapshot, errors=(*source.snapshot.errors, _error(3, "critical"))
        )
        await wait_until(pilot, lambda: len(app.snapshot.errors) == 4)  # type: ignore[union-attr]
        assert app.bells == 1


@async_test
async def test_banner_says_the_source_died_and_goes_when_it_is_back() -> None:
    source = FakeSource()
    source.snapshot = replace(
        source.snapshot, workers=(WorkerInfo("tcp://a:1", "w0", resources={"GPU": 1}),)
    )
    app = DtfApp(source, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)
        source.fail = "cannot reach http://coordinator: connection refused"
        await wait_until(pilot, lambda: "connection refused" in app.problem)
        text = screen_text(app)
        assert "connection refused" in text and "retrying in" in text
        assert "GPU=1" in text  # the last data stays on screen
        source.fail = None
        await wait_until(pilot, lambda: app.problem == "", timeout=5)
        assert "connection refused" not in screen_text(app)


@async_test
async def test_tasks_table_keeps_up_with_20000_rows() -> None:
    source = FakeSource()
    tasks = tuple(TaskRow("r", f"task-{i:05d}", "benchmark", "passed") for i in range(20_000))
    source.snapshot = replace(source.snapshot, tasks=tasks)
    app = DtfApp(source, clock=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)
        await pilot.press("3")
        table = _table(app, "#tasks")
        assert len(table.items) == 20_000
        await pilot.press("end")
        assert "task-19999" in screen_text(app)
        await pilot.press("slash", "1", "2", "3", "4")
        assert {t.task_id for t in table.items} >= {"task-01234", "task-12340"}


def test_the_data_layer_loads_no_textual() -> None:
    # The sources and the snapshot model also serve the benchmark and, later,
    # other views: they must not need the UI stack.
    code = (
        "import sys\n"
        "import dtf_tui.snapshot, dtf_tui.errorstats, dtf_tui.trend\n"
        "import dtf_tui.sources.db, dtf_tui.sources.live, dtf_tui.sources.http\n"
        "bad = sorted(n for n in sys.modules if n == 'textual' or n.startswith('textual.'))\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr
