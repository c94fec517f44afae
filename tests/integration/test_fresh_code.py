"""Fresh code for every run, with real processes on 127.0.0.1: a long-lived
`dask scheduler` + one `dask worker --preload dtf_core.worker_preload` (what
docs/cluster.md deploys, here without tokens) and `dtf-core serve`. Between two
runs of the same suite the benchmark's source changes; the second run must
measure the new code, on the same worker process."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from distributed import Client
from support.procs import free_port, stop, wait_for

from dtf_core import codeload, model
from dtf_core.cluster import security
from dtf_core.store import StoreReader
from dtf_core.worker import runner

pytestmark = pytest.mark.slow
PY = sys.executable
DTF = [PY, "-m", "dtf_core.cli"]

SUITE = """
[suite]
name = "fresh"
[[task]]
name = "nap"
kind = "benchmark"
function = "bench:nap"
repeat = 5
warmup = 1
"""
BENCH = "import time\n\n\ndef nap():\n    time.sleep({delay})\n"


@dataclass
class Cluster:
    tmp: Path
    scheduler: str
    url: str
    submitter: str
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, argv: list[str], log: str) -> None:
        with open(self.tmp / log, "wb") as fh:
            self.procs.append(
                subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=self.tmp)
            )

    def log(self, name: str) -> str:
        return (self.tmp / name).read_text(errors="replace")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("fresh")
    secret = tmp / "secret"
    security.write_secret(secret)
    token = security.issue_token(
        security.read_secret(secret), role="submitter", subject="ci", ttl_s=3600
    )
    sport, aport = free_port(), free_port()
    c = Cluster(tmp, f"tcp://127.0.0.1:{sport}", f"http://127.0.0.1:{aport}", token)
    try:
        c.start([PY, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                 "--port", str(sport), "--no-dashboard"], "scheduler.log")  # fmt: skip
        # Two threads: test (c) runs two runs' benchmarks at once in this one process.
        c.start([PY, "-m", "distributed.cli.dask_worker", c.scheduler, "--name", "w1",
                 "--nthreads", "2", "--no-nanny", "--no-dashboard",
                 "--preload", "dtf_core.worker_preload"], "worker.log")  # fmt: skip
        c.start([*DTF, "serve", "--scheduler", c.scheduler, "--db", str(tmp / "serve.duckdb"),
                 "--port", str(aport), "--secret-file", str(secret)], "serve.log")  # fmt: skip
        with Client(c.scheduler, timeout=30) as client:
            wait_for(lambda: len(client.scheduler_info()["workers"]) == 1, 60, "the worker")
        wait_for(lambda: _http_ok(c.url + "/v1/health"), 60, "serve")
        yield c
    finally:
        for p in reversed(c.procs):
            stop(p)


def _http_ok(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as r:
        return bool(r.status == 200)


def _worker_state(client: Client) -> tuple[list[str], list[str], int]:
    """The worker's sys.path, its dtf_run_* modules, and its process id."""

    def probe() -> tuple[list[str], list[str], int]:
        run_mods = [m for m in sys.modules if m.startswith("dtf_run_")]
        return list(sys.path), run_mods, os.getpid()

    (state,) = client.run(probe).values()
    return state


def _suite(root: Path, delay: float) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "bench.py").write_text(BENCH.format(delay=delay))
    (root / "suite.toml").write_text(SUITE)
    return root / "suite.toml"


