"""The console on a real embedded cluster: workers appear as they join, and
`dtf-tui run` shows a run's failures as they happen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.tui_seed import async_test, screen_text, wait_until

from dtf_core.cluster import embedded as cluster
from dtf_tui.app import DtfApp
from dtf_tui.sources.live import LiveSource
from dtf_tui.widgets.vtable import VirtualTable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@async_test
async def test_a_worker_appears_when_it_joins_and_shows_gone_when_it_leaves() -> None:
    plans = cluster.plan_workers(1, 1, [{"GPU": 1}])
    with cluster.open_cluster(plans=plans) as handle:
        assert handle.cluster is not None
        source = LiveSource(client=handle.client)
        app = DtfApp(source, poll_interval=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("2")
            table = app.screen.query_one("#workers", VirtualTable)
            await wait_until(pilot, lambda: len(table.items) == 1, timeout=20)
            assert "GPU=1" in table.items[0].resources_text
            joiner = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker",
                 handle.cluster.scheduler_address, "--name", "joiner", "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--resources", "FPGA=1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                await wait_until(
                    pilot, lambda: any(w.name == "joiner" for w in table.items), timeout=30
                )
                joined = next(w for w in table.items if w.name == "joiner")
                assert joined.status == "running" and joined.resources == {"FPGA": 1}
                assert "joiner" in screen_text(app) and "FPGA=1" in screen_text(app)
                await wait_until(pilot, lambda: len(table.items[-1].cpu) >= 2, timeout=10)
            finally:
                joiner.terminate()
                joiner.wait(timeout=20)
            await wait_until(
                pilot,
                lambda: next(w for w in table.items if w.name == "joiner").status == "gone",
                timeout=30,
            )


@async_test
async def test_an_embedded_run_shows_its_failed_task_and_category(
    tmp_path: Path, make_spec, make_suite
) -> None:
    tasks = [make_spec(f"ok{i}", root=tmp_path, timeout=30.0, command=["true"]) for i in range(3)]
    tasks.append(make_spec("bad", root=tmp_path, timeout=30.0, command=["false"]))
    suite = make_suite(tasks, "live")
    source = LiveSource(
        suite=suite,
        plans=cluster.plan_workers(1, 1, []),
        db_path=str(tmp_path / "live.duckdb"),
    )
    app = DtfApp(source, poll_interval=0.2)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("3")
            table = app.screen.query_one("#tasks", VirtualTable)
            await wait_until(pilot, lambda: source.finished, timeout=60)
            await wait_until(pilot, lambda: any(t.status == "failed" for t in table.items))
            bad = next(t for t in table.items if t.task_id == "bad")
            assert (bad.status, bad.category) == ("failed", "test-failure")
            assert "test-failure" in screen_text(app)
            await pilot.press("1")
            await wait_until(pilot, lambda: "4/4" in screen_text(app))
    finally:
        source.close()
    assert source.result is not None and source.result.status == "failed"
