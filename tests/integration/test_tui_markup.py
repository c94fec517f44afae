"""The console never dies quietly: user strings show as text, and a loader that
raises says so in the banner and in a log file.

Names such as ``matmul[dtype=f32,n=1024]`` (what ``scripts/seed_history.py``
and pytest-benchmark write) were parsed as Textual markup: the Trends screen
stayed on "loading benchmark history ..." with the MarkupError lost in a
worker thread. Each test drives the real app through Pilot on a real DuckDB
file; the only fake is a source whose method raises, which nothing real can
be made to do on demand.
"""

from __future__ import annotations

import html
import random
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.tui_seed import async_test, screen_text, wait_until

from dtf_core.model import AttemptResult, TaskFinal, TaskKind, TaskSpec
from dtf_core.store import Store
from dtf_tui.app import DtfApp
from dtf_tui.screens.task_detail import TaskDetailScreen
from dtf_tui.screens.trends import TrendsScreen
from dtf_tui.snapshot import ClusterSnapshot, SeriesKey, WorkerInfo
from dtf_tui.sources.db import DbSource
from dtf_tui.widgets.trend_chart import TrendChart
from dtf_tui.widgets.vtable import VirtualTable

BASE = 1_767_225_600.0  # 2026-01-01 00:00 UTC
NOW = BASE + 40 * 86_400.0
RUNS, SHIFT_AT = 24, 12  # the change-point scan needs enough runs on each side
SIZE = (270, 50)  # wide enough that every column (messages, last error, why) shows whole

# Every kind of thing Textual's markup parser trips on or swallows.
MATMUL = "matmul[dtype=f32,n=1024]"
ODD = "odd[bold]x[/]y[link=x]z"
HW = "x86_64 [link=x]EPYC[/link] 8c"
UNIT = "ms[p50],[bold]"
TASK = "test_api[case=[bold]1,2]"
WORKER = "w[=],[b]"  # short: the worker columns are 10 cells wide
RESOURCE = "fpga[/]"
MESSAGE = "AssertionError: expected [bold]x[/] got [link=x]y"
RUN = "nightly[=],run"
SUITE = "suite[/]"
TAIL = "E   assert [red]left[/] == [link=x]right"


def _spec(task_id: str, kind: TaskKind, **kw: Any) -> TaskSpec:
    return TaskSpec(
        task_id=task_id, name=task_id, kind=kind, root="/s", timeout=60.0, retries=0, **kw
    )


def seed(path: Path) -> Path:
    with Store(path) as store:
        benches = [
            _spec(MATMUL, TaskKind.BENCHMARK, function="b:mm"),
            _spec(ODD, TaskKind.BENCHMARK, function="b:odd"),
        ]
        rng = random.Random(3)
        for i in range(RUNS):
            run_id, start = f"bench[{i}]", BASE + i * 86_400.0
            store.create_run(run_id, "bench[x]", "/s/b.toml", {}, start)
            store.add_tasks(run_id, benches)
            for spec in benches:
                level = 0.01 if i < SHIFT_AT else 0.02  # a level shift: a regression to mark
                store.add_attempt(
                    AttemptResult(
                        run_id, spec.task_id, 1, "passed", worker=WORKER, hardware=HW,
                        started_at=start, finished_at=start + 1, wall_s=1.0, unit=UNIT,
                        samples=[level * (1 + rng.gauss(0, 0.01)) for _ in range(8)],
                    )
                )  # fmt: skip
                store.finish_task(run_id, TaskFinal(spec.task_id, "passed", attempts=1))
            store.flush()
            store.finish_run(run_id, "passed", start + 60)
        start = NOW - 600
        store.create_run(RUN, SUITE, "/s/n.toml", {}, start)
        store.add_tasks(RUN, [_spec(TASK, TaskKind.COMMAND, command=["false"])])
        store.record_workers(
            RUN,
            [{"address": "tcp://10.0.0.7:1", "name": WORKER, "host": "10.0.0.7",
              "resources": {RESOURCE: 1}, "hardware": {"machine": "x86_64"}}],
        )  # fmt: skip
        store.add_attempt(
            AttemptResult(
                RUN, TASK, 1, "failed", worker=WORKER, started_at=start, finished_at=start + 2,
                wall_s=2.0, category="test-failure", message=MESSAGE, exit_code=1,
                stdout_tail=TAIL, stderr_tail=TAIL,
            )
        )  # fmt: skip
        store.finish_task(
            RUN,
            TaskFinal(TASK, "failed", category="test-failure", attempts=1, worker=WORKER,
                      message=MESSAGE, wall_s=2.0),
        )  # fmt: skip
        store.flush()
        store.finish_run(RUN, "failed", start + 60)
    return path


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed(tmp_path_factory.mktemp("markup") / "markup.duckdb")


