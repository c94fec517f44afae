"""Issue 13, "Done when": an attacker with only a submitter token, against a loopback
deployment set up as docs/cluster.md says (`dtf-core token init`, `dtf-core
scheduler` with the worker key, one `dtf-core worker` with its token and the result
key, `dtf-core serve` with the API key), all real processes. One suite's tasks try
every route the issue found: code at import time, code in the scheduler (from the
worker's client, a fresh client, a raw rpc), a result that runs code when
unpickled, and the credentials named around the worker. Nothing may run in serve
or the scheduler, nothing found may open the API or admit a worker, and no attack
may end as a pass.

As root, the worker runs its tasks as uid 65534 (`--task-user`): the credential
hunt must find nothing. Elsewhere that test is skipped (a task running as the
worker's own user can read the worker's files: docs/security.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.procs import free_port, wait_for
from support.procs import stop as kill

from dtf_core.cluster import revocation, security
from dtf_core.errors import AuthError
from dtf_core.service import bundle
from dtf_core.service.client import CoordinatorClient

pytestmark = pytest.mark.slow
PY = sys.executable
DTF = [PY, "-m", "dtf_core.cli"]
TASK_USER = os.geteuid() == 0 and shutil.which("setpriv") is not None

# Each attack writes what it saw under MARKS (world-writable: tasks may run as
# nobody); a marker named after a pid tells which process ran the code.
BENCH = """
import asyncio, os, pathlib, sys
MARKS = pathlib.Path({marks!r})
(MARKS / f"import-bench-{{os.getpid()}}").write_text(str(os.getuid()))

class Boom:
    def __reduce__(self):
        return (os.system, (f"touch {{MARKS}}/unpickled-in-$PPID",))

def probe(dask_scheduler=None):
    (MARKS / f"ran-on-scheduler-{{os.getpid()}}").write_text("x")

def plain():
    # An attacker's check: did serve (or the scheduler) import this module?
    for mark in MARKS.glob("import-*"):
        pid = mark.name.rsplit("-", 1)[1]
        try:
            cmd = pathlib.Path(f"/proc/{{pid}}/cmdline").read_bytes()
        except OSError:
            continue
        if b" serve" in cmd.replace(b"\\0", b" ") or b"scheduler" in cmd:
            return None  # it did: the attack worked
    raise PermissionError("import-time code ran on workers only")

def crafted_result():
    # Code on the worker may patch the worker: make its next result a pickle bomb.
    from dtf_core.worker import wire
    honest = wire.result_to_plain
    def once(result):
        wire.result_to_plain = honest  # one crafted result, then honest again
        return Boom()
    wire.result_to_plain = once

def scheduler_code():
    from distributed import Client, get_client, get_worker
    from distributed.core import rpc
    from distributed.diagnostics.plugin import SchedulerPlugin
    from distributed.protocol.pickle import dumps
    from distributed.protocol.serialize import ToPickle
    address = get_worker().scheduler.address
    outcome = []
    def attempt(name, fn):
        try:
            fn()
            outcome.append(f"{{name}}: ran")
        except BaseException as exc:
            outcome.append(f"{{name}}: refused: {{type(exc).__name__}}: {{str(exc)[:150]}}")
    class Plugin(SchedulerPlugin):
        def start(self, scheduler):
            probe()
    async def raw(op, **msg):
        r = rpc(address)
        try:
            return await asyncio.wait_for(getattr(r, op)(**msg), 20)
        finally:
            await r.close_rpc()
    client = get_client()
    attempt("run_on_scheduler", lambda: client.run_on_scheduler(probe))
    attempt("scheduler_plugin", lambda: client.register_plugin(Plugin()))
    with Client(address, set_as_default=False, timeout=20) as fresh:
        attempt("fresh_client_graph", lambda: fresh.submit(probe, pure=False).result(20))
        attempt("fresh_client_bomb", lambda: fresh.submit(len, [Boom()], pure=False).result(20))
    attempt("raw_rpc_pickle", lambda: asyncio.run(raw("identity", x=ToPickle(Boom()))))
    attempt("raw_rpc_run_function",
            lambda: asyncio.run(raw("run_function", function=dumps(probe), args=dumps(()))))
    (MARKS / "scheduler-attempts").write_text("\\n".join(outcome))
    raise PermissionError("the scheduler ran none of it: " + "; ".join(outcome))

