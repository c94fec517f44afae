"""Two real runs of a suite, the second slower and with a failing task, in a GitLab job:
the pull-request comment, GitLab's metrics report, `dtf-core report` rebuilding them, and the
badges, from the CLI and from a real `dtf-core serve` (public, then behind a token)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.procs import free_port, stop, wait_for

from dtf_core.cli import main
from dtf_core.cluster import security

SUITE = """
[suite]
name = "perfy"
[defaults]
timeout = "60s"
[[task]]
name = "nap"
kind = "benchmark"
function = "bench:nap"
repeat = 12
warmup = 1
[[task]]
name = "flag"
kind = "command"
command = ["python", "-c", "import os, sys; sys.exit(os.path.exists({flag!r}))"]
"""
BENCH = """
import pathlib, time

def nap():
    time.sleep(float((pathlib.Path(__file__).parent / "delay").read_text()))
"""


def invoke(*args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch):
    """The real command in this process (the machine is shared: each process start counts)."""
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(main, list(args))


def dtf(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GITLAB", "CI_"))}
    return subprocess.run(
        [sys.executable, "-m", "dtf_core.cli", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**base, "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("prout")
    flag = tmp / "fail"
    (tmp / "suite.toml").write_text(SUITE.format(flag=str(flag)))
    (tmp / "bench.py").write_text(textwrap.dedent(BENCH))
    (tmp / "delay").write_text("0.01")
    # The first run is the default branch's; the second, on a branch, is compared with it.
    first = dtf("run", "suite.toml", "--db", "h.duckdb", "-q", "--workers", "1", cwd=tmp,
                env={"GITLAB_CI": "true", "CI_COMMIT_REF_NAME": "main"})  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    # Three times as slow, and the command fails: a regression and a failure in one run.
    (tmp / "delay").write_text("0.03")
    flag.touch()
    (tmp / "reports").mkdir()
    second = dtf("run", "suite.toml", "--db", "h.duckdb", "-q", "--workers", "1",
                 "--pr-comment", "reports/pr.md", cwd=tmp,
                 env={"GITLAB_CI": "true", "CI_COMMIT_REF_NAME": "slow-it",
                      "CI_DEFAULT_BRANCH": "main"})  # fmt: skip
    assert second.returncode == 1, second.stdout + second.stderr
    ids = [line.split()[1] for line in (first.stdout + second.stdout).splitlines()]
    return {"dir": tmp, "first": ids[0], "second": ids[1]}


@pytest.mark.timeout(400)
def test_pr_comment_and_metrics_of_a_slower_failing_run(runs, monkeypatch):
    tmp = runs["dir"]
    assert isinstance(tmp, Path)
    comment = (tmp / "reports" / "pr.md").read_text()
    assert "FAILED" in comment.splitlines()[1]
    assert "1 passed, 1 failed" in comment
    assert "| `flag` |" in comment  # the task that failed, by its id
    assert f"**Regressions against run `{runs['first']}` (1)**" in comment
    (row,) = [ln for ln in comment.splitlines() if ln.startswith("| `nap")]
    assert row.endswith("| ▁█ |"), row  # the two runs of its history, slower last
    # In a GitLab job the metrics report is written where GitLab looks by default.
    metrics = (tmp / "metrics.txt").read_text().splitlines()
    assert metrics[-1] == "# EOF"
    for line in ('dtf_tests{outcome="failed"} 1', 'dtf_tests{outcome="passed"} 1',
                 "dtf_run_passed 0", "dtf_benchmark_regressions 1"):  # fmt: skip
        assert line in metrics
    assert any(ln.startswith('dtf_benchmark_median{benchmark="nap"') for ln in metrics)
    # `report` rebuilds both from the database.
    again = invoke("report", "--db", "h.duckdb", "--pr-comment", "pr2.md", "--metrics-report",
                   "m2.txt", "-o", "r.md", cwd=tmp, monkeypatch=monkeypatch)  # fmt: skip
    assert again.exit_code == 0, again.output
    assert (tmp / "pr2.md").read_text() == comment
    assert (tmp / "m2.txt").read_text().splitlines() == metrics
    bad = invoke("report", "--db", "h.duckdb", "--pr-comment", "nowhere/pr.md", cwd=tmp,
                 monkeypatch=monkeypatch)  # fmt: skip
    assert bad.exit_code == 2 and "nowhere/pr.md" in bad.stderr


def check_endpoint(doc: dict, label: str, message: str, color: str) -> None:
    assert doc == {"schemaVersion": 1, "label": label, "message": message, "color": color}


@pytest.mark.timeout(400)
def test_badges_from_the_cli(runs, monkeypatch):
    tmp = runs["dir"]
    assert isinstance(tmp, Path)
    expected = {
        "status": ("dtf", "failed", "red"),
        "passrate": ("tests", "50.0% (1/2)", "orange"),
        "perf": ("perf", "0 regressions", "brightgreen"),  # two runs: too few for a level shift
    }
    for kind, want in expected.items():
        out = invoke("badge", "--db", "h.duckdb", "--suite", "perfy", "--kind", kind,
                     "--output", f"{kind}.json", cwd=tmp, monkeypatch=monkeypatch)  # fmt: skip
        assert out.exit_code == 0, out.output
        check_endpoint(json.loads((tmp / f"{kind}.json").read_text()), *want)
    svg = dtf("badge", "--db", "h.duckdb", "--format", "svg", cwd=tmp)
    assert svg.returncode == 0, svg.stderr
    texts = [t.text for t in ET.fromstring(svg.stdout).iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["dtf", "dtf", "failed", "failed"]
    unknown = invoke("badge", "--db", "h.duckdb", "--suite", "nope", cwd=tmp,
                     monkeypatch=monkeypatch)  # fmt: skip
    assert unknown.exit_code == 2 and "no runs of suite 'nope'" in unknown.stderr


def get(url: str, token: str | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def serve(tmp: Path, spawn, *extra: str) -> tuple[str, subprocess.Popen]:
    port = free_port()
    argv = [sys.executable, "-m", "dtf_core.cli", "serve", "--start-scheduler", "--scheduler-port",
            str(free_port()), "--db", str(tmp / "h.duckdb"), "--port", str(port),
            "--secret-file", str(tmp / "secret"), "--worker-key-file", str(tmp / "worker.key"),
            *extra]  # fmt: skip
    log = open(tmp / f"serve-{port}.log", "wb")  # noqa: SIM115 (closed with the process)
    p = spawn(argv, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: get(url + "/v1/health")[0] == 200, 90, "serve to listen")
    return url, p


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_serve_answers_badges_without_a_token_unless_told(runs, spawn):
    tmp = runs["dir"]
    assert isinstance(tmp, Path)
    security.write_secret(tmp / "secret")
    security.write_secret(tmp / "worker.key")  # the scheduler's own key (docs/security.md)
    viewer = security.issue_token(
        security.read_secret(tmp / "secret"), role="viewer", subject="readme", ttl_s=600
    )
    url, proc = serve(tmp, spawn)
    status, body, kind = get(url + "/v1/badges/perfy.json")
    assert status == 200 and kind.startswith("application/json")
    check_endpoint(json.loads(body), "dtf", "failed", "red")
    status, body, _ = get(url + "/v1/badges/perfy.json?kind=passrate")
    assert (status, json.loads(body)["message"]) == (200, "50.0% (1/2)")
    status, body, kind = get(url + "/v1/badges/perfy.svg?kind=perf")
    assert status == 200 and kind.startswith("image/svg+xml")
    root = ET.fromstring(body)
    assert [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")][2] == "0 regressions"
    assert get(url + "/v1/badges/nope.json")[0] == 404
    assert get(url + "/v1/badges/perfy.json?kind=coverage")[0] == 400
    stop(proc)

    url, proc = serve(tmp, spawn, "--badges", "token")
    assert get(url + "/v1/badges/perfy.json")[0] == 401
    status, body, _ = get(url + "/v1/badges/perfy.json", viewer)
    assert status == 200
    check_endpoint(json.loads(body), "dtf", "failed", "red")
    stop(proc)
