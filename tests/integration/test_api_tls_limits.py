"""`dtf-core serve` over HTTPS with bounded uploads, with real processes on
127.0.0.1: `dtf-core scheduler`, one `dtf-core worker` (no GPU), and serve with
a certificate from `dtf-core tls certs` and small limits. `dtf-core submit`
verifies the certificate with --ca; each limit answers 413 or 429 in the API's
JSON shape; retention removes old upload directories, never a running run's."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.procs import free_port, wait_for
from support.procs import stop as kill

from dtf_core.cluster import security
from dtf_core.errors import OptionError, ServiceError
from dtf_core.service import bundle
from dtf_core.service.client import CoordinatorClient
from dtf_tui.sources import SourceError
from dtf_tui.sources.http import HttpSource

pytest.importorskip("cryptography")
pytestmark = pytest.mark.slow
DTF = [sys.executable, "-m", "dtf_core.cli"]
KEEP_FOR_S = 3  # serve --keep-uploads-for; retention runs every second here


@dataclass
class Api:
    tmp: Path
    url: str
    ca: str
    workdir: Path
    tokens: dict[str, str]
    procs: list[subprocess.Popen] = field(default_factory=list)

    def client(self, who: str) -> CoordinatorClient:
        return CoordinatorClient(self.url, self.tokens[who], timeout=20, ca_file=self.ca)

    def post(self, who: str | None, body: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
        """POST /v1/runs as ``who``: status, headers (lower case), the JSON answer."""
        req = urllib.request.Request(self.url + "/v1/runs", data=body, method="POST")
        if who:
            req.add_header("Authorization", f"Bearer {self.tokens[who]}")
        ctx = ssl.create_default_context(cafile=self.ca)
        try:
            with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
                return r.status, _lower(r.headers), json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _lower(exc.headers), json.loads(exc.read())

    def submit(self, suite: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*DTF, "submit", str(suite), "--coordinator", self.url, *args],
            capture_output=True, text=True, timeout=120, cwd=self.tmp,
            env={**os.environ, "DTF_TOKEN": self.tokens["a"], **env},
        )  # fmt: skip


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def upload(root: Path, suite: str = "suite.toml") -> bytes:
    archive = bundle.pack(root, 10**8)
    body = {"suite_path": suite, "archive": base64.b64encode(archive).decode(), "metadata": {}}
    return json.dumps(body).encode()


def make_suite(root: Path, task: str, files: dict[str, bytes] | None = None) -> Path:
    root.mkdir(parents=True)
    for name, data in (files or {}).items():
        (root / name).write_bytes(data)
    suite = root / "suite.toml"
    suite.write_text(f'[suite]\nname = "{root.name}"\n[[task]]\n{task}\n')
    return suite


QUICK = 'name = "quick"\nkind = "command"\ncommand = ["python", "-c", "print(1)"]'
# No worker has a GPU: the run stays running until cancelled.
WAITS = QUICK.replace('"quick"', '"waits"') + "\nrequires = { GPU = 1 }"


def old_upload(workdir: Path, name: str, marker: bool = True) -> Path:
    d = workdir / name
    d.mkdir(parents=True)
    (d / "suite.toml").write_text("[suite]\n")
    if marker:
        (d / bundle.MARKER).touch()
    month_ago = time.time() - 30 * 86400
    os.utime(d, (month_ago, month_ago))
    return d


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("https")
    ca, cert, key = (str(p) for p in security_files(tmp))
    # One key per job (docs/security.md): serve's API key, the scheduler's worker key.
    secret_file, worker_key, result_key = tmp / "api.key", tmp / "worker.key", tmp / "result.key"
    for f in (secret_file, worker_key, result_key):
        security.write_secret(f)
    secret = security.read_secret(secret_file)
    tokens = {
        who: security.issue_token(secret, role="submitter", subject=f"ci-{who}", ttl_s=3600)
        for who in ("a", "b", "c")
    }
    tokens["viewer"] = security.issue_token(secret, role="viewer", subject="v", ttl_s=3600)
    (tmp / "worker.jwt").write_text(
        security.issue_token(
            security.read_secret(worker_key), role="worker", subject="w", ttl_s=3600
        )
    )
    (tmp / "worker.jwt").chmod(0o600)
    workdir = tmp / "uploads"
    old_upload(workdir, "20200101-000000-old")
    old_upload(workdir, "not-ours", marker=False)
    sport, dport, aport = free_port(), free_port(), free_port()
    scheduler = f"tcp://127.0.0.1:{sport}"
    d = Api(tmp, f"https://127.0.0.1:{aport}", ca, workdir, tokens)

    def start(argv: list[str], log: str, **env: str) -> None:
        with open(tmp / log, "wb") as fh:
            d.procs.append(
                subprocess.Popen(
                    argv, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp, env={**os.environ, **env}
                )
            )

    try:
        start([*DTF, "scheduler", "--port", str(sport), "--dashboard-address",
               f"127.0.0.1:{dport}", "--secret-file", str(worker_key)], "scheduler.log")  # fmt: skip
        start([*DTF, "worker", scheduler, "--name", "w", "--nthreads", "1", "--no-nanny",
               "--token-file", str(tmp / "worker.jwt"), "--result-key-file", str(result_key)],
              "worker.log")  # fmt: skip
        start([*DTF, "serve", "--scheduler", scheduler, "--db", str(tmp / "dtf.duckdb"),
               "--port", str(aport), "--secret-file", str(secret_file),
               "--result-key-file", str(result_key), "--workdir", str(workdir),
               "--api-tls-cert", cert, "--api-tls-key", key, "--unschedulable-timeout", "600",
               "--upload-limit", "64kB", "--unpacked-limit", "512kB", "--entry-limit", "40",
               "--queue-limit", "2", "--submitter-queue-limit", "1",
               "--keep-uploads-for", f"{KEEP_FOR_S}s"], "serve.log",
              DASK_DTF__SERVICE__UPLOAD_PRUNE_INTERVAL="1s",
              DASK_DTF__SERVICE__QUEUE_RETRY_AFTER="1s")  # fmt: skip
        viewer = d.client("viewer")
        wait_for(lambda: len(viewer.workers()) == 1, 90, "serve (HTTPS) to see the worker")
        yield d
    finally:
        for p in reversed(d.procs):
            kill(p)


def security_files(tmp: Path) -> list[Path]:
    from dtf_core.cluster.tls import make_certs

    return make_certs(tmp / "tls", [])


@pytest.mark.timeout(240)
def test_submit_over_https_verifies_the_certificate(api: Api) -> None:
    suite = make_suite(api.tmp / "quick", QUICK)
    ok = api.submit(suite, "--ca", api.ca, "--json", str(api.tmp / "quick.json"), "--quiet")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    run_id = json.loads((api.tmp / "quick.json").read_text())["run_id"]
    assert ok.stdout.strip() == f"run {run_id} PASSED"
    # Without --ca the system's trust store does not know this CA: one line, exit 2.
    untrusted = api.submit(suite)
    assert untrusted.returncode == 2, untrusted.stderr
    line = untrusted.stderr.strip()
    assert "\n" not in line and "certificate" in line and "--ca FILE" in line, line
    assert api.url in line and api.tokens["a"] not in line
    # Plain HTTP to the HTTPS port (loopback, so the token may go): the handshake fails.
    plain = CoordinatorClient(api.url.replace("https:", "http:"), api.tokens["a"], timeout=20)
    with pytest.raises(ServiceError, match=r"does it serve https://\?"):
        plain.runs()
    # The console's attach mode trusts the same way.
    assert HttpSource(api.url, api.tokens["viewer"], ca_file=api.ca).poll().runs
    with pytest.raises(SourceError, match="certificate"):
        HttpSource(api.url, api.tokens["viewer"]).poll()
    with pytest.raises(OptionError, match="certificate"):
        CoordinatorClient(api.url, api.tokens["viewer"]).runs()
    # Retention: the old upload went at start, a directory without dtf's marker
    # stays, and the finished run's directory goes KEEP_FOR_S after the run.
    assert not (api.workdir / "20200101-000000-old").exists()
    assert (api.workdir / "not-ours").exists()
    wait_for(lambda: not (api.workdir / run_id).exists(), 30, "retention of the finished run")


@pytest.mark.timeout(120)
def test_each_upload_limit_answers_413_and_keeps_nothing(api: Api) -> None:
    before = set(os.listdir(api.workdir))
    cases = {
        "archive": ({"blob.bin": os.urandom(80_000)}, "--upload-limit"),  # gzip cannot shrink
        "entries": ({f"f{i}.txt": b"x" for i in range(45)}, "--entry-limit"),
        "bomb": ({"zeros.bin": bytes(600_000)}, "--unpacked-limit"),  # a few kB compressed
    }
    for name, (files, option) in cases.items():
        suite = make_suite(api.tmp / f"too-{name}", QUICK, files)
        status, _, answer = api.post("a", upload(suite.parent))
        assert (status, answer["status"]) == (413, 413), answer
        assert option in answer["error"], answer
    # A body past the limit is refused before it is held (read and thrown away, so
    # that the client, which sends it all first, reads the answer); a missing
    # token is answered first.
    big = upload(api.tmp / "too-archive") + b" " * 100_000
    assert api.post("a", big)[0] == 413
    status, headers, answer = api.post(None, big)
    assert (status, answer["status"]) == (401, 401) and "www-authenticate" in headers
    # `submit` prints the service's reason on one line and exits 2.
    out = api.submit(api.tmp / "too-entries" / "suite.toml", "--ca", api.ca)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert "--entry-limit" in out.stderr and "(HTTP 413)" in out.stderr
    assert set(os.listdir(api.workdir)) <= before  # nothing unpacked was kept


@pytest.mark.timeout(150)
def test_queue_limits_answer_429_and_retention_spares_running_runs(api: Api) -> None:
    suite = make_suite(api.tmp / "waits", WAITS)
    body = upload(suite.parent)
    accepted = []
    try:
        status, _, first = api.post("a", body)
        assert status == 201, first
        accepted.append(first["run_id"])
        # Submitter a has its one run: refused, with a hint when to try again.
        status, headers, answer = api.post("a", body)
        assert (status, answer["status"]) == (429, 429), answer
        assert headers["retry-after"] == "1" and "--submitter-queue-limit" in answer["error"]
        status, _, second = api.post("b", body)
        assert status == 201, second
        accepted.append(second["run_id"])
        # Two runs in the service: its whole queue, whoever asks.
        status, _, answer = api.post("c", body)
        assert status == 429 and "--queue-limit" in answer["error"], answer
        # `submit` tries again while dtf.service.submit-queue-wait lasts, then exits 3.
        out = api.submit(suite, "--ca", api.ca, DASK_DTF__SERVICE__SUBMIT_QUEUE_WAIT="3s")
        assert out.returncode == 3, out.stdout + out.stderr
        assert "trying again in 1s" in out.stdout + out.stderr
        assert "still busy after 3s of retries" in out.stderr
        assert "HTTP 429" in out.stderr.strip().splitlines()[-1]
        # Retention ran a few times past KEEP_FOR_S: the running runs keep their files.
        time.sleep(KEEP_FOR_S + 2)
        for run_id in accepted:
            assert api.client("viewer").run(run_id)["status"] == "running"
            assert (api.workdir / run_id / "suite.toml").is_file(), run_id
    finally:
        for run_id, who in zip(accepted, ("a", "b"), strict=False):
            api.client(who).cancel(run_id)
    for run_id in accepted:
        wait_for(lambda r=run_id: api.client("viewer").run(r)["status"] == "cancelled", 60, run_id)
        wait_for(lambda r=run_id: not (api.workdir / r).exists(), 30, f"retention of {run_id}")
    # The queue has room again.
    status, _, again = api.post("c", upload(api.tmp / "quick"))
    assert status == 201, again
