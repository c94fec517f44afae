"""Priorities across concurrent runs on a real `dtf-core serve`: one worker with one
thread, so that the order in which tasks start is the order dtf and Dask chose.
A nightly run is running when a release-blocking run with a higher priority
arrives: every task of the release run finishes before any nightly task that
was still queued starts; the nightly task that was running is not preempted.
Times come from the attempts in DuckDB, read through the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.procs import free_port, stop, wait_for

from dtf_core.cluster import security
from dtf_core.errors import AuthError
from dtf_core.service import bundle
from dtf_core.service.client import CoordinatorClient

pytestmark = pytest.mark.slow
PY = sys.executable
DTF = [PY, "-m", "dtf_core.cli"]
NIGHTLY_TASKS, RELEASE_TASKS = 8, 3


def _suite(root: Path, name: str, n: int, seconds: float) -> Path:
    root.mkdir(parents=True)
    tasks = "".join(
        f'[[task]]\nname = "{name}-{i}"\nkind = "command"\ncommand = ["sleep", "{seconds}"]\n'
        for i in range(n)
    )
    (root / "suite.toml").write_text(f'[suite]\nname = "{name}"\n{tasks}')
    return root


def _submit(client: CoordinatorClient, root: Path, priority: int | None) -> str:
    archive = bundle.pack(root, 1 << 20)
    return str(client.submit("suite.toml", archive, {}, priority)["run_id"])


@pytest.mark.timeout(240)
def test_a_higher_priority_run_overtakes_the_queued_tasks_of_a_running_one(
    tmp_path: Path,
) -> None:
    secret_file, worker_key = tmp_path / "secret", tmp_path / "worker.key"
    security.write_secret(secret_file)
    security.write_secret(worker_key)  # the scheduler's own: never serve's API key
    secret = security.read_secret(secret_file)
    security.write_private(
        tmp_path / "worker.jwt",
        security.issue_token(
            security.read_secret(worker_key), role="worker", subject="w", ttl_s=3600
        ),
    )
    sport, aport = free_port(), free_port()
    url = f"http://127.0.0.1:{aport}"
    # The release bot may ask for up to 100; everyone else for at most 0 (dtf.yaml).
    env = {**os.environ, "DASK_DTF__SERVICE__PRIORITY__SUBMITTERS": '{"release": {"max": 100}}'}
    procs: list[subprocess.Popen] = []

    def start(argv: list[str], log: str) -> None:
        with open(tmp_path / log, "wb") as fh:
            procs.append(
                subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
            )

    def token(subject: str, role: str = "submitter") -> str:
        return security.issue_token(secret, role=role, subject=subject, ttl_s=3600)

    nightly_dir = _suite(tmp_path / "nightly", "nightly", NIGHTLY_TASKS, 1.0)
    release_dir = _suite(tmp_path / "release", "release", RELEASE_TASKS, 0.3)
    try:
        start([*DTF, "serve", "--start-scheduler", "--scheduler-port", str(sport),
               "--db", str(tmp_path / "p.duckdb"), "--port", str(aport),
               "--secret-file", str(secret_file), "--worker-key-file", str(worker_key)],
              "serve.log")  # fmt: skip
        start([PY, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{sport}",
               "--name", "solo", "--nthreads", "1", "--no-nanny", "--no-dashboard",
               "--preload", "dtf_core.worker_preload",
               "--dtf-token-file", str(tmp_path / "worker.jwt")], "worker.log")  # fmt: skip
        viewer = CoordinatorClient(url, token("v", "viewer"), timeout=20)
        wait_for(lambda: len(viewer.workers()) == 1, 90, "serve to see the worker")
        nightly_bot = CoordinatorClient(url, token("nightly"), timeout=30)
        release_bot = CoordinatorClient(url, token("release"), timeout=30)

        # A submitter cannot go above what the service grants it: refused, not clamped.
        with pytest.raises(AuthError, match=r"above what .nightly. may ask for"):
            _submit(nightly_bot, nightly_dir, 50)

        def started(run_id: str) -> bool:
            return any(e["type"] == "RunStarted" for e in viewer.events(run_id, 0, 1)["events"])

        nightly = _submit(nightly_bot, nightly_dir, None)
        # The release run arrives while the nightly one is busy: one task running
        # on the only thread, the rest queued.
        wait_for(lambda: started(nightly), 60, "the nightly run to start")
        time.sleep(0.5)
        release = _submit(release_bot, release_dir, 10)
        assert viewer.run(release)["priority"] == 10
        # Its tasks go to Dask right after RunStarted: from here on, a nightly
        # task that starts before the release run is done has overtaken it.
        wait_for(lambda: started(release), 60, "the release run to start")
        began = time.time()

        def finished(run_id: str) -> bool:
            return viewer.run(run_id)["status"] not in ("queued", "running")

        wait_for(lambda: finished(nightly) and finished(release), 150, "both runs to end")
        for run_id in (nightly, release):
            assert viewer.run(run_id)["status"] == "passed", viewer.tasks(run_id)
        assert viewer.run(release)["metadata"]["priority"] == 10
        n_attempts = viewer.attempts(nightly)
        r_attempts = viewer.attempts(release)
    finally:
        for p in reversed(procs):
            stop(p, grace=20)
    assert len(n_attempts) == NIGHTLY_TASKS and len(r_attempts) == RELEASE_TASKS
    release_done = max(a["finished_at"] for a in r_attempts)
    # Nightly tasks that had started before the release run arrived ran on;
    # the ones still queued all waited for the release run to finish.
    queued = [a for a in n_attempts if a["started_at"] >= began]
    assert len(queued) >= NIGHTLY_TASKS - 3, "the test needs nightly tasks still queued"
    late = [a for a in queued if a["started_at"] < release_done]
    timeline = sorted((a["started_at"], a["task_id"]) for a in n_attempts + r_attempts)
    assert not late, json.dumps({"began": began, "timeline": timeline}, indent=1)
    running_then = [a for a in n_attempts if a["started_at"] < began]
    assert all(a["outcome"] == "passed" for a in running_then)  # never preempted