def make_app(source: Any, log: Path) -> DtfApp:
    return DtfApp(source, clock=lambda: NOW, log_path=log)


def _svg_text(app: DtfApp) -> str:
    # The SVG spells spaces as &#160; and splits text at style changes: unescape,
    # and compare without spaces.
    return html.unescape(app.export_screenshot()).replace("\xa0", " ")


async def _trend_shown(pilot: Any, app: DtfApp, timeout: float = 8.0) -> TrendsScreen:
    await pilot.press("5")
    screen = app.screen
    assert isinstance(screen, TrendsScreen)
    await wait_until(pilot, lambda: screen.series is not None, timeout=timeout)
    return screen


@async_test
async def test_trends_draws_the_chart_of_a_benchmark_named_like_markup(
    db: Path, tmp_path: Path
) -> None:
    log = tmp_path / "tui.log"
    app = make_app(DbSource(str(db), clock=lambda: NOW), log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)
        screen = await _trend_shown(pilot, app)
        assert screen.series is not None and screen.series.key == SeriesKey(MATMUL, HW)
        chart = screen.query_one(TrendChart)
        assert chart.title == f"{MATMUL} @ {HW}" and len(chart.values) == RUNS
        assert chart.view.regressions == [SHIFT_AT]  # the chart marks the shift
        text = screen_text(app)
        assert MATMUL in text and HW in text  # the picker and the chart's title, literally
        assert f"change point at run #{SHIFT_AT} (bench[{SHIFT_AT}]" in text and UNIT in text
        assert "REGRESSION" in text
        assert MATMUL in _svg_text(app)

        from textual.widgets import Select

        screen.query_one("#benchmark", Select).value = ODD  # a name with [bold] ... [/]
        await wait_until(
            pilot, lambda: screen.series is not None and screen.series.key.benchmark == ODD
        )
        assert ODD in screen_text(app) and ODD in _svg_text(app)
        assert app.problem == "" and not log.exists()  # nothing failed, nothing logged


@async_test
async def test_every_screen_shows_the_names_literally(db: Path, tmp_path: Path) -> None:
    app = make_app(DbSource(str(db), clock=lambda: NOW), tmp_path / "tui.log")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)
        text = screen_text(app)  # Overview
        assert RUN in text and SUITE in text and f"{RESOURCE}=1" in text

        # A screen draws its table a frame or two after the key: wait for its rows.
        await pilot.press("2")
        await wait_until(pilot, lambda: WORKER in screen_text(app))
        text = screen_text(app)
        assert WORKER in text and f"{RESOURCE}=1" in text and MESSAGE in text

        await pilot.press("3")
        await wait_until(pilot, lambda: TASK in screen_text(app))
        text = screen_text(app)
        assert TASK in text and WORKER in text and MESSAGE in text and f"run {RUN}" in text
        await pilot.press("slash", "left_square_bracket")  # the filter echoes what was typed
        assert "filter '['" in screen_text(app)
        await pilot.press("escape", "escape")
        table = app.screen.query_one("#tasks", VirtualTable)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskDetailScreen))
        detail = app.screen
        assert isinstance(detail, TaskDetailScreen) and table.items[0].task_id == TASK
        await wait_until(pilot, lambda: bool(detail.attempts))
        text = screen_text(app)
        assert TASK in text and MESSAGE in text and TAIL in text and WORKER in text
        assert "loading the attempts" not in text
        await pilot.press("escape")

        await pilot.press("4")
        await wait_until(pilot, lambda: MESSAGE in screen_text(app))
        text = screen_text(app)
        assert WORKER in text and "expected [bold]x[/] got [link=x]y" in text

        await _trend_shown(pilot, app)
        assert MATMUL in screen_text(app)
        assert app.problem == ""


# ---- a loader that raises ------------------------------------------------------


