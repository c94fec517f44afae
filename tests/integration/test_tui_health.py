"""The console's Workers screen shows each worker's health and why, from a
real DuckDB file; a reason naming tasks such as ``matmul[dtype=f32,n=1024]``
shows as text (Textual would parse it as markup)."""

from __future__ import annotations

from pathlib import Path

from support.tui_seed import async_test, screen_text, wait_until

from dtf_core.store import Store
from dtf_tui.app import DtfApp
from dtf_tui.sources.db import DbSource

NOW = 1_767_225_600.0
REASON = "slow: 4.0x its peers; matmul[dtype=f32,n=1024] has run [bold]9.0[/] s, expected 2.00 s"


def _seed(path: Path) -> Path:
    with Store(path) as store:
        store.create_run("r1", "suite", "/s/s.toml", {}, NOW - 60)
        store.record_workers(
            "r1",
            [{"address": f"tcp://10.0.0.{i}:1", "name": f"w{i}", "host": f"10.0.0.{i}",
              "resources": {"CPU": 4}, "hardware": {}} for i in (1, 2)],
        )  # fmt: skip
        store.add_health(
            [
                {"run_id": "r1", "worker": "w1", "ts": NOW - 50, "state": "healthy",
                 "changed": True},
                {"run_id": "r1", "worker": "w2", "ts": NOW - 50, "state": "degraded",
                 "reason": REASON, "changed": True, "rel_speed": 4.0},
            ]
        )  # fmt: skip
        store.finish_run("r1", "passed", NOW - 10)
    return path


@async_test
async def test_workers_screen_shows_health_and_why(tmp_path: Path) -> None:
    source = DbSource(str(_seed(tmp_path / "h.duckdb")), clock=lambda: NOW)
    app = DtfApp(source, clock=lambda: NOW, log_path=tmp_path / "tui.log")
    async with app.run_test(size=(220, 30)) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)
        await pilot.press("2")
        await wait_until(pilot, lambda: "degraded" in screen_text(app))
        text = screen_text(app)
        assert "healthy" in text
        assert REASON in text  # in the table's "why" column and the summary line, as written
        assert "w2 degraded: slow: 4.0x" in text
        assert not app.problem
