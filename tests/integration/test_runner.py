"""The worker side: real subprocesses, real pytest, real files, a real LocalCluster."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import dask.config
import psutil
import pytest
from support.factories import task_spec

from dtf_core import codeload, model
from dtf_core.testing import junitxml
from dtf_core.worker import runner

SAMPLE_TESTS = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("fixture boom")

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown boom")

def test_pass(): pass
def test_fail(): assert 1 == 2
def test_skip(): pytest.skip("nope")
@pytest.mark.xfail(reason="known")
def test_xfail(): assert 0
@pytest.mark.xfail(reason="known")
def test_xpass(): pass
def test_error_in_fixture(broken): pass
def test_fail_then_teardown_error(bad_teardown): assert 0
@pytest.mark.parametrize("v", [1.5, "a.b"])
def test_param(v): pass

class TestGroup:
    def test_in_class(self): pass
    @pytest.mark.dtf(GPU=1)
    def test_marked(self): pass
"""


def spec(kind: str, root: Path, **kw: Any) -> model.TaskSpec:
    return task_spec(f"{kind}-task", kind, root=root, **{"timeout": 30.0, **kw})


def payload(s: model.TaskSpec, key: str = "k-1", **kw: Any) -> model.TaskPayload:
    return model.TaskPayload(run_id="run-1", spec=s, attempt=1, key=key, **kw)


def command(tmp_path: Path, code: str, **kw: Any) -> model.AttemptResult:
    s = spec("command", tmp_path, command=["python", "-c", textwrap.dedent(code)], **kw)
    return runner.execute(payload(s))


def gone(pid: int) -> bool:
    """Dead or a zombie (an orphan's zombie waits for whoever reaps in this container)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for(predicate: Any, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


# ------------------------------------------------------------------ commands
def test_command_passes_with_env_cwd_and_metrics(tmp_path: Path) -> None:
    res = command(
        tmp_path,
        """
        import os
        print(os.getcwd(), os.environ["DTF_RUN_ID"], os.environ["DTF_TASK_ID"],
              os.environ["DTF_ATTEMPT"], os.environ["DTF_WORKER"], os.environ["FOO"])
        x = bytearray(50 * 2**20)
        sum(range(3_000_000))
        """,
        env={"FOO": "bar"},
    )
    assert res.outcome == "passed" and res.category is None and res.exit_code == 0
    host = socket.gethostname()
    assert res.stdout_tail.split() == [str(tmp_path), "run-1", "command-task", "1", host, "bar"]
    assert res.worker == host and res.hardware and res.worker_info["hostname"] == host
    assert res.wall_s > 0 and res.cpu_s > 0
    assert res.peak_rss_bytes > 50 * 2**20
    assert res.started_at <= res.finished_at


def test_command_exit_codes(tmp_path: Path) -> None:
    res = command(tmp_path, "import sys; print('oops', file=sys.stderr); sys.exit(3)")
    assert (res.outcome, res.category, res.exit_code) == ("failed", "test-failure", 3)
    assert res.message == "exited 3" and res.stderr_tail == "oops\n"

    res = command(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert (res.outcome, res.exit_code, res.message) == ("failed", -15, "killed by SIGTERM")

    s = spec("command", tmp_path, command=["no-such-program-dtf"])
    res = runner.execute(payload(s))
    assert (res.outcome, res.category, res.exit_code) == ("failed", "bad-spec", 127)

    s = spec("command", tmp_path, command=["sh", "-c", "exit 126"], cwd=str(tmp_path))
    assert runner.execute(payload(s)).category == "bad-spec"


def test_output_tails_keep_the_end(tmp_path: Path) -> None:
    with dask.config.set({"dtf.runner.output-tail": 100}):
        res = command(
            tmp_path,
            "import sys; print('a' * 100_000 + 'END'); print('é' * 5000 + 'ERR', file=sys.stderr)",
        )
    assert len(res.stdout_tail) == 100 and res.stdout_tail.endswith("aEND\n")
    assert len(res.stderr_tail) == 100 and res.stderr_tail.endswith("éERR\n")


@pytest.mark.timeout(60)
def test_timeout_kills_group_and_setsid_grandchild(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = f"""
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # forces the SIGKILL path
        same_group = subprocess.Popen(["sleep", "60"])
        escaped = subprocess.Popen([sys.executable, "-c",
            "import os, time; os.setsid(); time.sleep(60)"])
        time.sleep(0.3)  # let the grandchild call setsid
        open({str(pids)!r}, "w").write(f"{{same_group.pid}} {{escaped.pid}}")
        time.sleep(60)
    """
    t0 = time.monotonic()
    with dask.config.set({"dtf.runner.kill-grace": "0.5s"}):
        res = command(tmp_path, code, timeout=2.0)
    assert time.monotonic() - t0 < 10
    assert (res.outcome, res.category) == ("timed_out", "timeout")
    assert res.exit_code == -9
    child, grandchild = (int(p) for p in pids.read_text().split())
    assert wait_for(lambda: gone(child) and gone(grandchild), 5)


def test_no_leftover_after_normal_exit(tmp_path: Path) -> None:
    pidfile = tmp_path / "bg"
    s = spec("command", tmp_path, command=["sh", "-c", f"sleep 30 & echo $! > {pidfile}"])
    res = runner.execute(payload(s))
    assert res.outcome == "passed"
    assert wait_for(lambda: gone(int(pidfile.read_text())), 5)


def test_execute_never_raises(tmp_path: Path) -> None:
    bad = model.TaskSpec(
        task_id="t",
        name="t",
        kind="nonsense",
        root=str(tmp_path),
        timeout=1,
        retries=0,  # type: ignore[arg-type]
    )
    res = runner.execute(payload(bad))
    assert (res.outcome, res.category) == ("error", "infrastructure")
    assert "nonsense" in res.message


# -------------------------------------------------------------------- pytest
def pytest_summary(directory: Path) -> dict[str, int]:
    """Counts from pytest's own terminal summary line."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(directory), "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, cwd=directory, timeout=60,
    )  # fmt: skip
    last = proc.stdout.strip().splitlines()[-1]
    found = re.findall(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?)", last)
    return {("error" if name.startswith("error") else name): int(n) for n, name in found}


