"""Trust domains with real processes on 127.0.0.1 (issue 13): a submitter runs
code on workers and nowhere else. `dtf-core scheduler` (worker key), one
`dtf-core worker`, `dtf-core serve` (API key: a different file), one suite whose
tasks attack serve, the scheduler and the other credentials."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

# procs.py lives in tests/ (the tests layout may move it; import it the way
# the tests beside it do).
from support.procs import free_port, wait_for
from support.procs import stop as kill

from dtf_core.cluster import security
from dtf_core.service import bundle
from dtf_core.service.client import CoordinatorClient

pytestmark = pytest.mark.slow
PY = sys.executable


# Each attack writes what it saw under MARKS; nothing here trusts the run's word alone.
BENCH = """
import os, pathlib
MARKS = pathlib.Path({marks!r})
(MARKS / f"import-bench-{{os.getpid()}}").write_text("bench imported")

class Boom:
    def __reduce__(self):
        return (os.system, (f"touch {{MARKS}}/unpickled-in-$PPID",))

def plain():
    return None

def crafted_result():
    # Code on the worker may patch the worker: make its next result a pickle bomb.
    from dtf_core.worker import wire
    honest = wire.result_to_plain
    def once(result):
        wire.result_to_plain = honest  # one crafted result, then honest again
        return Boom()
    wire.result_to_plain = once

def scheduler_code():
    from distributed import get_client
    import distributed
    client = get_client()
    outcome = []
    def probe(dask_scheduler=None):
        (MARKS / f"ran-on-scheduler-{{os.getpid()}}").write_text("x")
    try:
        client.run_on_scheduler(probe)
        outcome.append("run_on_scheduler ran")
    except Exception as exc:
        outcome.append(f"refused: {{exc}}")
    (MARKS / "scheduler-attempt").write_text("\\n".join(outcome))
    if "ran" in outcome[0]:
        raise SystemExit(0)
    raise RuntimeError("the scheduler refused run_on_scheduler")
"""

SUITE = """
[suite]
name = "attacks"
[defaults]
timeout = "60s"
retries = 0
[[task]]
name = "import-time"
kind = "benchmark"
function = "attack.bench:plain"
repeat = 1
warmup = 0
[[task]]
name = "crafted-result"
kind = "benchmark"
function = "attack.bench:crafted_result"
requires = { CPU = 1 }
repeat = 1
warmup = 0
[[task]]
name = "scheduler-code"
kind = "benchmark"
function = "attack.bench:scheduler_code"
requires = { MEM_GB = 1 }
repeat = 1
warmup = 0
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("trust")
    keys = {n: tmp / n for n in ("api.key", "worker.key", "result.key")}
    for f in keys.values():
        security.write_secret(f)
    api = security.read_secret(keys["api.key"])
    wkey = security.read_secret(keys["worker.key"])
    token = tmp / "worker.jwt"
    token.write_text(security.issue_token(wkey, role="worker", subject="w1", ttl_s=3600))
    sport, aport = free_port(), free_port()
    sched, url = f"tcp://127.0.0.1:{sport}", f"http://127.0.0.1:{aport}"
    procs: list[subprocess.Popen] = []

    def start(argv: list[str], log: str) -> subprocess.Popen:
        with open(tmp / log, "w") as fh:
            p = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp)
        procs.append(p)
        return p

    dtf = [PY, "-m", "dtf_core.cli"]
    try:
        sched_p = start([*dtf, "scheduler", "--port", str(sport), "--dashboard-address",
                         "127.0.0.1:0", "--secret-file", str(keys["worker.key"])], "scheduler.log")  # fmt: skip
        worker_p = start([*dtf, "worker", sched, "--name", "w1", "--nthreads", "2", "--no-nanny",
                          "--token-file", str(token),
                          "--result-key-file", str(keys["result.key"])], "worker.log")  # fmt: skip
        serve_p = start([*dtf, "serve", "--scheduler", sched, "--db", str(tmp / "dtf.duckdb"),
                         "--port", str(aport), "--secret-file", str(keys["api.key"]),
                         "--result-key-file", str(keys["result.key"])], "serve.log")  # fmt: skip
        tokens = {
            r: security.issue_token(api, role=r, subject=f"{r}-1", ttl_s=3600)
            for r in ("viewer", "submitter")
        }
        viewer = CoordinatorClient(url, tokens["viewer"], timeout=20)
        wait_for(lambda: len(viewer.workers()) == 1, 90, "serve to see the worker")
        yield {
            "tmp": tmp, "url": url, "sched": sched, "tokens": tokens, "token": token,
            "keys": keys, "pids": {"serve": serve_p.pid, "scheduler": sched_p.pid,
                                   "worker-supervisor": worker_p.pid},
            "start": start,
        }  # fmt: skip
    finally:
        for p in reversed(procs):
            kill(p)


