"""Cluster mode with real processes on 127.0.0.1: `dtf-core scheduler` (a stock
dask scheduler + dtf's preload), a plain `dask worker --preload` and a
`dtf-core worker` tagged GPU=1 (the GPU is the only thing not real), and
`dtf-core serve`; `dtf-core submit` from another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.procs import free_port, wait_for
from support.procs import stop as kill

from dtf_core.cluster import security
from dtf_core.errors import AuthError
from dtf_core.service.client import CoordinatorClient

pytestmark = pytest.mark.slow
PY = sys.executable


@dataclass
class Deployment:
    tmp: Path
    scheduler: str
    url: str
    tokens: dict[str, str]
    files: dict[str, Path]
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, argv: list[str], log: str) -> subprocess.Popen:
        with open(self.tmp / log, "wb") as fh:
            p = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=self.tmp)
        self.procs.append(p)
        return p

    def client(self, role: str) -> CoordinatorClient:
        return CoordinatorClient(self.url, self.tokens[role], timeout=20)

    def log(self, name: str) -> str:
        return (self.tmp / name).read_text(errors="replace")


def dask_worker(d: Deployment, name: str, token: Path, key: Path, *extra: str) -> list[str]:
    return [PY, "-m", "distributed.cli.dask_worker", d.scheduler, "--name", name,
            "--nthreads", "1", "--no-nanny", "--no-dashboard", *extra,
            "--preload", "dtf_core.worker_preload", "--dtf-token-file", str(token),
            "--dtf-result-key-file", str(key)]  # fmt: skip


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("cluster")
    # One key per job (docs/security.md): API tokens, worker admission, results.
    files = {n: tmp / n for n in ("api.key", "worker.key", "result.key", "evil.key")}
    for f in files.values():
        security.write_secret(f)
    api = security.read_secret(files["api.key"])
    wkey = security.read_secret(files["worker.key"])
    tokens = {
        role: security.issue_token(api, role=role, subject=f"{role}-1", ttl_s=3600)
        for role in ("viewer", "submitter", "admin")
    }
    # One token per worker: a token admits one live worker at a time.
    tokens["worker"] = security.issue_token(wkey, role="worker", subject="worker-1", ttl_s=3600)
    tokens["worker2"] = security.issue_token(wkey, role="worker", subject="gpu", ttl_s=3600)
    tokens["worker3"] = security.issue_token(wkey, role="worker", subject="evil", ttl_s=3600)
    tokens["submitter2"] = security.issue_token(api, role="submitter", subject="other", ttl_s=3600)
    tokens["expired"] = security.issue_token(api, role="admin", subject="x", ttl_s=60, now=1e9)
    tokens["expired-worker"] = security.issue_token(
        wkey, role="worker", subject="w", ttl_s=60, now=1e9
    )
    # What a compromised scheduler could mint with the only key it holds.
    tokens["scheduler-admin"] = security.issue_token(wkey, role="admin", subject="s", ttl_s=3600)
    for name in ("worker", "worker2", "worker3", "expired-worker", "scheduler-admin"):
        files[f"{name}.jwt"] = tmp / f"{name}.jwt"
        security.write_private(files[f"{name}.jwt"], tokens[name])
    sport, dport, aport = free_port(), free_port(), free_port()
    d = Deployment(tmp, f"tcp://127.0.0.1:{sport}", f"http://127.0.0.1:{aport}", tokens, files)
    dtf = [PY, "-m", "dtf_core.cli"]
    try:
        d.start([*dtf, "scheduler", "--port", str(sport), "--dashboard-address",
                 f"127.0.0.1:{dport}", "--secret-file", str(files["worker.key"])], "scheduler.log")  # fmt: skip
        d.start(dask_worker(d, "cpu", files["worker.jwt"], files["result.key"]), "cpu.log")
        d.start([*dtf, "worker", d.scheduler, "--name", "gpu", "--nthreads", "1", "-r", "GPU=1",
                 "--no-nanny", "--token-file", str(files["worker2.jwt"]),
                 "--result-key-file", str(files["result.key"])], "gpu.log")  # fmt: skip
        d.start([*dtf, "serve", "--scheduler", d.scheduler, "--db", str(tmp / "dtf.duckdb"),
                 "--port", str(aport), "--secret-file", str(files["api.key"]),
                 "--result-key-file", str(files["result.key"])], "serve.log")  # fmt: skip
        viewer = d.client("viewer")
        wait_for(lambda: len(viewer.workers()) == 2, 60, "serve to see both workers")
        yield d
    finally:
        for p in reversed(d.procs):
            kill(p)


SUITE = """
[suite]
name = "cluster"
[defaults]
timeout = "60s"
retries = 2
[[task]]
name = "echo"
kind = "command"
command = ["python", "-c", "print({i})"]
params = { i = [1, 2, 3, 4] }
[[task]]
name = "on-gpu"
kind = "command"
requires = { GPU = 1 }
command = ["python", "-c", "import os; print(os.environ['DTF_WORKER'])"]
params = { k = [1, 2, 3] }
[[task]]
name = "bench"
kind = "benchmark"
function = "benchmod:work"
repeat = 3
warmup = 0
"""


def write_suite(root: Path, body: str = SUITE) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "benchmod.py").write_text("def work():\n    return sum(range(1000))\n")
    suite = root / "suite.toml"
    suite.write_text(textwrap.dedent(body))
    return suite


@pytest.mark.timeout(90)
def test_submit_from_another_process_routes_gpu_tasks_and_reports(deployment: Deployment) -> None:
    d = deployment
    suite = write_suite(d.tmp / "s1")
    out = subprocess.run(
        [PY, "-m", "dtf_core.cli", "submit", str(suite), "--coordinator", d.url,
         "--json", str(d.tmp / "r.json"), "--junit", str(d.tmp / "r.xml"),
         "--report", str(d.tmp / "r.md"), "--html", str(d.tmp / "r.html"),
         "--pr-comment", str(d.tmp / "pr.md"), "--metrics-report", str(d.tmp / "m.txt")],
        capture_output=True, text=True, timeout=80, cwd=d.tmp,
        env={**os.environ, "DTF_TOKEN": d.tokens["submitter"]},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASSED" in out.stderr
    summary = json.loads((d.tmp / "r.json").read_text())
    assert summary["status"] == "passed" and summary["counts"]["passed"] == 8
    assert "<testsuites" in (d.tmp / "r.xml").read_text()
    assert "cluster" in (d.tmp / "r.md").read_text()
    # The CI files come from the service's summary, as `run` writes them.
    assert "dtf: cluster: PASSED" in (d.tmp / "pr.md").read_text()
    assert 'dtf_tests{outcome="passed"} 8' in (d.tmp / "m.txt").read_text().splitlines()
    assert "<svg" in (d.tmp / "r.html").read_text() or "<html" in (d.tmp / "r.html").read_text()
    tasks = d.client("viewer").tasks(summary["run_id"])
    gpu = [t for t in tasks if t["name"] == "on-gpu"]
    assert len(gpu) == 3 and {t["worker"] for t in gpu} == {"gpu"}
    assert {t["status"] for t in tasks} == {"passed"}
    run = d.client("viewer").run(summary["run_id"])
    assert run["metadata"]["submitted_by"] == "submitter-1"
    assert d.client("viewer").analysis(summary["run_id"])["benchmarks"][0]["n"] == 3
    # Worker health: judged by the run, in its report and in /v1/workers.
    assert {w["name"]: w["health"]["state"] for w in summary["workers"]} == {
        "cpu": "healthy", "gpu": "healthy"}  # fmt: skip
    for w in d.client("viewer").workers():
        assert w["health"] == "healthy" and w["health_reason"] == ""
        assert w["sample"]["disk_free_bytes"] > 0  # sampled on the worker, sent with heartbeats


@pytest.mark.timeout(120)
def test_plan_asks_the_service_for_its_workers(deployment: Deployment) -> None:
    d = deployment
    suite = write_suite(d.tmp / "plan")
    tpu = write_suite(d.tmp / "plan-tpu", SUITE.replace("GPU = 1", "TPU = 1"))
    token = d.tmp / "viewer.jwt"
    token.write_text(d.tokens["viewer"])

    def plan(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PY, "-m", "dtf_core.cli", "plan", str(path), "--coordinator", d.url,
             "--token-file", str(token), "--format", "json"],
            capture_output=True, text=True, timeout=100, cwd=d.tmp,
        )  # fmt: skip

    ok = plan(suite)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    units = json.loads(ok.stdout)["units"]
    assert {tuple(u["workers"]) for u in units if u["requires"]} == {("gpu",)}
    assert all(set(u["workers"]) == {"cpu", "gpu"} for u in units if not u["requires"])
    never = plan(tpu)
    assert never.returncode == 2
    assert "3 of 8 unit(s) can never be scheduled" in never.stderr
    assert "no worker has TPU=1" in never.stderr


@pytest.mark.timeout(60)
def test_workers_with_bad_tokens_never_join(deployment: Deployment) -> None:
    d = deployment
    f = d.files
    expired = d.start(
        [PY, "-m", "dtf_core.cli", "worker", d.scheduler, "--name", "late", "--no-nanny",
         "--token-file", str(f["expired-worker.jwt"])], "late.log",
    )  # fmt: skip
    api_token = d.start(dask_worker(d, "api", f["scheduler-admin.jwt"], f["result.key"]), "api.log")
    no_token = d.start(
        [PY, "-m", "distributed.cli.dask_worker", d.scheduler, "--name", "anon", "--no-nanny",
         "--no-dashboard"], "anon.log",
    )  # fmt: skip
    for p in (expired, api_token, no_token):
        p.wait(timeout=45)
    # dtf-core worker does not retry a refusal; plain dask workers exit 1.
    assert expired.returncode == 2
    assert "token expired; not restarting" in d.log("late.log")
    assert api_token.returncode != 0 and "wrong kind of token" in d.log("api.log")
    assert no_token.returncode != 0 and "no dtf worker token" in d.log("anon.log")
    names = {w["name"] for w in d.client("viewer").workers()}
    assert names == {"cpu", "gpu"}
    sched = d.log("scheduler.log")
    assert "worker refused" in sched and d.tokens["scheduler-admin"] not in sched


def status_of(d: Deployment, method: str, path: str, token: str | None, body: bytes | None = None):  # type: ignore[no-untyped-def]
    req = urllib.request.Request(d.url + path, data=body, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.timeout(60)
def test_api_refuses_bad_tokens_and_roles(deployment: Deployment) -> None:
    d = deployment
    t = d.tokens
    assert status_of(d, "GET", "/v1/health", None)[0] == 200
    for token in (None, "garbage", t["expired"], t["worker"], t["scheduler-admin"]):
        code, body = status_of(d, "GET", "/v1/runs", token)
        assert code == 401, body
        assert "error" in json.loads(body)
        if token:
            assert token not in body
    assert status_of(d, "GET", "/v1/runs", t["viewer"])[0] == 200
    assert status_of(d, "POST", "/v1/runs", t["viewer"], b"{}")[0] == 403
    assert status_of(d, "POST", "/v1/tokens", t["submitter"], b"{}")[0] == 403
    # An admin token minted with the worker admission key (a compromised scheduler).
    assert status_of(d, "POST", "/v1/tokens", t["scheduler-admin"], b"{}")[0] == 401
    code, body = status_of(
        d, "POST", "/v1/tokens", t["admin"], b'{"role": "viewer", "subject": "bob", "ttl": "1h"}'
    )
    assert code == 201
    assert d.client("viewer").health()["api"] == 1
    issued = CoordinatorClient(d.url, json.loads(body)["token"])
    assert isinstance(issued.runs(), list)
    with pytest.raises(AuthError, match="HTTP 403"):
        issued.submit("suite.toml", b"", {})
    # Owners cancel their runs; other submitters may not; admins may.
    suite = write_suite(
        d.tmp / "slow",
        '[suite]\nname = "slow"\n[[task]]\nname = "nap"\nkind = "command"\n'
        'command = ["python", "-c", "import time; time.sleep(60)"]\n',
    )
    from dtf_core.service import bundle

    run = d.client("submitter").submit("suite.toml", bundle.pack(suite.parent, 10**6), {})
    with pytest.raises(AuthError, match="HTTP 403"):
        d.client("submitter2").cancel(run["run_id"])
    assert d.client("admin").cancel(run["run_id"])["status"] == "cancelling"
    wait_for(lambda: d.client("viewer").run(run["run_id"])["status"] == "cancelled", 30, "cancel")
    # A refused token on the command line: one line, non-zero exit.
    out = subprocess.run(
        [PY, "-m", "dtf_core.cli", "submit", str(suite), "--coordinator", d.url,
         "--token", t["expired"]],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "token expired" in out.stderr
    assert t["expired"] not in out.stderr
    assert t["expired"] not in d.log("serve.log") and t["admin"] not in d.log("serve.log")


@pytest.mark.timeout(90)
def test_tampered_results_are_rejected_and_retried_elsewhere(deployment: Deployment) -> None:
    d = deployment
    # A worker with a valid token whose results do not verify: a compromised or
    # misconfigured host. It signs with the wrong key.
    evil = d.start(
        dask_worker(d, "evil", d.files["worker3.jwt"], d.files["evil.key"], "--nthreads", "2"),
        "evil.log",
    )
    try:
        viewer = d.client("viewer")
        wait_for(lambda: "evil" in {w["name"] for w in viewer.workers()}, 30, "evil to join")
        suite = write_suite(
            d.tmp / "s2",
            '[suite]\nname = "tamper"\n[defaults]\nretries = 2\n[[task]]\nname = "t"\n'
            'kind = "command"\ncommand = ["python", "-c", "print({i})"]\n'
            "params = { i = [1, 2, 3, 4, 5, 6, 7, 8] }\n",
        )
        from dtf_core.service import bundle

        client = d.client("submitter")
        run = client.submit("suite.toml", bundle.pack(suite.parent, 10**6), {})
        events = list(client.follow(run["run_id"]))
        assert events[-1]["type"] == "RunFinished" and events[-1]["status"] == "passed"
        errors = viewer.errors(run["run_id"])
        assert errors and {e["category"] for e in errors} == {"security"}
        assert {e["worker"] for e in errors} == {"evil"}
        tasks = viewer.tasks(run["run_id"])
        assert len(tasks) == 8 and "evil" not in {t["worker"] for t in tasks}
        assert {t["status"] for t in tasks} == {"passed"}
    finally:
        kill(evil)
