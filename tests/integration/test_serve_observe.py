"""Watching `dtf-core serve` from outside, with real processes on 127.0.0.1: a
leader (`serve --start-scheduler --dashboard`), a standby on the same database,
a `dtf-core worker`. Prometheus metrics during and after a real run, the
coordinator's status route, Dask's dashboard answering, the browser console's
door in front of the API's tokens, and the console's header (the real app with
Pilot) following leadership when the leader is killed.

The tests run in file order and share one deployment; the last one kills the
leader."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.procs import free_port, stop, wait_for

from dtf_core.cluster import security
from dtf_core.service import bundle
from dtf_core.service.client import CoordinatorClient
from dtf_core.service.metrics import METRIC_NAMES

pytestmark = pytest.mark.slow
PY = sys.executable
DTF = [PY, "-m", "dtf_core.cli"]
N_OK, N_BAD = 5, 1
SUITE = f"""
[suite]
name = "observed"
[defaults]
retries = 1
[[task]]
name = "ok"
kind = "command"
command = ["python", "-c", "import time; time.sleep(0.4)"]
params = {{ i = {list(range(N_OK))} }}
[[task]]
name = "bad"
kind = "command"
rerun_failures = 1
command = ["python", "-c", "raise SystemExit(3)"]
"""


@dataclass
class Service:
    tmp: Path
    url: str
    standby_url: str
    dashboard: str
    tokens: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    scheduler_pid: int = 0

    def client(self, role: str = "viewer") -> CoordinatorClient:
        return CoordinatorClient(self.url, self.tokens[role], timeout=20)

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("observe")
    secret_file, key_file = tmp / "secret", tmp / "result.key"
    worker_key = tmp / "worker.key"  # the scheduler's own: never serve's API key
    for f in (secret_file, key_file, worker_key):
        security.write_secret(f)
    secret = security.read_secret(secret_file)
    tokens = {r: security.issue_token(secret, role=r, subject=f"{r}-1", ttl_s=3600)
              for r in ("viewer", "submitter")}  # fmt: skip
    tokens["worker"] = security.issue_token(
        security.read_secret(worker_key), role="worker", subject="worker-1", ttl_s=3600
    )
    security.write_private(tmp / "worker.jwt", tokens["worker"])
    sport, dport, aport, bport = (free_port() for _ in range(4))
    d = Service(tmp, f"http://127.0.0.1:{aport}", f"http://127.0.0.1:{bport}",
                f"127.0.0.1:{dport}", tokens)  # fmt: skip
    common = ["--db", str(tmp / "dtf.duckdb"), "--secret-file", str(secret_file),
              "--result-key-file", str(key_file)]  # fmt: skip

    def start(name: str, argv: list[str]) -> None:
        with open(tmp / f"{name}.log", "wb") as fh:
            d.procs[name] = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp)

    try:
        start("leader", [*DTF, "serve", "--start-scheduler", "--scheduler-port", str(sport),
                         "--dashboard", d.dashboard, "--port", str(aport),
                         "--worker-key-file", str(worker_key), *common])  # fmt: skip
        wait_for(lambda: d.get("/v1/health")[0] == 200, 90, "the leader to listen")
        (child,) = [
            c
            for c in psutil.Process(d.procs["leader"].pid).children()
            if "scheduler" in " ".join(c.cmdline())
        ]
        d.scheduler_pid = child.pid
        start("worker", [*DTF, "worker", f"tcp://127.0.0.1:{sport}", "--name", "w1",
                         "--nthreads", "1", "--no-nanny", "--token-file", str(tmp / "worker.jwt"),
                         "--result-key-file", str(key_file)])  # fmt: skip
        start("standby", [*DTF, "serve", "--scheduler", f"tcp://127.0.0.1:{sport}",
                          "--standby", "--port", str(bport), *common])  # fmt: skip
        wait_for(lambda: len(d.client().workers()) == 1, 90, "the worker to join")
        yield d
    finally:
        for p in reversed(d.procs.values()):
            stop(p, grace=15)
        if d.scheduler_pid and psutil.pid_exists(d.scheduler_pid):
            os.kill(d.scheduler_pid, signal.SIGKILL)  # the leader's child, orphaned by its kill


def _families(body: bytes) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> {sorted labels: value} for every sample (``_total``/``_count`` kept)."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _by(samples: dict[tuple[tuple[str, str], ...], float], label: str) -> dict[str, float]:
    return {dict(k)[label]: v for k, v in samples.items()}


@pytest.mark.timeout(240)
def test_metrics_during_and_after_a_run_match_the_run(service: Service) -> None:
    assert service.get("/metrics")[0] == 401  # a viewer token, as the API asks
    suite_dir = service.tmp / "suite"
    suite_dir.mkdir()
    (suite_dir / "s.toml").write_text(SUITE)
    run = service.client("submitter").submit("s.toml", bundle.pack(suite_dir, 10**7), {})
    viewer = service.client()

    # During the run: the queue depth is what is left of it.
    def mid_run() -> dict | None:
        live = viewer.run(run["run_id"])
        if live.get("status") != "running" or not 0 < (live.get("done") or 0) < live["total"]:
            return None
        status, body = service.get("/metrics", service.tokens["viewer"])
        assert status == 200
        return _families(body)

    during = wait_for(mid_run, 120, "the run to be under way")
    assert 0 < during["dtf_tasks_pending"][()] <= N_OK + N_BAD
    assert _by(during["dtf_runs"], "status")["running"] == 1

    wait_for(lambda: viewer.run(run["run_id"])["status"] == "failed", 120, "the run to end")
    ok, body = service.get("/metrics", service.tokens["viewer"])
    assert ok == 200
    after = _families(body)
    assert _by(after["dtf_tasks_finished_total"], "status") == {"passed": N_OK, "failed": N_BAD}
    # Every failed attempt, rerun or final, under its category, as the store has them.
    stored = viewer.errors(run["run_id"])
    assert sum(after["dtf_attempts_failed_total"].values()) == len(stored) == 2
    assert set(_by(after["dtf_attempts_failed_total"], "category")) == {
        e["category"] for e in stored
    }
    assert _by(after["dtf_runs"], "status")["failed"] == 1
    assert after["dtf_tasks_pending"][()] == 0 and after["dtf_runs_queued"][()] == 0
    assert _by(after["dtf_workers"], "state") == {"running": 1, "paused": 0, "stale": 0}
    assert after["dtf_worker_threads"][()] == 1
    assert _by(after["dtf_worker_memory_bytes"], "worker")["w1"] > 0
    assert after["dtf_db_size_bytes"][()] > 0
    assert after["dtf_db_write_duration_seconds_count"][()] >= 1
    assert after["dtf_db_attempts_written_total"][()] == N_OK + N_BAD + 1
    # Latency per route template: the run's id is never a label.
    routes = {dict(k)["route"] for k in after["dtf_api_request_duration_seconds_count"]}
    assert {"/v1/runs", "/v1/runs/{id}", "/v1/workers", "/v1/health", "/metrics"} <= routes
    assert not any(run["run_id"] in r for r in routes)
    exported = {f.name for f in text_string_to_metric_families(body.decode())}
    assert exported == set(METRIC_NAMES)


@pytest.mark.timeout(120)
def test_coordinator_route_names_the_leader_its_standby_and_the_dashboard(
    service: Service,
) -> None:
    assert service.get("/v1/coordinator")[0] == 401
    viewer = service.client()
    body = wait_for(
        lambda: (b := viewer.coordinator())["standbys"] and b, 60, "the standby to be listed"
    )
    assert body["leader"] is True and body["took_over"] is False
    assert body["url"] == service.url
    assert body["pid"] == service.procs["leader"].pid
    assert [s["url"] for s in body["standbys"]] == [service.standby_url]
    assert body["database"] == str((service.tmp / "dtf.duckdb").resolve())
    # --dashboard: Dask's dashboard of the scheduler serve started answers there.
    assert body["dashboard"].startswith(f"http://127.0.0.1:{service.dashboard.split(':')[1]}/")
    with urllib.request.urlopen(body["dashboard"], timeout=20) as resp:
        assert resp.status == 200
    assert f"Dask dashboard: {body['dashboard']}" in service.log("leader")


@pytest.mark.timeout(120)
def test_browser_console_door_asks_the_coordinator(service: Service, tmp_path: Path) -> None:
    """`dtf-tui --web --coordinator`: a token the coordinator refuses stays out;
    a viewer token opens a session (cookie) and is gone from the address."""
    port = free_port()
    log = tmp_path / "web.log"
    env = {k: v for k, v in os.environ.items() if k != "DTF_TOKEN"}
    with open(log, "wb") as fh:
        web = subprocess.Popen(
            [PY, "-m", "dtf_tui", "--web", "--port", str(port), "--coordinator", service.url,
             "--token", service.tokens["viewer"]],
            stdout=fh, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _status(base + "/") == 401, 90, "the web console to listen")
        assert _status(base + "/?token=not-a-token") == 401
        opener = urllib.request.build_opener(_NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as seen:
            opener.open(f"{base}/?token={service.tokens['submitter']}&fontsize=12", timeout=20)
        assert seen.value.code == 303
        assert seen.value.headers["Location"] == "/?fontsize=12"
        cookie = seen.value.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        req = urllib.request.Request(base + "/", headers={"Cookie": cookie.split(";")[0]})
        with urllib.request.urlopen(req, timeout=20) as resp:
            assert resp.status == 200 and b"textual-terminal" in resp.read()
    finally:
        stop(web)
    text = log.read_text(errors="replace")
    assert service.tokens["viewer"] not in text and service.tokens["submitter"] not in text
    assert "not-a-token" not in text and "GET / 303" in " ".join(text.split())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.timeout(240)
def test_console_header_follows_the_leader_and_says_when_it_moves(service: Service) -> None:
    from dtf_tui.app import DtfApp
    from dtf_tui.screens.workers import WorkersScreen
    from dtf_tui.sources.http import HttpSource
    from dtf_tui.widgets.banner import SourceBanner

    source = HttpSource(f"{service.url},{service.standby_url}", service.tokens["viewer"])
    app = DtfApp(source, poll_interval=0.5, log_path=service.tmp / "tui.log")

    async def until(pilot, check, timeout: float, what: str):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            app.action_poll_now()
            await pilot.pause(0.3)
            if check():
                return
        raise AssertionError(f"{what}: header {app.sub_title!r}, banner {app.problem!r}")

    async def scenario() -> None:
        async with app.run_test(size=(160, 40)) as pilot:
            await until(pilot, lambda: "leader since" in app.sub_title, 60, "the header")
            assert app.sub_title.startswith(f"coordinator {service.url} · leader since ")
            assert app.sub_title.endswith(f"standbys: {service.standby_url}")
            await pilot.press("2")
            await until(pilot, lambda: isinstance(app.screen, WorkersScreen), 10, "Workers")
            summary = str(app.screen.query_one("#workers-summary").render())
            assert "Dask dashboard: http://127.0.0.1:" in summary

            os.kill(service.procs["leader"].pid, signal.SIGKILL)  # the leader dies
            service.procs["leader"].wait(timeout=10)
            await until(pilot, lambda: "leadership moved" in app.problem, 150, "the banner")
            banner = str(app.screen.query_one(SourceBanner).render())
            assert f"leadership moved: {service.url} → {service.standby_url}" in banner
            assert app.sub_title.startswith(f"coordinator {service.standby_url} · leader since")
            await pilot.press("q")

    asyncio.run(scenario())
    assert "took over" in service.log("standby")