@pytest.mark.timeout(60)
def test_pytest_counts_equal_pytests_own(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_sample.py").write_text(SAMPLE_TESTS)
    res = runner.execute(payload(spec("pytest", tmp_path, path=str(tmp_path / "tests"))))
    expected = pytest_summary(tmp_path)
    assert expected == {
        "passed": 5, "failed": 2, "skipped": 1, "xfailed": 1, "xpassed": 1, "error": 2,
    }  # fmt: skip
    assert junitxml.counts(res.tests) == expected
    assert (res.outcome, res.category, res.exit_code) == ("failed", "test-failure", 1)
    assert "2 failed" in res.message
    ids = {t.nodeid for t in res.tests}
    assert "tests/test_sample.py::TestGroup::test_marked" in ids
    assert "tests/test_sample.py::test_param[a.b]" in ids
    assert "PytestUnknownMarkWarning" not in res.stdout_tail  # the dtf marker is registered

    # Rerun only the failures, as the coordinator does for rerun_failures.
    failed = sorted({t.nodeid for t in res.tests if t.outcome in ("failed", "error")})
    rerun = runner.execute(
        payload(spec("pytest", tmp_path, path=str(tmp_path / "tests")), only_nodeids=failed)
    )
    assert {t.nodeid for t in rerun.tests} == set(failed)
    assert junitxml.counts(rerun.tests) == {"failed": 2, "error": 2}


def test_pytest_passing_and_no_tests(tmp_path: Path) -> None:
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    res = runner.execute(payload(spec("pytest", tmp_path, path=str(tmp_path))))
    assert (res.outcome, res.category, res.exit_code) == ("passed", None, 0)
    assert [(t.nodeid, t.outcome) for t in res.tests] == [("test_ok.py::test_ok", "passed")]

    s = spec("pytest", tmp_path, path=str(tmp_path), pytest_args=["-k", "nothing_matches"])
    res = runner.execute(payload(s))
    assert (res.outcome, res.message, res.exit_code) == ("skipped", "no tests collected", 5)


# ---------------------------------------------------------------- benchmarks
BENCH = """
import time
calls = []

def work(n=1000, tag=None):
    calls.append(tag)
    return sum(range(n))

def throughput():
    return 1234.5

def boom():
    raise ValueError("bad input")

def slow():
    time.sleep(0.1)
"""


@pytest.fixture
def bench_root(tmp_path: Path) -> tuple[Path, str]:
    module = f"bench_{tmp_path.name.replace('-', '_')}"  # unique: sys.modules is per process
    (tmp_path / f"{module}.py").write_text(BENCH)
    return tmp_path, module


def bench(root: Path, function: str, **kw: Any) -> model.AttemptResult:
    return runner.execute(payload(spec("benchmark", root, function=function, **kw)))


def test_benchmark_samples(bench_root: tuple[Path, str]) -> None:
    root, mod = bench_root
    res = bench(root, f"{mod}:work", repeat=7, warmup=3, params={"n": 10, "tag": "x"})
    assert (res.outcome, res.category, res.unit) == ("passed", None, "s")
    assert len(res.samples) == 7 and all(s > 0 for s in res.samples)
    ran = codeload.space_for("run-1", str(root)).import_module(mod)  # the run's own copy
    assert len(ran.calls) == 10  # warmup ran, but is not in the samples
    assert res.peak_rss_bytes > 0 and res.cpu_s >= 0

    res = bench(root, f"{mod}:throughput", repeat=3, unit="ops/s")
    assert (res.samples, res.unit) == ([1234.5] * 3, "ops/s")

    res = bench(root, f"{mod}:work", repeat=2, unit="items")  # returns an int: the sample
    assert res.samples == [sum(range(1000))] * 2

    res = bench(root, f"{mod}:slow", repeat=1, unit="ops/s")  # no number with a custom unit
    assert (res.outcome, res.category) == ("failed", "bad-spec")


def test_benchmark_failures(bench_root: tuple[Path, str]) -> None:
    root, mod = bench_root
    res = bench(root, f"{mod}:boom")
    assert (res.outcome, res.category) == ("failed", "test-failure")
    assert res.message == "ValueError: bad input"
    assert "Traceback" in res.stderr_tail and "in boom" in res.stderr_tail

    for function in ("no_such_module_dtf:fn", f"{mod}:missing", "not-a-function-ref"):
        res = bench(root, function)
        assert (res.outcome, res.category) == ("error", "infrastructure"), function
        assert res.message.startswith("import failed on the worker")


def test_benchmark_cooperative_timeout(bench_root: tuple[Path, str]) -> None:
    root, mod = bench_root
    res = bench(root, f"{mod}:slow", repeat=100, warmup=0, timeout=0.35)
    assert (res.outcome, res.category) == ("timed_out", "timeout")
    assert 2 <= len(res.samples) <= 5
    assert res.message == f"timed out after {len(res.samples)} of 100 samples"


def test_execute_batch_is_fast(bench_root: tuple[Path, str]) -> None:
    root, mod = bench_root
    s = spec("benchmark", root, function=f"{mod}:work", params={"n": 1})
    payloads = [
        model.TaskPayload("run-1", s, 1, key="batch-1") for _ in range(1000)
    ]  # default repeat=10, warmup=1
    runner.execute_batch(payloads[:1])  # the first call imports and detects hardware
    t0 = time.perf_counter()
    results = runner.execute_batch(payloads)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.5, elapsed
    assert len(results) == 1000 and all(r.outcome == "passed" for r in results)
    assert all(len(r.samples) == 10 for r in results)
    assert results[0].worker_info and not any(r.worker_info for r in results[1:])


# ------------------------------------------------------- reaper on a cluster
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_reaper_kills_subprocess_of_cancelled_future(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    pidfile = tmp_path / "pid"
    code = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    s = spec("command", tmp_path, command=["python", "-c", code], timeout=60.0)
    key = "dtf-test-reaper-a1"
    with (
        LocalCluster(
            n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(runner.ProcessGroupReaper(), name="dtf-reaper")
        fut = client.submit(runner.execute_batch, [payload(s, key=key)], key=key, pure=False)
        assert wait_for(lambda: pidfile.exists() and pidfile.read_text(), 15)
        pid = int(pidfile.read_text())
        assert not gone(pid)
        fut.cancel()
        assert wait_for(lambda: gone(pid), 5)
        # The worker's only thread is free again.
        quick = spec("command", tmp_path, command=["python", "-c", "print('next')"])
        nxt = client.submit(runner.execute_batch, [payload(quick, key="k2")], key="k2")
        assert nxt.result(timeout=15)[0].stdout_tail == "next\n"
