"""Subprocesses in their own process group: run with a timeout, measure, reap.

Dask has no per-task timeout and ``cancel()`` does not stop a subprocess, so
every task subprocess runs in its own session (``start_new_session=True``) and
this module owns the ways it ends:

* :func:`run` enforces the timeout inside the task: SIGTERM to the group (and
  to descendants that left it with ``setsid``, collected *before* the kill while
  they still have a parent), SIGKILL after ``dtf.runner.kill-grace``. After a
  normal exit the group is SIGKILLed too, so a backgrounded ``sleep 30 &`` does
  not outlive its task. Descendants that left the group *and* outlived their
  parent's normal exit cannot be found and stay.
* :func:`reap` kills the group registered for a Dask key; the runner's
  ``ProcessGroupReaper`` calls it when the key is released while running.
* ``cpu_s`` comes from ``os.wait4`` (``resource.getrusage(RUSAGE_CHILDREN)`` is
  process-wide, wrong in a threaded worker); ``peak_rss`` is sampled (see
  :func:`_wait4` for why not ``ru_maxrss``).
* stdout/stderr go to files, not pipes: a chatty child never blocks on a full
  pipe buffer; only the tails are kept.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from dtf_core import config

# Dask key -> pid (== pgid) of the subprocess running for it. Keys are unique per
# attempt (or batch), and a batch runs its payloads sequentially, so one entry
# per key is enough.
_registry: dict[str, int] = {}
_reaped: set[str] = set()  # keys whose group reap() killed: results say "cancelled"
_lock = threading.Lock()


def was_reaped(key: str) -> bool:
    with _lock:
        return key in _reaped


def forget(key: str) -> None:
    """Drop the reaped mark of a key whose task has finished."""
    with _lock:
        _reaped.discard(key)


def registered_keys() -> list[str]:
    with _lock:
        return list(_registry)


def reap(key: str, wait: bool = False) -> bool:
    """Kill the group registered for ``key`` (SIGTERM, SIGKILL after the grace).

    Returns whether a group was registered. With ``wait`` the SIGKILL is sent in
    this thread after at most the grace period, else from a timer thread.
    """
    with _lock:
        pid = _registry.pop(key, None)
        if pid is None:
            return False
        _reaped.add(key)
    grace = config.seconds("runner.kill-grace")
    procs = _descendants(pid)
    _signal_all(pid, procs, signal.SIGTERM)
    if wait:
        _wait_group_gone(pid, grace)
        _signal_all(pid, procs, signal.SIGKILL)
    else:
        timer = threading.Timer(grace, _signal_all, (pid, procs, signal.SIGKILL))
        timer.daemon = True
        timer.start()
    return True


@dataclass
class ProcRun:
    exit_code: int | None = None
    timed_out: bool = False
    started_at: float = 0.0
    finished_at: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss: int = 0
    stdout: str = ""
    stderr: str = ""
    spawn_error: str = ""


def run(
    argv: list[str], cwd: str, env: dict[str, str], timeout: float, key: str, tmp: Path
) -> ProcRun:
    """Run ``argv`` in its own process group; never raises for a bad argv."""
    run = ProcRun(started_at=time.time())
    out_path, err_path = tmp / "stdout", tmp / "stderr"
    # Files, not pipes: a chatty child can never block on a full pipe buffer.
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=err, start_new_session=True,
            )  # fmt: skip
        except (FileNotFoundError, NotADirectoryError, PermissionError, IndexError) as exc:
            run.finished_at = time.time()
            # What a shell would have answered: 127 not found, 126 not executable.
            run.exit_code = 126 if isinstance(exc, PermissionError) else 127
            run.spawn_error = str(exc) if argv else "empty command"
            run.stderr = run.spawn_error
            return run
        pid = proc.pid
        with _lock:
            _registry[key] = pid
        try:
            box: dict[str, Any] = {}
            waiter = threading.Thread(target=_wait4, args=(pid, box), daemon=True)
            waiter.start()
            waiter.join(timeout if timeout and timeout > 0 else None)
            if waiter.is_alive():
                run.timed_out = True
                procs = _descendants(pid)  # before the kill: orphans lose their parent link
                _signal_all(pid, procs, signal.SIGTERM)
                waiter.join(config.seconds("runner.kill-grace"))
                _signal_all(pid, procs, signal.SIGKILL)
                waiter.join(30)  # SIGKILL cannot be ignored; only D-state would keep us
            run.wall_s = time.perf_counter() - t0
        finally:
            with _lock:
                _registry.pop(key, None)
            _killpg(pid, signal.SIGKILL)  # whatever the child left running in its group
        if "status" in box:
            proc.returncode = run.exit_code = os.waitstatus_to_exitcode(box["status"])
            ru = box["rusage"]
            run.cpu_s = ru.ru_utime + ru.ru_stime
        run.peak_rss = int(box.get("peak_rss", 0))
        run.finished_at = time.time()
    run.stdout, run.stderr = _tail(out_path), _tail(err_path)
    return run


def _wait4(pid: int, box: dict[str, Any]) -> None:
    """Reap ``pid`` with ``os.wait4`` while sampling the RSS of its process tree.

    The peak RSS is sampled (every 5 ms at first, backing off to 0.5 s) rather
    than read from ``ru_maxrss``: Linux carries the forking worker's high-water
    mark into the child at exec, so ``/bin/true`` forked from a worker that once
    held 300 MB reports 300 MB. Spikes shorter than the interval are missed.
    The back-off matters: one sample walks /proc for the tree (~1.5 ms), and at
    a steady 50 ms that was 3 % of a core per running task, taken from the tests.
    """
    peak, interval = 0, 0.005
    while True:
        try:
            done, status, rusage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:  # someone else reaped it; exit code unknown
            break
        if done:
            box["status"], box["rusage"] = status, rusage
            break
        peak = max(peak, _tree_rss(pid))
        box["peak_rss"] = peak
        time.sleep(interval)
        interval = min(0.5, interval * 1.5)


def _tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _tail(path: Path) -> str:
    n = int(config.get("runner.output-tail", 4000))
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 4 * n))  # utf-8: at most 4 bytes per character
        return f.read().decode("utf-8", errors="replace")[-n:]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal_all(pgid: int, procs: Iterable[psutil.Process], sig: int) -> None:
    _killpg(pgid, sig)
    for p in procs:  # descendants that called setsid() are outside the group
        # psutil checks the process's start time, so a recycled pid is left alone.
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)


def _wait_group_gone(pgid: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