def submit(d: dict, name: str) -> tuple[str, list[dict]]:
    root = d["tmp"] / name
    marks = d["tmp"] / f"{name}-marks"
    (root / "attack").mkdir(parents=True)
    marks.mkdir()
    (root / "attack" / "__init__.py").write_text(
        f"import os, pathlib\npathlib.Path({str(marks)!r}, f'import-init-{{os.getpid()}}')"
        ".write_text('x')\n"
    )
    (root / "attack" / "bench.py").write_text(BENCH.format(marks=str(marks)))
    (root / "suite.toml").write_text(SUITE)
    client = CoordinatorClient(d["url"], d["tokens"]["submitter"], timeout=30)
    run = client.submit("suite.toml", bundle.pack(root, 10**6), {})
    events = list(client.follow(run["run_id"]))
    assert events[-1]["type"] == "RunFinished"
    viewer = CoordinatorClient(d["url"], d["tokens"]["viewer"], timeout=20)
    return run["run_id"], viewer.tasks(run["run_id"])


@pytest.mark.timeout(180)
def test_a_submitted_suite_runs_code_on_workers_only(deployment: dict) -> None:
    d = deployment
    _, tasks = submit(d, "s1")
    marks = d["tmp"] / "s1-marks"
    by_name = {t["task_id"]: t for t in tasks}
    names = {p.name for p in marks.iterdir()}
    not_workers = {str(d["pids"]["serve"]), str(d["pids"]["scheduler"])}
    # (a) the benchmark module and its package ran, on the worker, never in serve.
    imported = {n for n in names if n.startswith("import-")}
    assert imported, names
    assert not {n.rsplit("-", 1)[1] for n in imported} & not_workers, (names, d["pids"])
    # (b) run_on_scheduler from a task: refused, and the task failed.
    assert not any(n.startswith("ran-on-scheduler") for n in names), names
    assert "refused" in (marks / "scheduler-attempt").read_text()
    assert by_name["scheduler-code"]["status"] != "passed"
    # (c) a result that runs code when unpickled: refused, a security failure.
    assert not any(n.startswith("unpickled-in-") for n in names), names
    # The patch poisons the next result its worker process sends, which may be
    # another task's (worker threads run batches side by side): that task ends
    # as a security failure, whichever it is, and the run does not pass.
    refused = [t for t in tasks if t["category"] == "security"]
    assert len(refused) == 1 and refused[0]["status"] != "passed", tasks
    assert refused[0]["task_id"] in ("crafted-result", "import-time"), refused


@pytest.mark.timeout(120)
def test_a_copied_worker_token_admits_no_second_worker(deployment: dict) -> None:
    d = deployment
    # (d) a rogue worker started with the connected worker's token.
    rogue = d["start"](
        [PY, "-m", "distributed.cli.dask_worker", d["sched"], "--name", "rogue",
         "--nthreads", "1", "--no-nanny", "--no-dashboard", "--preload",
         "dtf_core.worker_preload", "--dtf-token-file", str(d["token"])],
        "rogue.log",
    )  # fmt: skip
    rogue.wait(timeout=60)
    assert rogue.returncode != 0
    assert "is in use by the connected worker" in (d["tmp"] / "rogue.log").read_text()
    viewer = CoordinatorClient(d["url"], d["tokens"]["viewer"], timeout=20)
    assert {w["name"] for w in viewer.workers()} == {"w1"}


def test_task_environment_carries_no_credentials() -> None:
    env = {"DTF_WORKER_TOKEN": "x", "DTF_RESULT_KEY_FILE": "/k", "DTF_TOKEN": "t", "PATH": "/b"}
    kept = {k for k in env if not security.is_credential_env(k)}
    assert kept == {"PATH"}
