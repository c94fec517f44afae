"""Orderly stops never cost a run: `systemctl restart`-style stops of
`dtf-core serve` (SIGTERM, then start again) in the middle of a run, with real
processes (an external `dtf-core scheduler`, a `dtf-core worker`, serve, and
`dtf-core submit` following the run).

Without a standby the same service comes back on the same port and database
and resumes the run; with one, the standby takes the database over when the
leader lets go of it. Either way the stopping service refuses new runs (503
with Retry-After), exits within its grace, never cancels the run, and submit
reconnects, follows the run to its end and exits 0, every task passed exactly
once. Beneath them, the Coordinator's detach and resume in process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from support.procs import free_port, stop, wait_for

from dtf_core.cluster import embedded as cluster
from dtf_core.cluster import security
from dtf_core.events import Event, TaskFinished
from dtf_core.run.coordinator import Coordinator
from dtf_core.service.client import CoordinatorClient
from dtf_core.store import Store, StoreReader

PY = sys.executable
DTF = [PY, "-m", "dtf_core.cli"]
TASKS = 24
GRACE = 5.0  # dtf.service.drain-grace for these services


def _listening(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2) as r:
            return json.loads(r.read())["status"] == "ok"
    except OSError:
        return False


def _probe_submit(port: int, token: str) -> tuple[int, str | None, dict]:
    """POST /v1/runs with a body that is never a run: 400 from a service that
    takes runs, 503 from one that is stopping (it refuses before reading it)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/runs", data=b"{}", method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        urllib.request.urlopen(req, timeout=5)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After"), json.loads(exc.read())
    raise AssertionError("a body without a suite was accepted")