def credentials():
    from attack import hunt
    hunt.main("in-process")
"""

# Reads what the issue says a task can read: cmdline and environ of its process and
# every ancestor (and of every dtf process), the files they name, their open fds.
HUNT = r"""
import json, os, pathlib, re, sys
MARKS = pathlib.Path({marks!r})
SECRETS = re.compile(rb"eyJ[\w-]+\.[\w-]+\.[\w-]+|\b[0-9a-f]{{64}}\b")

def _read(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return b""
    try:
        return os.read(fd, 1 << 20)
    except OSError:
        return b""
    finally:
        os.close(fd)

def _ppid(pid):
    return int(_read(f"/proc/{{pid}}/stat").rsplit(b")", 1)[1].split()[1])

def main(label):
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        pid = _ppid(pid)
    for d in os.listdir("/proc"):
        cmd = _read(f"/proc/{{d}}/cmdline") if d.isdigit() else b""
        if b"dtf_core" in cmd or b"distributed.cli" in cmd:
            pids.add(int(d))
    blobs, places = [], 0
    for pid in sorted(pids):
        argv = _read(f"/proc/{{pid}}/cmdline").split(b"\0")
        blobs += [b" ".join(argv), _read(f"/proc/{{pid}}/environ")]
        for arg in argv:
            for path in (arg, b"/proc/%d/cwd/%s" % (pid, arg)):
                if arg and os.path.isfile(path):
                    blobs.append(_read(path))
        try:
            fds = os.listdir(f"/proc/{{pid}}/fd")
        except OSError:
            fds = []
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{{pid}}/fd/{{fd}}")
            except OSError:
                continue
            if target.startswith(("/", "pipe:")):
                blobs.append(_read(f"/proc/{{pid}}/fd/{{fd}}"))
        places += 1
    if label == "in-process":  # what the worker object itself still holds
        from distributed import get_worker
        w = get_worker()
        blobs += [repr(w.startup_information).encode(), repr([p.argv for p in w.preloads]).encode()]
    found = sorted({{m.decode() for b in blobs for m in SECRETS.findall(b)}})
    (MARKS / f"found-{{label}}.json").write_text(json.dumps({{"uid": os.getuid(), "found": found,
                                                             "processes": places}}))
    raise PermissionError(f"{{len(found)}} credential(s) found in {{places}} processes")

if __name__ == "__main__":
    main("subprocess")
"""

SUITE = """
[suite]
name = "attacks"
[defaults]
timeout = "90s"
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
[[task]]
name = "credentials"
kind = "benchmark"
function = "attack.bench:credentials"
requires = { DISK_GB = 1 }
repeat = 1
warmup = 0
[[task]]
name = "credentials-subprocess"
kind = "command"
command = ["@PYTHON@", "-m", "attack.hunt"]
"""


@pytest.fixture(scope="module")
def deployment() -> Iterator[dict]:
    # Not under pytest's tmp (0700): the task user must reach the uploaded suite
    # and the markers, never the keys.
    root = Path(tempfile.mkdtemp(prefix="dtf-trust-"))
    root.chmod(0o755)
    keys = dict(zip(("api", "worker", "result"), security.init_keys(root / "keys"), strict=True))
    api = security.read_secret(keys["api"])
    wkey = security.read_secret(keys["worker"])
    token = root / "w1.jwt"
    security.write_private(
        token, security.issue_token(wkey, role="worker", subject="w1", ttl_s=3600)
    )
    sport, aport = free_port(), free_port()
    sched, url = f"tcp://127.0.0.1:{sport}", f"http://127.0.0.1:{aport}"
    procs: list[subprocess.Popen] = []

    def start(argv: list[str], log: str) -> subprocess.Popen:
        with open(root / log, "w") as fh:
            p = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=root)
        procs.append(p)
        return p

    as_user = ["--task-user", "65534"] if TASK_USER else []
    try:
        sched_p = start([*DTF, "scheduler", "--port", str(sport), "--dashboard-address",
                         "127.0.0.1:0", "--secret-file", str(keys["worker"])], "scheduler.log")  # fmt: skip
        # --no-nanny: a nanny's multiprocessing re-executes the interpreter, which a
        # pyenv under /root keeps from the task user (setpriv handles only the first exec).
        worker_p = start([*DTF, "worker", sched, "--name", "w1", "--nthreads", "2", "--no-nanny",
                          "--token-file", str(token), "--result-key-file", str(keys["result"]),
                          *as_user], "worker.log")  # fmt: skip
        serve_p = start([*DTF, "serve", "--scheduler", sched, "--db", str(root / "dtf.duckdb"),
                         "--port", str(aport), "--secret-file", str(keys["api"]),
                         "--result-key-file", str(keys["result"]),
                         "--workdir", str(root / "uploads")], "serve.log")  # fmt: skip
        tokens = {
            r: security.issue_token(api, role=r, subject=f"{r}-1", ttl_s=3600)
            for r in ("viewer", "submitter", "admin")
        }
        viewer = CoordinatorClient(url, tokens["viewer"], timeout=20)
        wait_for(lambda: len(viewer.workers()) == 1, 90, "serve to see the worker")
        yield {
            "root": root, "url": url, "sched": sched, "tokens": tokens, "token": token,
            "keys": keys, "start": start,
            "pids": {"serve": serve_p.pid, "scheduler": sched_p.pid,
                     "worker-supervisor": worker_p.pid},
        }  # fmt: skip
    finally:
        for p in reversed(procs):
            kill(p)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def attacked(deployment: dict) -> dict:
    """The attack suite, submitted once with a submitter token and followed to its end."""
    d = deployment
    src, marks = d["root"] / "src", d["root"] / "marks"
    (src / "attack").mkdir(parents=True)
    marks.mkdir()
    marks.chmod(0o777)
    (src / "attack" / "__init__.py").write_text(
        f"import os, pathlib\npathlib.Path({str(marks)!r}, f'import-init-{{os.getpid()}}')"
        ".write_text(str(os.getuid()))\n"
    )
    (src / "attack" / "bench.py").write_text(BENCH.format(marks=str(marks)))
    (src / "attack" / "hunt.py").write_text(HUNT.format(marks=str(marks)))
    # The hunt needs only the standard library; a system interpreter is one the
    # task user can run even when this one sits under a root-only pyenv.
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python"
    (src / "suite.toml").write_text(SUITE.replace("@PYTHON@", python))
    client = CoordinatorClient(d["url"], d["tokens"]["submitter"], timeout=30)
    run = client.submit("suite.toml", bundle.pack(src, 10**6), {})
    events = list(client.follow(run["run_id"]))
    viewer = CoordinatorClient(d["url"], d["tokens"]["viewer"], timeout=20)
    found: set[str] = set()
    for f in marks.glob("found-*.json"):
        found |= set(json.loads(f.read_text())["found"])
    return {
        "end": events[-1], "tasks": viewer.tasks(run["run_id"]), "marks": marks,
        "names": {p.name for p in marks.iterdir()}, "found": found,
    }  # fmt: skip


def post_token(d: dict, token: str) -> int:
    req = urllib.request.Request(
        d["url"] + "/v1/tokens", method="POST",
        data=b'{"role": "admin", "subject": "attacker", "ttl": "1h"}',
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.timeout(300)
def test_a_submitted_suite_runs_code_on_workers_only(deployment: dict, attacked: dict) -> None:
    d, a = deployment, attacked
    names, tasks = a["names"], {t["task_id"]: t for t in a["tasks"]}
    not_workers = {str(d["pids"]["serve"]), str(d["pids"]["scheduler"])}
    # Import-time code (package __init__ and module) ran on the worker, never in serve.
    imported = {n for n in names if n.startswith("import-")}
    assert {n.split("-")[1] for n in imported} == {"init", "bench"}, names
    assert not {n.rsplit("-", 1)[1] for n in imported} & not_workers, (names, d["pids"])
    if TASK_USER:
        assert {(a["marks"] / n).read_text() for n in imported} == {"65534"}
    # Nothing ran in the scheduler, by any route; every route was refused.
    assert not any(n.startswith("ran-on-scheduler") for n in names), names
    attempts = dict(
        line.split(": refused: ", 1)
        for line in (a["marks"] / "scheduler-attempts").read_text().splitlines()
        if ": refused: " in line
    )
    assert "refuses 'run_function'" in attempts["run_on_scheduler"], attempts
    assert "refuses 'register_scheduler_plugin'" in attempts["scheduler_plugin"], attempts
    assert "deserialization of the task graph" in attempts["fresh_client_graph"], attempts
    assert "deserialization of the task graph" in attempts["fresh_client_bomb"], attempts
    assert "refused to unpickle posix.system" in attempts["raw_rpc_pickle"], attempts
    assert "refuses 'run_function'" in attempts["raw_rpc_run_function"], attempts
    # A result that runs code when unpickled ran nowhere but (at most) a worker.
    assert not {n.rsplit("-", 1)[1] for n in names if n.startswith("unpickled-in-")} & not_workers
    refused = [t for t in a["tasks"] if t["category"] == "security"]
    assert len(refused) == 1, a["tasks"]  # the poisoned result (whichever task sent it)
    # No attack reads as a pass, and the run says it failed.
    assert a["end"]["status"] == "failed", a["end"]
    assert {t["status"] for t in tasks.values()} == {"failed"}, a["tasks"]
    assert set(tasks) == {"import-time", "crafted-result", "scheduler-code", "credentials",
                          "credentials-subprocess"}  # fmt: skip
    # The scheduler logged its refusals, and no key in any log.
    log = (d["root"] / "scheduler.log").read_text()
    assert "refused" in log
    for f in d["keys"].values():
        secret = security.read_secret(f).decode()
        assert all(secret not in (d["root"] / n).read_text() for n in
                   ("scheduler.log", "serve.log", "worker.log"))  # fmt: skip


@pytest.mark.skipif(not TASK_USER, reason="tasks run as another user only when started as root")
@pytest.mark.timeout(300)
def test_tasks_find_no_credential(attacked: dict) -> None:
    reports = {p.name: json.loads(p.read_text()) for p in attacked["marks"].glob("found-*.json")}
    assert set(reports) == {"found-in-process.json", "found-subprocess.json"}, reports
    for r in reports.values():
        assert r["uid"] == 65534 and r["processes"] >= 3, r
    assert attacked["found"] == set(), attacked["found"]


@pytest.mark.timeout(180)
def test_nothing_found_opens_the_api_or_admits_a_worker(deployment: dict, attacked: dict) -> None:
    d = deployment
    wkey = security.read_secret(d["keys"]["worker"])
    # What a compromised scheduler could mint: refused by serve's API.
    minted = security.issue_token(wkey, role="admin", subject="scheduler", ttl_s=600)
    for token in (*attacked["found"], minted, d["token"].read_text().strip()):
        assert post_token(d, token) in (401, 403), token[:12]
    # Rogue workers with whatever was found, and with a copy of the real token.
    candidates = {t for t in attacked["found"] if t.startswith("eyJ")}
    candidates.add(d["token"].read_text().strip())
    for i, found in enumerate(sorted(candidates)):
        path = d["root"] / f"rogue-{i}.jwt"
        security.write_private(path, found)
        rogue = d["start"](
            [PY, "-m", "distributed.cli.dask_worker", d["sched"], "--name", f"rogue-{i}",
             "--nthreads", "1", "--no-nanny", "--no-dashboard", "--preload",
             "dtf_core.worker_preload", "--dtf-token-file", str(path)], f"rogue-{i}.log",
        )  # fmt: skip
        rogue.wait(timeout=60)
        assert rogue.returncode != 0
        assert "worker refused by the scheduler" in (d["root"] / f"rogue-{i}.log").read_text()
    assert "is in use by the connected worker" in (d["root"] / "scheduler.log").read_text()
    viewer = CoordinatorClient(d["url"], d["tokens"]["viewer"], timeout=20)
    assert {w["name"] for w in viewer.workers()} == {"w1"}


@pytest.mark.timeout(180)
def test_revoked_tokens_are_refused_by_serve_and_the_scheduler(deployment: dict) -> None:
    d = deployment
    api = security.read_secret(d["keys"]["api"])
    doomed = security.issue_token(api, role="viewer", subject="leaver", ttl_s=600)
    client = CoordinatorClient(d["url"], doomed, timeout=20)
    assert isinstance(client.runs(), list)
    out = subprocess.run(
        [*DTF, "token", "revoke", security.token_facts(api, doomed)[0],
         "--secret-file", str(d["keys"]["api"])],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    with pytest.raises(AuthError, match="revoked"):  # the next request, no restart
        client.runs()
    # A connected worker whose token is revoked is removed, and cannot come back.
    w2 = d["root"] / "w2.jwt"
    security.write_private(
        w2, security.issue_token(security.read_secret(d["keys"]["worker"]), role="worker",
                                 subject="w2", ttl_s=600),
    )  # fmt: skip
    sup = d["start"]([*DTF, "worker", d["sched"], "--name", "w2", "--nthreads", "1",
                      "--no-nanny", "--token-file", str(w2)], "w2.log")  # fmt: skip
    viewer = CoordinatorClient(d["url"], d["tokens"]["viewer"], timeout=20)
    wait_for(lambda: "w2" in {w["name"] for w in viewer.workers()}, 60, "w2 to join")
    t0 = time.monotonic()
    revoked = subprocess.run([*DTF, "token", "revoke", str(w2), "--secret-file",
                              str(d["keys"]["worker"])], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    assert sup.wait(timeout=60) == 2  # dtf-core worker stops on the refusal
    assert "token revoked" in (d["root"] / "w2.log").read_text()
    assert "w2" not in {w["name"] for w in viewer.workers()}
    assert time.monotonic() - t0 < 60
    assert revocation.revocation_file(d["keys"]["worker"]).stat().st_mode & 0o077 == 0


def test_task_environment_carries_no_credentials() -> None:
    env = {"DTF_WORKER_TOKEN": "x", "DTF_RESULT_KEY_FILE": "/k", "DTF_TOKEN": "t", "PATH": "/b"}
    kept = {k for k in env if not security.is_credential_env(k)}
    assert kept == {"PATH"}


@pytest.mark.timeout(120)
def test_one_secret_for_both_and_open_key_files_stop_at_start(tmp_path: Path) -> None:
    shared, loose = tmp_path / "secret", tmp_path / "loose.key"
    security.write_secret(shared)
    security.write_secret(loose)
    loose.chmod(0o644)
    sport, aport = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    try:
        # A plain `dask scheduler` with dtf's preload and a key anyone may read:
        # it stops (Dask alone would start it open, without the preload).
        with open(tmp_path / "open.log", "w") as fh:
            bad = subprocess.Popen(
                [PY, "-m", "distributed.cli.dask_scheduler", "--port", str(free_port()),
                 "--no-dashboard", "--preload", "dtf_core.scheduler_preload",
                 "--dtf-secret-file", str(loose)], stdout=fh, stderr=subprocess.STDOUT,
            )  # fmt: skip
        procs.append(bad)
        assert bad.wait(timeout=60) == 2
        assert f"chmod 600 {loose}" in (tmp_path / "open.log").read_text()
        # An old single-secret deployment: the scheduler and serve given one file.
        with open(tmp_path / "scheduler.log", "w") as fh:
            procs.append(subprocess.Popen(
                [*DTF, "scheduler", "--port", str(sport), "--dashboard-address", "127.0.0.1:0",
                 "--secret-file", str(shared)], stdout=fh, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        out = subprocess.run(
            [*DTF, "serve", "--scheduler", f"tcp://127.0.0.1:{sport}", "--port", str(aport),
             "--db", str(tmp_path / "s.duckdb"), "--secret-file", str(shared)],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert out.returncode == 2, out.stderr
        last = out.stderr.strip().splitlines()[-1]
        assert "checks worker tokens with serve's API key" in last and "worker.key" in last
    finally:
        for p in reversed(procs):
            kill(p)
