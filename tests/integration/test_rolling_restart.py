"""`systemctl restart`-style stops of `dtf-core serve` during a run, on the
network-namespace test bed (tests/support/testbed.py): the scheduler and serve
on host a, workers on b and c, `dtf-core submit --follow-timeout` on b.

Several restarts in a row in one run (a rolling restart), each a SIGTERM
(drain, exit 0) and a start again: without a standby the same service comes
back on the same host, port and database and resumes the run; with one, a
second serve on host d over the same database (one filesystem) takes over, and
the stopped one comes back as the standby for the next round. Either way
submit follows the run to its end and exits 0, every task passed exactly once
in DuckDB and no attempt was cancelled. (test_drain.py covers one stop of each
kind on 127.0.0.1, with the 503 a stopping service answers.)

Skipped with the reason where namespaces cannot be made (not root, no `ip`)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bedcluster import API_PORT, BedCluster, attempts
from support.procs import wait_for
from support.testbed import TestBed, make_bed

pytestmark = [pytest.mark.slow, pytest.mark.multihost]

RESTARTS = max(1, int(os.environ.get("DTF_TESTBED_RESTARTS", "2")))  # CI: 2
# One thread per worker: about a task a second, so that the run outlasts every
# restart even while a standby takes a minute to start (load 25 on 2 cores).
TASKS = 40 + 60 * RESTARTS
NAP = 1.5
GRACE = 5.0  # dtf.service.drain-grace of these services
STEP = 3  # tasks recorded by each service before it is stopped
BOUND = 300 + RESTARTS * 240  # a start of serve alone took 50-90 s at load 25 on 2 cores
WAITING = "taking over when it is released"  # a standby's first words


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestBed]:
    yield from make_bed(["a", "b", "c", "d"], tmp_path_factory.mktemp("rbed"))


def suite(root: Path) -> Path:
    """TASKS tasks of NAP s each, quick once the file ``root/restarts-over`` exists:
    long enough for every restart, however long a start takes on a loaded machine."""
    root.mkdir(parents=True, exist_ok=True)
    quick = str(root / "restarts-over")
    nap = f"import os, time; os.path.exists({quick!r}) or time.sleep({NAP})"
    tasks = "".join(
        f'[[task]]\nname = "t{i:03d}"\nkind = "command"\ncommand = ["python", "-c", "{nap}"]\n'
        for i in range(TASKS)
    )
    path = root / "s.toml"
    path.write_text(f'[suite]\nname = "rolling"\n[defaults]\ntimeout = "60s"\n{tasks}')
    return path


def start(bed: TestBed, tmp: Path) -> BedCluster:
    """The deployment; a shorter drain grace, so that a stop takes seconds."""
    for h in bed.hosts:
        bed.kill_host(h)
    c = BedCluster(bed, "a", tmp)
    c.env["DASK_DTF__SERVICE__DRAIN_GRACE"] = f"{GRACE:g}s"
    tmp.mkdir(parents=True, exist_ok=True)
    c.secrets()
    c.start_scheduler()
    for host in ("b", "c"):
        c.start_worker(host, nthreads=1)
    return c


def stop_in_order(c: BedCluster, serve: subprocess.Popen[bytes], log: str) -> None:
    """SIGTERM, as systemd stops a unit; it drains and exits 0 within its grace."""
    os.kill(serve.pid, signal.SIGTERM)  # serve itself: the bed's wrappers exec it
    rc = serve.wait(timeout=GRACE + 60)
    text = c.bed.log(log)
    assert rc == 0, text[-3000:]
    assert "stopping in order" in text, text[-3000:]


def step(c: BedCluster, url: str, run_id: str) -> None:
    """Wait until the service at ``url`` leads the run and has recorded STEP
    more tasks; the run must still be running (the stop must come mid-run)."""
    first: int | None = None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            run = c.api("run", run_id, url=url)
        except Exception:
            time.sleep(0.3)  # not (yet) the leader, or busy starting
            continue
        assert run["status"] in ("queued", "running"), f"the suite ran out before the stop: {run}"
        done = int(run.get("done") or 0)
        first = done if first is None else first
        if done >= first + STEP:
            return
        time.sleep(0.3)
    raise AssertionError(f"no {STEP} tasks recorded at {url} within 180 s")


def check(c: BedCluster, sub: subprocess.Popen[bytes], run_id: str, log: str) -> None:
    (c.dir / "suite" / "restarts-over").touch()  # the rest of the run goes quickly
    rc = sub.wait(timeout=300)
    out = c.bed.log("submit.log")
    for h in c.bed.hosts:
        c.bed.kill_host(h)  # serve lets go of the database
    assert rc == 0, out[-3000:] + c.bed.log(log)[-3000:]
    assert "stopped in order" in out  # the hand-over was shown, then followed
    rows = [r for r in attempts(c.db) if r["run_id"] == run_id]
    passed = collections.Counter(r["task_id"] for r in rows if r["outcome"] == "passed")
    twice = {k: n for k, n in passed.items() if n != 1}
    assert len(passed) == TASKS and not twice, (len(passed), twice)
    cancelled = [r for r in rows if r["category"] == "cancelled" or r["outcome"] == "cancelled"]
    assert not cancelled, cancelled
    print(
        f"\n{RESTARTS} restarts: submit rc {rc}, {len(rows)} attempts, "
        f"{len(passed)}/{TASKS} tasks passed once"
    )


@pytest.mark.timeout(BOUND)
def test_rolling_restart_without_standby(
    bed: TestBed, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("nostandby")
    c = start(bed, tmp)
    serve = c.start_serve()
    wait_for(lambda: c.api("health"), 240, "serve to answer")
    c.wait_workers({"b", "c"}, timeout=240)
    sub = c.submit(suite(tmp / "suite"), "--follow-timeout", "480", host="b")
    run_id = wait_for(lambda: c.api("runs")[0]["run_id"], 60, "the run")
    for k in range(RESTARTS):
        step(c, c.url, run_id)
        began = time.monotonic()
        stop_in_order(c, serve, "serve.log")
        serve = c.start_serve()  # the same host, port and database
        wait_for(lambda: c.api("health"), 240, "serve to answer again")
        print(f"\nrestart {k + 1}: serve down {time.monotonic() - began:.1f}s")
    check(c, sub, run_id, "serve.log")
    assert c.bed.log("serve.log").count("resuming run") == RESTARTS


def hand_over(
    c: BedCluster,
    serves: dict[str, subprocess.Popen[bytes]],
    urls: dict[str, str],
    leader: str,
    standby: str,
    k: int,
) -> None:
    """Stop the leader; the standby takes over; the stopped one comes back as
    the standby for the next round."""
    took = c.bed.log(f"serve-{standby}.log").count("took over")
    began = time.monotonic()
    stop_in_order(c, serves[leader], f"serve-{leader}.log")
    wait_for(lambda: c.api("health", url=urls[standby]), 240, f"{standby} to take over")
    assert c.bed.log(f"serve-{standby}.log").count("took over") == took + 1
    print(f"\nround {k + 1}: {standby} leads {time.monotonic() - began:.1f}s after the stop")
    waiting = c.bed.log(f"serve-{leader}.log").count(WAITING)
    serves[leader] = c.start_serve(leader, "--standby", port=API_PORT, log=f"serve-{leader}.log")
    wait_for(
        lambda: c.bed.log(f"serve-{leader}.log").count(WAITING) > waiting, 240, f"{leader} to wait"
    )


@pytest.mark.timeout(BOUND)
def test_rolling_restart_with_standby(
    bed: TestBed, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Leader and standby swap at each round: the leader is stopped, the standby
    takes over, the stopped one starts again as the standby."""
    tmp = tmp_path_factory.mktemp("standby")
    c = start(bed, tmp)
    urls = {"a": c.url_of("a"), "d": c.url_of("d")}
    serves = {"a": c.start_serve("a", log="serve-a.log")}
    wait_for(lambda: c.api("health"), 240, "the leader to answer")
    serves["d"] = c.start_serve("d", "--standby", log="serve-d.log")
    wait_for(lambda: WAITING in bed.log("serve-d.log"), 240, "the standby to wait")
    c.wait_workers({"b", "c"}, timeout=240)
    sub = c.submit(suite(tmp / "suite"), "--follow-timeout", "480", host="b",
                   urls=f"{urls['a']},{urls['d']}")  # fmt: skip
    run_id = wait_for(lambda: c.api("runs")[0]["run_id"], 60, "the run")
    leader, standby = "a", "d"
    for k in range(RESTARTS):
        step(c, urls[leader], run_id)
        hand_over(c, serves, urls, leader, standby, k)
        leader, standby = standby, leader
    check(c, sub, run_id, f"serve-{leader}.log")
    resumed = sum(bed.log(f"serve-{h}.log").count("resuming run") for h in ("a", "d"))
    assert resumed == RESTARTS, resumed
