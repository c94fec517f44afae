"""``/v1/console?since=G`` over a real `dtf-core serve` during a real run: a
delta applied to the snapshot a console holds equals the full snapshot of the
same build, and a console that fell behind (more than ``KEEP`` builds), or
asks across epochs, or without ``since``, gets the full snapshot. The same
deltas pushed on ``/v1/console/stream``: each build once, in order, keeping the
console equal to the full snapshot; a console on the stream sends no snapshot
request at all, and the stream ends when its token expires.

Real processes on 127.0.0.1: serve with its own scheduler and one worker
thread; a run of 60 benchmark tasks of ~0.1 s each (some failing, for errors),
so that it moves for a few seconds while the snapshots are compared.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.keys import make_keys
from support.procs import free_port, wait_for
from support.procs import stop as kill

from dtf_core.errors import AuthError
from dtf_core.service import bundle
from dtf_core.service.client import CoordinatorClient
from dtf_core.service.views import wire
from dtf_core.service.views.delta import KEEP
from dtf_core.service.views.snapshot import ClusterSnapshot
from dtf_tui.sources.http import HttpSource

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
PY = sys.executable
N = 60
SUITE = f"""
[suite]
name = "since"
[defaults]
timeout = "60s"
retries = 0
[[task]]
name = "step"
kind = "benchmark"
function = "stepmod:work"
repeat = 1
warmup = 0
params = {{ i = {list(range(N))} }}
"""
STEP = "import time\ndef work(i):\n    time.sleep(0.1)\n    assert i % 20 != 7, 'boom'\n"


def _start(tmp: Path, argv: list[str], log: str) -> subprocess.Popen:
    with open(tmp / log, "wb") as fh:
        return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[CoordinatorClient, Path]]:
    keys = make_keys(tmp_path)
    keys.worker_token_file(tmp_path / "worker.jwt", "w")
    sport, aport = free_port(), free_port()
    dtf = [PY, "-m", "dtf_core.cli"]
    procs = [
        _start(tmp_path, [*dtf, "serve", "--start-scheduler", "--scheduler-port", str(sport),
                          "--db", str(tmp_path / "dtf.duckdb"), "--port", str(aport),
                          "--secret-file", str(keys.api), "--worker-key-file",
                          str(keys.worker)], "serve.log"),
        _start(tmp_path, [*dtf, "worker", f"tcp://127.0.0.1:{sport}", "--name", "since-w",
                          "--nthreads", "1", "--no-nanny", "--token-file",
                          str(tmp_path / "worker.jwt")], "worker.log"),
    ]  # fmt: skip
    try:
        client = CoordinatorClient(f"http://127.0.0.1:{aport}", keys.token("submitter", "ci"))
        wait_for(lambda: len(client.workers()) == 1, 120, "serve to see the worker")
        root = tmp_path / "suite"
        root.mkdir()
        (root / "stepmod.py").write_text(STEP)
        (root / "suite.toml").write_text(SUITE)
        yield client, root
    finally:
        for p in reversed(procs):
            kill(p)


def _held(data: dict[str, Any]) -> tuple[int, str, ClusterSnapshot]:
    return int(data["build"]), str(data["epoch"]), wire.snapshot(data)


def _same_build(client: CoordinatorClient, since: int, epoch: str) -> tuple[dict, dict]:
    """A delta and a full snapshot of one build (``generation=1``: the published
    one, never a wait for a new build; again when a build came in between)."""
    for _ in range(20):
        delta = client.console(1, since, epoch)
        full = client.console(1)
        if delta["build"] == full["build"]:
            return delta, full
    raise AssertionError("no two answers of the same build in 20 tries")


def test_a_delta_applied_to_the_held_snapshot_equals_the_full_one(
    serve: tuple[CoordinatorClient, Path],
) -> None:
    client, root = serve
    run_id = client.submit("suite.toml", bundle.pack(root, 10**7), {})["run_id"]

    def early() -> dict[str, Any] | None:
        data = client.console(0)
        focused = wire.snapshot(data).focused_run
        return data if focused and focused.run_id == run_id and data["tasks"] else None

    first = wait_for(early, 60, "the run's first snapshot")
    start_build, epoch, start = _held(first)
    built, held = start_build, start
    compared, sizes = 0, []
    deadline = time.monotonic() + 120
    while held.focused_run is None or held.focused_run.in_flight:  # until it shows the end
        assert time.monotonic() < deadline, "the run's end never reached the snapshot"
        delta, full = _same_build(client, built, epoch)
        assert "delta" in delta, f"a full snapshot for build {built}, one of the last"
        assert delta["delta"] == built
        merged = wire.apply_delta(held, delta)
        assert merged == wire.snapshot(full), f"delta from build {built} to {delta['build']}"
        if delta["tasks_changed"]:
            compared += 1
            sizes.append((len(json.dumps(delta)), len(json.dumps(full))))
        built, held = int(delta["build"]), merged  # as a console does
        time.sleep(0.3)
    assert compared >= 2, "deltas with changed tasks compared during the run"
    assert all(d < f for d, f in sizes), sizes
    assert any(e.run_id == run_id for e in held.errors), "the failing tasks' errors came"
    assert sum(t.status == "passed" for t in held.tasks) == N - N // 20

    # Fell behind: more builds since the run's first snapshot than deltas start from
    # (the workers' CPU samples make one a second once the run is over).
    wait_for(lambda: client.console(0)["build"] > start_build + KEEP, 90, f"{KEEP} builds")
    final = client.console(0, start_build, epoch)
    assert "delta" not in final and len(final["tasks"]) == N
    assert wire.snapshot(final) == wire.snapshot(client.console(1))
    # Another epoch (a restarted service), no `since` (an old client): the full one.
    assert "delta" not in client.console(1, built, "another")
    assert "delta" not in client.console(1)
    # The console's own source: a full snapshot first, then deltas that keep it equal.
    source = HttpSource(client.base, client.token, timeout=20)
    first_poll = source.poll()
    assert source.poll().tasks == first_poll.tasks == wire.snapshot(client.console(1)).tasks


def _console_requests(client: CoordinatorClient) -> float:
    """How many `/v1/console` requests serve has answered (its own /metrics)."""
    families = text_string_to_metric_families(client._request("GET", "/metrics").decode())
    return sum(
        s.value
        for f in families
        for s in f.samples
        if s.name == "dtf_api_request_duration_seconds_count" and s.labels["route"] == "/v1/console"
    )


def test_the_stream_sends_each_build_once_as_a_delta_that_keeps_a_console_equal(
    serve: tuple[CoordinatorClient, Path],
) -> None:
    client, root = serve
    run_id = client.submit("suite.toml", bundle.pack(root, 10**7), {})["run_id"]
    stream = CoordinatorClient(client.base, client.token, timeout=20)
    held: ClusterSnapshot | None = None
    builds: list[int] = []
    compared = 0
    deadline = time.monotonic() + 120
    for data in stream.console_stream(0, "", idle=30):
        assert time.monotonic() < deadline, "the run's end never reached the stream"
        if held is None:
            assert "delta" not in data  # nothing held: the whole snapshot first
            held = wire.snapshot(data)
        else:
            assert data["delta"] == builds[-1], "each event is the delta from the one before"
            held = wire.apply_delta(held, data)
        builds.append(int(data["build"]))
        full = client.console(1)  # the published build, at once
        if full["build"] == data["build"]:
            assert held == wire.snapshot(full), f"build {data['build']} from the stream"
            compared += 1
        focused = held.focused_run
        if focused is not None and focused.run_id == run_id and not focused.in_flight:
            break
    assert held is not None and builds == sorted(set(builds)), builds  # each once, in order
    assert compared >= 3, f"{compared} builds compared with the full snapshot"
    assert sum(t.status == "passed" for t in held.tasks) == N - N // 20
    assert any(e.run_id == run_id for e in held.errors), "the failing tasks' errors came"


def test_a_console_on_the_stream_asks_for_no_snapshot_and_ends_with_its_token(
    serve: tuple[CoordinatorClient, Path], tmp_path: Path
) -> None:
    client, root = serve
    source = HttpSource(client.base, client.token, timeout=20)
    woken = threading.Event()
    source.subscribe(woken.set)
    source.start()
    try:
        wait_for(lambda: source._streaming, 30, "the console's stream")
        asked = _console_requests(client)
        run_id = client.submit("suite.toml", bundle.pack(root, 10**7), {})["run_id"]

        def finished() -> ClusterSnapshot | None:
            woken.wait(1.0)
            woken.clear()
            snap = source.poll()
            focused = snap.focused_run
            done = focused is not None and focused.run_id == run_id and not focused.in_flight
            return snap if done else None

        snap = wait_for(finished, 120, "the run's end in the console")
        assert _console_requests(client) == asked, "a console on the stream asked for snapshots"
        assert source.changes_seen >= 3
        latest = wire.snapshot(client.console(1))
        wait_for(lambda: source.poll().taken_at >= latest.taken_at, 10, "the newest build")
        assert source.poll().tasks == latest.tasks == snap.tasks
    finally:
        source.close()
    # A token that expires: the stream ends with it, and the next one is refused.
    brief = CoordinatorClient(
        client.base, make_keys(tmp_path).token("viewer", "brief", ttl_s=3), timeout=20
    )
    started = time.monotonic()
    events = sum(1 for _ in brief.console_stream(0, "", idle=30))
    # 3 s, the 5 s leeway tokens get for clock skew, and a check at least every second
    assert events >= 1 and time.monotonic() - started < 3 + 5 + 4
    with pytest.raises(AuthError, match="expired"):
        next(brief.console_stream(0, "", idle=30))
