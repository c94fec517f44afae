"""High availability with real processes: a standby `dtf-core serve` takes over
when the leader is killed with SIGKILL, resumes its open run, and `submit`
(given both URLs) follows it to the end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.procs import free_port, stop, wait_for

from dtf_core.cluster import security
from dtf_core.store import StoreReader

pytestmark = pytest.mark.slow
PY = sys.executable
DTF = [PY, "-m", "dtf_core.cli"]


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listened on {port} within {timeout}s")


@pytest.mark.timeout(240)
def test_standby_takes_over_and_submit_follows(tmp_path: Path) -> None:
    secret_file, key_file = tmp_path / "secret", tmp_path / "result.key"
    security.write_secret(secret_file)
    security.write_secret(key_file)
    secret = security.read_secret(secret_file)
    (tmp_path / "worker.jwt").write_text(
        security.issue_token(secret, role="worker", subject="w", ttl_s=3600)
    )
    token = security.issue_token(secret, role="submitter", subject="ci", ttl_s=3600)
    sport, dport, aport, bport = (free_port() for _ in range(4))
    scheduler = f"tcp://127.0.0.1:{sport}"
    db = tmp_path / "ha.duckdb"
    serve = [*DTF, "serve", "--scheduler", scheduler, "--db", str(db), "--secret-file",
             str(secret_file), "--result-key-file", str(key_file)]  # fmt: skip
    (tmp_path / "suite").mkdir()
    tasks = "".join(
        f'[[task]]\nname = "t{i:02d}"\nkind = "command"\n'
        'command = ["python", "-c", "import time; time.sleep(0.7)"]\n'
        for i in range(12)
    )
    (tmp_path / "suite" / "s.toml").write_text(f'[suite]\nname = "ha"\n{tasks}')
    procs: list[subprocess.Popen] = []

    def start(argv: list[str], log: str) -> subprocess.Popen:
        with open(tmp_path / log, "wb") as fh:
            p = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp_path)
        procs.append(p)
        return p

    try:
        start([*DTF, "scheduler", "--port", str(sport), "--dashboard-address",
               f"127.0.0.1:{dport}", "--secret-file", str(secret_file)], "scheduler.log")  # fmt: skip
        start([*DTF, "worker", scheduler, "--name", "w1", "--nthreads", "1", "--no-nanny",
               "--token-file", str(tmp_path / "worker.jwt"),
               "--result-key-file", str(key_file)], "worker.log")  # fmt: skip
        leader = start([*serve, "--port", str(aport)], "leader.log")
        _wait_port(aport, 60)
        start([*serve, "--port", str(bport), "--standby"], "standby.log")
        # On a busy machine the standby takes seconds to start: it must be waiting
        # for the lock before the leader dies, or it is no standby at all.
        wait_for(lambda: "standby:" in (tmp_path / "standby.log").read_text(), 60, "the standby")
        submit = subprocess.Popen(
            [*DTF, "submit", str(tmp_path / "suite" / "s.toml"), "--coordinator",
             f"http://127.0.0.1:{aport},http://127.0.0.1:{bport}", "--token", token,
             "--json", str(tmp_path / "s.json")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        )  # fmt: skip
        procs.append(submit)
        assert submit.stdout is not None
        seen: list[str] = []
        for line in submit.stdout:
            seen.append(line)
            if "[3/12]" in line:
                break
        else:
            raise AssertionError("".join(seen))
        os.kill(leader.pid, signal.SIGKILL)  # the leader dies mid-run
        leader.wait(timeout=10)
        out, _ = submit.communicate(timeout=150)
        assert submit.returncode == 0, "".join(seen) + out + (tmp_path / "standby.log").read_text()
        summary = json.loads((tmp_path / "s.json").read_text())
        assert summary["status"] == "passed"
        assert summary["counts"]["passed"] == 12
        assert "took over" in (tmp_path / "standby.log").read_text()

        # The console attached to the surviving coordinator (the real /v1 API,
        # both URLs given) sees the worker and the finished run with its tasks.
        from dtf_tui.sources.http import HttpSource

        snap = HttpSource(f"http://127.0.0.1:{aport},http://127.0.0.1:{bport}", token).poll()
        assert [w.name for w in snap.workers] == ["w1"]
        (run,) = [r for r in snap.runs if r.run_id == summary["run_id"]]
        assert run.status == "passed" and run.passed == 12
        assert len(snap.tasks) == 12
    finally:
        for p in reversed(procs):
            stop(p, grace=15)
    with StoreReader(db) as store:
        run_id = summary["run_id"]
        tasks_rows = store.tasks(run_id)
        attempts = store.attempts(run_id)
    assert len(tasks_rows) == 12 and all(t["status"] == "passed" for t in tasks_rows)
    passed = [a["task_id"] for a in attempts if a["outcome"] == "passed"]
    assert sorted(passed) == sorted(t["task_id"] for t in tasks_rows)  # each exactly once


@pytest.mark.timeout(120)
def test_serve_restarts_the_scheduler_it_manages(tmp_path: Path) -> None:
    import psutil

    secret_file = tmp_path / "secret"
    security.write_secret(secret_file)
    sport, aport = free_port(), free_port()
    with open(tmp_path / "serve.log", "wb") as fh:
        serve = subprocess.Popen(
            [*DTF, "serve", "--start-scheduler", "--scheduler-port", str(sport),
             "--db", str(tmp_path / "s.duckdb"), "--port", str(aport),
             "--secret-file", str(secret_file)],
            stdout=fh, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    try:
        _wait_port(aport, 60)
        _wait_port(sport, 30)
        (child,) = [
            c for c in psutil.Process(serve.pid).children() if "scheduler" in " ".join(c.cmdline())
        ]
        child.kill()
        deadline = time.monotonic() + 30
        while "restarting it" not in (tmp_path / "serve.log").read_text():
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        _wait_port(sport, 30)
        again = [
            c for c in psutil.Process(serve.pid).children() if "scheduler" in " ".join(c.cmdline())
        ]
        assert len(again) == 1 and again[0].pid != child.pid
    finally:
        stop(serve, grace=20)