class Deployment:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        secret_file, key_file = tmp / "secret", tmp / "result.key"
        worker_key = tmp / "worker.key"  # the scheduler's own: never serve's API key
        for f in (secret_file, key_file, worker_key):
            security.write_secret(f)
        secret = security.read_secret(secret_file)
        security.write_private(
            tmp / "worker.jwt",
            security.issue_token(
                security.read_secret(worker_key), role="worker", subject="w", ttl_s=3600
            ),
        )
        self.token = security.issue_token(secret, role="submitter", subject="ci", ttl_s=3600)
        sport = free_port()
        self.db = tmp / "drain.duckdb"
        self.serve_argv = [*DTF, "serve", "--scheduler", f"tcp://127.0.0.1:{sport}",
                           "--db", str(self.db), "--secret-file", str(secret_file),
                           "--result-key-file", str(key_file)]  # fmt: skip
        self.env = {**os.environ, "DASK_DTF__SERVICE__DRAIN_GRACE": f"{GRACE:g}s"}
        self.procs: list[subprocess.Popen] = []
        (tmp / "suite").mkdir()
        tasks = "".join(
            f'[[task]]\nname = "t{i:02d}"\nkind = "command"\n'
            'command = ["python", "-c", "import time; time.sleep(1.2)"]\n'
            for i in range(TASKS)
        )
        (tmp / "suite" / "s.toml").write_text(f'[suite]\nname = "drain"\n{tasks}')
        self.start([*DTF, "scheduler", "--port", str(sport), "--dashboard-address",
                    f"127.0.0.1:{free_port()}", "--secret-file", str(worker_key)],
                   "scheduler.log")  # fmt: skip
        self.start([*DTF, "worker", f"tcp://127.0.0.1:{sport}", "--name", "w1", "--nthreads",
                    "2", "--no-nanny", "--token-file", str(tmp / "worker.jwt"),
                    "--result-key-file", str(key_file)], "worker.log")  # fmt: skip

    def start(self, argv: list[str], log: str) -> subprocess.Popen:
        with open(self.tmp / log, "ab") as fh:
            p = subprocess.Popen(
                argv, stdout=fh, stderr=subprocess.STDOUT, cwd=self.tmp, env=self.env
            )
        self.procs.append(p)
        return p

    def serve(self, port: int, log: str, *extra: str) -> subprocess.Popen:
        return self.start([*self.serve_argv, "--port", str(port), *extra], log)

    def submit(self, urls: str) -> subprocess.Popen:
        p = subprocess.Popen(
            [*DTF, "submit", str(self.tmp / "suite" / "s.toml"), "--coordinator", urls,
             "--token", self.token, "--json", str(self.tmp / "s.json"),
             "--follow-timeout", "120"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.tmp,
        )  # fmt: skip
        self.procs.append(p)
        return p

    def log(self, name: str) -> str:
        path = self.tmp / name
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_in_order(self, serve: subprocess.Popen, port: int) -> float:
        """SIGTERM, as systemd stops a unit; the seconds it took to exit."""
        sent = time.monotonic()
        os.kill(serve.pid, signal.SIGTERM)
        answers = []
        while serve.poll() is None and time.monotonic() - sent < 10:
            try:
                answers.append(_probe_submit(port, self.token))
            except OSError:
                break  # it stopped listening
            if answers[-1][0] == 503:
                break
            time.sleep(0.05)
        code, retry_after, body = answers[-1]
        assert (code, body["status"]) == (503, 503) and retry_after, answers
        assert "stopping" in body["error"], body
        serve.wait(timeout=GRACE + 40)
        assert serve.returncode == 0, serve.returncode
        return time.monotonic() - sent

    def close(self) -> None:
        for p in reversed(self.procs):
            stop(p, grace=15)
            if p.stdout is not None:
                p.stdout.close()


def _follow_until(submit: subprocess.Popen, marker: str) -> list[str]:
    assert submit.stdout is not None
    seen: list[str] = []
    for line in submit.stdout:
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError("".join(seen))


def _check_every_task_passed_once(d: Deployment, submit: subprocess.Popen, seen: list[str]) -> str:
    out, _ = submit.communicate(timeout=150)
    output = "".join(seen) + out
    assert submit.returncode == 0, output + d.log("serve-a.log") + d.log("serve-b.log")
    assert "stopped in order" in output  # the hand-over was shown, then followed
    summary = json.loads((d.tmp / "s.json").read_text())
    assert summary["status"] == "passed" and summary["counts"]["passed"] == TASKS
    d.close()  # the database is read once no service holds it
    with StoreReader(d.db) as store:
        run_id = summary["run_id"]
        assert store.get_run(run_id)["status"] == "passed"
        tasks = store.tasks(run_id)
        attempts = store.attempts(run_id)
    assert len(tasks) == TASKS and all(t["status"] == "passed" for t in tasks)
    passed = [a["task_id"] for a in attempts if a["outcome"] == "passed"]
    assert sorted(passed) == sorted(t["task_id"] for t in tasks)  # each exactly once
    assert not [a for a in attempts if a["category"] == "cancelled"], attempts
    return output


@pytest.mark.timeout(120)
def test_a_detached_run_stays_open_and_its_resume_finishes_it(
    tmp_path: Path, make_spec: Any, make_suite: Any
) -> None:
    """The Coordinator under serve's orderly stop: what Dask has not started is
    taken back at once, what runs is recorded, nothing ends cancelled, and the
    run resumed by the next coordinator ends with every task passed once."""
    tasks = [
        make_spec(f"t{i:02d}", command=["sleep", "0.4"], root=tmp_path, timeout=60)
        for i in range(16)
    ]
    finished: list[str] = []

    def listen(event: Event) -> None:
        if isinstance(event, TaskFinished):
            finished.append(event.task_id)

    with (
        Store(tmp_path / "d.duckdb") as store,
        cluster.open_cluster(None, plans=cluster.plan_workers(1, 2, [])) as handle,
    ):
        coord = Coordinator(handle.client, store, embedded=True, listeners=[listen])

        def stop_after_three() -> None:
            wait_for(lambda: len(finished) >= 3, 60, "three tasks")
            coord.detach(grace=30)

        threading.Thread(target=stop_after_three, daemon=True).start()
        started = time.monotonic()
        left = coord.run(make_suite(tasks, path=tmp_path / "s.toml"))
        assert left.status == "running" and store.get_run(left.run_id)["status"] == "running"
        # Only what was running was waited for, not the queue (16 x 0.4 s on 2 threads).
        assert 3 <= len(finished) < 12 and time.monotonic() - started < 30, finished
        before = store.attempts(left.run_id)
        assert before and all(a["outcome"] == "passed" for a in before), before
        done = Coordinator(handle.client, store, embedded=True).resume(left.run_id)
        attempts = store.attempts(left.run_id)
    assert done.status == "passed"
    passed = [a["task_id"] for a in attempts if a["outcome"] == "passed"]
    assert sorted(passed) == [t.task_id for t in tasks]  # each exactly once
    assert {a["task_id"] for a in before} <= {a["task_id"] for a in attempts if a["attempt"] == 1}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_restart_without_standby_resumes_the_run_and_submit_follows(tmp_path: Path) -> None:
    d = Deployment(tmp_path)
    port = free_port()
    try:
        serve = d.serve(port, "serve-a.log")
        wait_for(lambda: _listening(port), 90, "serve to listen")
        url = f"http://127.0.0.1:{port}"
        submit = d.submit(url)
        seen = _follow_until(submit, f"[4/{TASKS}]")
        first = CoordinatorClient(url, d.token).health()["instance"]
        took = d.stop_in_order(serve, port)
        assert took < GRACE + 30, took
        log = d.log("serve-a.log")
        assert "stopping in order" in log and "cancel" not in log.lower(), log
        with StoreReader(d.db) as store:
            (row,) = store.list_runs(limit=5)
            assert row["status"] == "running"  # left open, not cancelled
        # `systemctl restart`: the same service, port and database again.
        d.serve(port, "serve-a.log")
        wait_for(lambda: _listening(port), 240, "serve to listen again")
        # A follower's long-poll numbered by the stopped process is answered at
        # once (else it waits out `wait` for events this numbering never reaches).
        run_id = re.search(r"submitted run (\S+)", "".join(seen)).group(1)  # type: ignore[union-attr]
        asked = time.monotonic()
        page = CoordinatorClient(url, d.token).events(run_id, 10**6, wait=20, instance=first)
        assert time.monotonic() - asked < 10 and not page["finished"], page
        assert page["instance"] != first and not page["events"]
        output = _check_every_task_passed_once(d, submit, seen)
        assert "resuming run" in d.log("serve-a.log")
        assert output.count("submitted run") == 1
    finally:
        d.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stop_hands_the_run_to_a_waiting_standby(tmp_path: Path) -> None:
    d = Deployment(tmp_path)
    aport, bport = free_port(), free_port()
    try:
        leader = d.serve(aport, "serve-a.log")
        wait_for(lambda: _listening(aport), 90, "the leader to listen")
        d.serve(bport, "serve-b.log", "--standby")
        wait_for(lambda: "standby" in d.log("serve-b.log"), 60, "the standby to wait")
        submit = d.submit(f"http://127.0.0.1:{aport},http://127.0.0.1:{bport}")
        seen = _follow_until(submit, f"[4/{TASKS}]")
        d.stop_in_order(leader, aport)
        wait_for(lambda: "took over" in d.log("serve-b.log"), 60, "the standby to take over")
        # The rolling restart goes on: the old leader comes back as the standby.
        d.serve(aport, "serve-a2.log", "--standby")
        _check_every_task_passed_once(d, submit, seen)
        assert "cancel" not in d.log("serve-a.log").lower()
    finally:
        d.close()
