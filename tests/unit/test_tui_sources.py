"""The console's data layer without a UI: live state from events, the HTTP
source against a stub server, error grouping and change points."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.tui_seed import NOW, SHIFT_AT

from dtf_core.events import AttemptFailed, ClusterChanged, RunFinished, RunStarted, TaskFinished
from dtf_tui import errorstats, trend
from dtf_tui.snapshot import ErrorEvent
from dtf_tui.sources import SourceError
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


# ---- HTTP: a stub of an older dtf-core serve (no /v1/console, /benchmarks) -----------------

TOKEN = "s3cret"
ROUTES = {
    "/v1/workers": {"workers": [
        {"address": "tcp://10.0.0.1:1", "name": "gpu-0", "resources": {"GPU": 1}, "nthreads": 4,
         "host": "10.0.0.1"},
    ]},
    "/v1/runs": {"runs": [
        {"run_id": "r0", "suite": "nightly", "status": "queued", "done": 0, "total": 0},
        {"run_id": "r9", "suite": "nightly", "status": "running", "started_at": NOW - 60,
         "finished_at": None, "tasks": 10, "failed": 1},
        {"run_id": "r8", "suite": "nightly", "status": "passed", "started_at": NOW - 9000,
         "finished_at": NOW - 8000, "tasks": 4, "failed": 0},
    ]},
    "/v1/runs/r9": {"run_id": "r9", "status": "running", "done": 2, "total": 12},
    "/v1/runs/r9/tasks": {"tasks": [
        {"task_id": "t1", "kind": "command", "status": "timed_out", "category": "timeout",
         "attempts": 1, "wall_s": 30.0, "worker": "gpu-0", "flaky": False, "message": "killed"},
        {"task_id": "t2", "kind": "command", "status": "passed", "attempts": 1},
        {"task_id": "t3", "kind": "command", "status": "pending"},
    ]},
    "/v1/runs/r9/errors": {"errors": [
        {"run_id": "r9", "task_id": "t1", "attempt": 1, "ts": NOW - 5, "category": "timeout",
         "severity": "error", "message": "timed out", "worker": "gpu-0"},
    ]},
    "/v1/runs/r8/errors": {"errors": []},
    "/v1/changes": {"generation": 5, "epoch": "e1"},  # the counter, without the stream
    "/v1/runs/r9/attempts": {"attempts": [
        {"run_id": "r9", "task_id": "t1", "attempt": 1, "outcome": "timed_out",
         "category": "timeout", "message": "timed out", "worker": "gpu-0", "exit_code": None,
         "context": {"host": "node-7", "env": {"API_TOKEN": "***"}}},
    ]},
}  # fmt: skip


class _Stub(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"error": "token refused"}).encode())
            return
        path = self.path.split("?")[0]
        body = ROUTES.get(path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        # What an older dtf-core serve answers for a route it does not have.
        missing = {"error": f"no endpoint {path}; see docs/cluster.md", "status": 404}
        self.wfile.write(json.dumps(body or missing).encode())

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


def test_http_source_reads_the_service(stub_url: str) -> None:
    source = HttpSource(stub_url, TOKEN, clock=lambda: NOW)
    snap = source.poll()
    assert [w.name for w in snap.workers] == ["gpu-0"]
    assert snap.workers[0].resources == {"GPU": 1} and snap.workers[0].cpu == ()
    assert [r.run_id for r in snap.runs] == ["r9", "r8"]  # a queued run has not started
    run = snap.focused_run
    assert run is not None and run.run_id == "r9"
    assert (run.total, run.done, run.passed, run.failed) == (12, 2, 1, 1)
    assert {t.task_id: t.category for t in snap.tasks}["t1"] == "timeout"
    assert [(e.task_id, e.worker) for e in snap.errors] == [("t1", "gpu-0")]
    [attempt] = source.attempts("r9", "t1")
    assert (attempt.outcome, attempt.worker) == ("timed_out", "gpu-0")
    assert attempt.context == {"host": "node-7", "env": {"API_TOKEN": "***"}}
    with pytest.raises(SourceError, match="older and does not offer benchmark history"):
        source.series_keys()


def test_a_service_without_the_stream_is_followed_through_its_change_counter(
    stub_url: str,
) -> None:
    source = HttpSource(stub_url, TOKEN, clock=lambda: NOW)
    woken = threading.Event()
    source.subscribe(woken.set)
    source.start()
    try:
        assert woken.wait(10), "no wake-up from /v1/changes"
        assert source.following and not source._streaming
        assert source.poll().focused_run is not None  # polls ask, as before the stream
    finally:
        source.close()


def test_http_source_says_why_it_cannot_answer(stub_url: str) -> None:
    with pytest.raises(SourceError):
        HttpSource(stub_url, "wrong").poll()
    with pytest.raises(SourceError, match="could not reach"):
        HttpSource("http://127.0.0.1:9", TOKEN, timeout=1).poll()
    with pytest.raises(SourceError, match="not an http"):
        HttpSource("ftp://x", TOKEN)


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
    # dtf_core.analysis decides; this checks the console's use of it on seeded-like data.
    rng = random.Random(3)
    shifted = [1.0 + rng.gauss(0, 0.01) for _ in range(SHIFT_AT)] + [
        1.5 + rng.gauss(0, 0.01) for _ in range(10)
    ]
    assert trend.change_points(shifted) == [SHIFT_AT]
    assert trend.change_points([1.0 + rng.gauss(0, 0.05) for _ in range(40)]) == []