class BrokenHistory:
    """The real DuckDB source, except that benchmark history raises while ``broken``."""

    def __init__(self, db: Path) -> None:
        self.db = DbSource(str(db), clock=lambda: NOW)
        self.label, self.poll_interval = self.db.label, 0.05
        self.broken = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    def series_keys(self) -> list[SeriesKey]:
        if self.broken:
            raise RuntimeError("history index [bold]corrupt[/] at [link=x]")
        return self.db.series_keys()


@async_test
async def test_a_loader_that_raises_shows_in_the_banner_and_the_log(
    db: Path, tmp_path: Path
) -> None:
    log = tmp_path / "logs" / "tui.log"
    source = BrokenHistory(db)
    app = make_app(source, log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)
        await pilot.press("5")
        await wait_until(pilot, lambda: "corrupt" in app.problem, timeout=8)
        text = screen_text(app)
        message = "RuntimeError: history index [bold]corrupt[/] at [link=x]"
        assert f"loading the benchmark history failed: {message}" in text  # the banner
        assert f"details in {log}" in text
        assert f"no history: {message}" in text  # and where the chart would be
        assert "loading benchmark history ..." not in text
        logged = log.read_text()
        assert "loading the benchmark history failed" in logged
        assert "Traceback (most recent call last)" in logged and "in series_keys" in logged

        # The console stays usable: every other screen switches and shows its data.
        for key, mode, name in [
            ("1", "overview", RUN),
            ("3", "tasks", TASK),
            ("2", "workers", WORKER),
        ]:
            await pilot.press(key)
            assert app.current_mode == mode and name in screen_text(app)
        assert "corrupt" in screen_text(app)  # the banner is on every screen

        source.broken = False  # the next load retries, and the banner goes
        await _trend_shown(pilot, app)
        assert "corrupt" not in app.problem and "corrupt" not in screen_text(app)
        assert MATMUL in screen_text(app)


@async_test
async def test_a_database_that_turns_unreadable_is_named_in_the_banner(
    db: Path, tmp_path: Path
) -> None:
    path = tmp_path / "history.duckdb"
    shutil.copy(db, path)
    good = path.read_bytes()
    log = tmp_path / "tui.log"
    source = DbSource(str(path), clock=lambda: NOW)
    source.poll_interval = 0.05
    app = make_app(source, log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)
        path.write_bytes(b"\x00garbage" * 4096)
        await wait_until(pilot, lambda: "not a valid DuckDB database" in app.problem)
        assert f"details in {log}" in screen_text(app)
        assert "CorruptDatabaseError" in log.read_text() and "Traceback" in log.read_text()
        await pilot.press("3")
        assert app.current_mode == "tasks" and TASK in screen_text(app)  # the last data stays
        path.write_bytes(good)
        await wait_until(pilot, lambda: app.problem == "", timeout=8)
        assert log.read_text().count("poll failed") == 1  # retried many times, logged once


class BadNumbers:
    """A source whose snapshot breaks one screen: a throughput that is not a number."""

    label, poll_interval = "bad [numbers]", 0.05

    def __init__(self) -> None:
        worker = WorkerInfo("tcp://a:1", "w0", resources={"GPU": 1})
        self.snap = ClusterSnapshot(
            source=self.label,
            taken_at=NOW,
            workers=(worker,),
            throughput="fast",  # type: ignore[arg-type]
        )

    def start(self) -> None: ...
    def close(self) -> None: ...

    def poll(self) -> ClusterSnapshot:
        return self.snap


@async_test
async def test_a_screen_that_cannot_show_the_data_leaves_the_others_usable(
    tmp_path: Path,
) -> None:
    log = tmp_path / "tui.log"
    source = BadNumbers()
    app = make_app(source, log)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "Overview" in app.problem)
        text = screen_text(app)
        assert "showing the Overview screen failed: ValueError" in text
        assert "bad [numbers]" in text  # the header's source label, literally
        assert "in _summary" in log.read_text()
        await pilot.press("2")
        assert app.current_mode == "workers" and "w0" in screen_text(app)
        source.snap = replace(source.snap, throughput=2.5)
        await pilot.press("1")
        await wait_until(pilot, lambda: app.problem == "")
        assert "throughput 2.5 tasks/s" in screen_text(app)
