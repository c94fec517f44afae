"""The console's data layer without a UI: live state from events, the HTTP
source against a stub server, error grouping and change points."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tui_seed import LATEST, NOW, SHIFT_AT, seed

from dtf_core.events import AttemptFailed, ClusterChanged, RunFinished, RunStarted, TaskFinished
from dtf_tui import errorstats, trend
from dtf_tui.snapshot import ErrorEvent, SeriesKey
from dtf_tui.sources import SourceError
from dtf_tui.sources.db import DbSource
from dtf_tui.sources.http import HttpSource
from dtf_tui.sources.livestate import LiveState


def test_live_state_follows_the_coordinators_events() -> None:
    clock = iter(range(1000, 2000)).__next__
    state = LiveState([("a", "command"), ("b", "command"), ("c", "pytest")], clock=lambda: clock())
    state.on_event(RunStarted("r1", "suite", 3))
    state.update_workers(
        [{"address": "tcp://x:1", "name": "w0", "resources": {"GPU": 1}, "cpu": 50.0,
          "memory": 1e9, "processing": ["dtf-r1-c-a1"]}]
    )  # fmt: skip
    snap = state.snapshot("live")
    status = {t.task_id: t.status for t in snap.tasks}
    assert status == {"a": "pending", "b": "pending", "c": "running"}
    assert snap.runs[0].in_flight and snap.runs[0].total == 3

    state.on_event(AttemptFailed("r1", "a", 1, "worker-lost", "died", "w0", retry_in=0.5))
    state.on_event(
        TaskFinished(
            "r1", "b", "failed", "test-failure", "exit 1", 0.3, "w0", False, 1, 3, eta_s=4.0
        )
    )
    state.on_event(TaskFinished("r1", "a", "passed", None, "", 0.2, "w0", True, 2, 3))
    state.on_event(ClusterChanged("r1", "scheduler-lost", "the scheduler went away"))
    snap = state.snapshot("live")
    rows = {t.task_id: t for t in snap.tasks}
    assert (rows["b"].status, rows["b"].category) == ("failed", "test-failure")
    assert rows["a"].flaky and rows["a"].status == "passed"
    assert [(e.category, e.severity) for e in snap.errors] == [
        ("worker-lost", "critical"), ("infrastructure", "critical"),
    ]  # fmt: skip
    assert snap.errors[0].hardware == "GPU=1"  # no label yet: the worker's resources
    assert snap.runs[0].done == 2 and snap.runs[0].failed == 1
    assert snap.note == "the scheduler went away"
    assert snap.throughput > 0

    state.update_workers([])  # the worker left
    assert state.snapshot("live").workers[0].status == "gone"
    state.on_event(RunFinished("r1", "failed", {"failed": 1}, 3.0))
    assert not state.snapshot("live").runs[0].in_flight


# ---- HTTP (stub of the interface dtf-core serve is expected to offer) -------------

TOKEN = "s3cret"
ROUTES = {
    "/api/v1/workers": {"workers": [
        {"address": "tcp://10.0.0.1:1", "name": "gpu-0", "resources": {"GPU": 1}, "nthreads": 4,
         "status": "running", "cpu": 12.5, "memory": 2.0e9, "memory_limit": 8.0e9,
         "processing": ["k1"]},
    ]},
    "/api/v1/runs": {"runs": [
        {"run_id": "r9", "suite": "nightly", "status": "running", "started_at": NOW - 60,
         "total": 10, "done": 4, "passed": 3, "failed": 1, "eta_s": 90.0, "extra": "ignored"},
    ]},
    "/api/v1/runs/r9/tasks": {"tasks": [
        {"run_id": "r9", "task_id": "t1", "status": "failed", "category": "timeout"},
    ]},
    "/api/v1/runs/r9/tasks/t1/attempts": {"attempts": [
        {"attempt": 1, "outcome": "timed_out", "category": "timeout", "stderr_tail": "killed"},
    ]},
    "/api/v1/errors": {"errors": [
        {"run_id": "r9", "task_id": "t1", "attempt": 1, "ts": NOW - 5, "category": "timeout",
         "severity": "error", "message": "timed out", "worker": "gpu-0"},
    ]},
    "/api/v1/benchmarks": {"series": [{"benchmark": "sort", "hardware": "h100"}]},
    "/api/v1/benchmarks/history": {"unit": "s", "run_ids": ["a", "b"], "times": [1, 2],
                                   "values": [0.1, 0.2]},
}  # fmt: skip


class _Stub(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.end_headers()
            return
        body = ROUTES.get(self.path.split("?")[0])
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body or {}).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_source_reads_the_service_interface(stub_url: str) -> None:
    source = HttpSource(stub_url, TOKEN, clock=lambda: NOW)
    snap = source.poll()
    assert [w.name for w in snap.workers] == ["gpu-0"]
    assert snap.workers[0].cpu == (12.5,) and snap.workers[0].running == 1
    assert snap.runs[0].eta_s == 90.0 and snap.focused_run is snap.runs[0]
    assert snap.tasks[0].category == "timeout"
    assert snap.errors[0].worker == "gpu-0"
    assert source.poll().workers[0].cpu == (12.5, 12.5)  # history grows per poll
    assert source.attempts("r9", "t1")[0].stderr_tail == "killed"
    key = source.series_keys()[0]
    assert key == SeriesKey("sort", "h100")
    assert source.series(key).values == (0.1, 0.2)


def test_http_source_says_why_it_cannot_answer(stub_url: str) -> None:
    with pytest.raises(SourceError, match="refused the token"):
        HttpSource(stub_url, "wrong").poll()
    with pytest.raises(SourceError, match="cannot reach"):
        HttpSource("http://127.0.0.1:9", TOKEN, timeout=1).poll()


# ---- history ----------------------------------------------------------------------


def test_db_source_reads_the_seeded_history(tmp_path: Path) -> None:
    source = DbSource(str(seed(tmp_path / "h.duckdb")), clock=lambda: NOW)
    snap = source.poll()
    assert snap.focused_run is not None and snap.focused_run.run_id == LATEST
    assert len(snap.tasks) == 11 and len(snap.workers) == 2
    assert len(source.series_keys()) == 2
    with pytest.raises(SourceError, match="no database"):
        DbSource(str(tmp_path / "missing.duckdb")).poll()


# ---- pure helpers -----------------------------------------------------------------


def test_normalise_groups_messages_that_differ_only_in_details() -> None:
    a = errorstats.normalise("worker tcp://10.0.0.7:4012 died after 31.5 s in /tmp/x/y.py")
    b = errorstats.normalise("worker tcp://10.0.0.9:5120 died after 12 s in /var/a/b.py")
    assert a == b == "worker <addr> died after <n> s in <path>"
    evs = [
        ErrorEvent(
            "r", "t", i, NOW - i, "worker-lost", "critical", f"lost w{i} after {i} s", f"w{i}"
        )
        for i in range(3)
    ] + [ErrorEvent("r", "u", 1, NOW - 7200, "timeout", "error", "timed out", "w0")]
    top = errorstats.patterns(evs)[0]
    assert (top.count, top.workers, top.severity) == (3, 3, "critical")
    assert len(errorstats.in_range(evs, NOW, "1h")) == 3
    assert errorstats.by_severity(evs) == {"critical": 3, "error": 1, "warning": 0}


def test_change_points_find_level_shifts_and_ignore_noise() -> None:
    rng = random.Random(3)
    shifted = [1.0 + rng.gauss(0, 0.01) for _ in range(SHIFT_AT)] + [
        1.5 + rng.gauss(0, 0.01) for _ in range(6)
    ]
    assert trend.change_points(shifted) == [SHIFT_AT]
    noisy = [1.0 + rng.gauss(0, 0.05) for _ in range(40)]
    assert trend.change_points(noisy) == []
    steps = [1.0] * 8 + [2.0] * 8 + [1.5] * 8
    assert trend.change_points([v + rng.gauss(0, 0.01) for v in steps]) == [8, 16]


def test_cli_modes_and_bad_input(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dtf_tui.cli import main

    runner = CliRunner()
    out = runner.invoke(main, ["--help"])
    assert out.exit_code == 0 and "--coordinator" in out.output and "run" in out.output
    out = runner.invoke(main, ["run", "--help"])
    assert out.exit_code == 0 and "--resources" in out.output
    out = runner.invoke(main, ["run", str(tmp_path / "missing.toml")])
    assert out.exit_code == 2 and "dtf-tui: error:" in out.output
    out = runner.invoke(main, ["--db", "x.duckdb", "--coordinator", "http://h"])
    assert out.exit_code == 2