def _sha(*files: Path) -> str:
    """What dtf records: `sha256sum FILES | sha256sum`, 12 hex."""
    lines = "".join(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()[:12]


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=root, capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return out.stdout.strip()


def _cli_run(c: Cluster, suite: Path, db: Path, report: Path) -> tuple[float, str]:
    out = subprocess.run(
        [*DTF, "run", str(suite), "--scheduler", c.scheduler, "--db", str(db),
         "--json", str(report), "--quiet"],
        capture_output=True, text=True, timeout=120, cwd=c.tmp,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr + c.log("worker.log")
    run_id = json.loads(report.read_text())["run_id"]
    with StoreReader(db) as store:
        median = store.benchmark_samples(run_id)["value"].median()
        (fingerprint,) = {a["code_fingerprint"] for a in store.attempts(run_id)}
    (task,) = json.loads(report.read_text())["tasks"]
    assert task["code_fingerprint"] == fingerprint  # the JSON report shows it too
    return float(median), str(fingerprint)


@pytest.mark.timeout(240)
def test_cli_run_twice_measures_the_changed_code(cluster: Cluster) -> None:
    c = cluster
    root = c.tmp / "cli-suite"
    suite = _suite(root, 0.005)
    have_git = shutil.which("git") is not None
    if have_git:
        _git(root, "init", "-q")
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", "v1")
    with Client(c.scheduler, timeout=30) as client:
        path0, _, pid = _worker_state(client)
        median1, print1 = _cli_run(c, suite, c.tmp / "cli.duckdb", c.tmp / "r1.json")
        path1, mods1, pid1 = _worker_state(client)
        sha1 = _sha(root / "bench.py")

        (root / "bench.py").write_text(BENCH.format(delay=0.060))
        if have_git:
            _git(root, "commit", "-q", "-am", "v2")
        median2, print2 = _cli_run(c, suite, c.tmp / "cli.duckdb", c.tmp / "r2.json")
        path2, mods2, pid2 = _worker_state(client)

    assert pid == pid1 == pid2  # one long-lived worker process measured both runs
    assert median1 < 0.04, median1
    assert median2 >= 0.05, f"run 2 measured the old code: median {median2}"
    assert print1 != print2
    assert print1.startswith(f"sha256:{sha1}")
    assert print2.startswith(f"sha256:{_sha(root / 'bench.py')}")
    if have_git:
        assert print2.endswith(f"git:{_git(root, 'rev-parse', 'HEAD')[:12]}")
    assert path0 == path1 == path2  # sys.path does not grow with every run
    assert mods1 == mods2 == []  # each run's modules left the worker at its end


def _submit(c: Cluster, suite: Path, report: Path) -> dict[str, Any]:
    out = subprocess.run(
        [*DTF, "submit", str(suite), "--coordinator", c.url, "--json", str(report), "--quiet"],
        capture_output=True, text=True, timeout=120, cwd=c.tmp,
        env={**os.environ, "DTF_TOKEN": c.submitter},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr + c.log("serve.log")
    summary: dict[str, Any] = json.loads(report.read_text())
    return summary


@pytest.mark.timeout(240)
def test_serve_measures_each_uploads_own_code(cluster: Cluster) -> None:
    c = cluster
    suite = _suite(c.tmp / "serve-suite", 0.005)
    first = _submit(c, suite, c.tmp / "s1.json")
    (suite.parent / "bench.py").write_text(BENCH.format(delay=0.060))
    second = _submit(c, suite, c.tmp / "s2.json")
    (b1,), (b2,) = first["benchmarks"], second["benchmarks"]
    assert b1["median"] < 0.04, b1
    assert b2["median"] >= 0.05, f"the second upload measured the first one's code: {b2}"
    (t1,), (t2,) = first["tasks"], second["tasks"]
    assert t1["code_fingerprint"] != t2["code_fingerprint"]
    assert t2["code_fingerprint"] == f"sha256:{_sha(suite.parent / 'bench.py')}"


SAME = "import time\n\n\ndef which():\n    time.sleep(0.15)\n    return {value}\n"


@pytest.mark.timeout(120)
def test_two_runs_modules_of_one_name_run_at_once_apart(cluster: Cluster) -> None:
    c = cluster
    roots = {}
    for rid, value in (("conc-a", 1), ("conc-b", 2)):
        roots[rid] = c.tmp / rid
        roots[rid].mkdir()
        (roots[rid] / "same.py").write_text(SAME.format(value=value))

    def payload(rid: str) -> model.TaskPayload:
        spec = model.TaskSpec(
            task_id="which", name="which", kind=model.TaskKind.BENCHMARK, root=str(roots[rid]),
            timeout=60, retries=0, function="same:which", repeat=6, warmup=0, unit="id",
        )  # fmt: skip
        return model.TaskPayload(rid, spec, 1, key=f"dtf-{rid}-which-a1")

    with Client(c.scheduler, timeout=30) as client:
        results: dict[str, model.AttemptResult] = {}

        # Submitted from two threads, as two coordinators of `serve` would.
        def go(rid: str) -> None:
            fut = client.submit(runner.execute_batch, [payload(rid)], key=f"dtf-{rid}-which-a1")
            (results[rid],) = fut.result(timeout=60)

        threads = [threading.Thread(target=go, args=(rid,)) for rid in roots]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
        a, b = results["conc-a"], results["conc-b"]
        dropped = client.run(codeload.forget, "conc-a")
        _, left, _ = _worker_state(client)
        client.run(codeload.forget, "conc-b")
    assert (a.outcome, b.outcome) == ("passed", "passed"), (a.message, b.message)
    assert a.started_at < b.finished_at and b.started_at < a.finished_at  # they overlapped
    assert a.samples == [1.0] * 6 and b.samples == [2.0] * 6
    assert a.code_fingerprint != b.code_fingerprint
    assert list(dropped.values()) == [1]  # conc-a's `same`, gone from sys.modules
    assert left and all(m.startswith("dtf_run_concb_") for m in left)
