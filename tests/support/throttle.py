"""A worker whose tasks get about 1 % of a CPU while the worker itself stays
responsive and heart-beating: a straggler (a throttled CPU under a task, a
GPU stuck at low clocks, a noisy neighbour). Used by the straggler tests and
``scripts/bench/straggler.py``.

Stop/continue cycles: every process below the worker (its tasks) is stopped
(SIGSTOP), let run for a short window (SIGCONT), and stopped again; a task
process that starts meanwhile is stopped within a few milliseconds (the
children are read from ``/proc/PID/task/*/children``, a thousand times
cheaper than scanning every process). ``whole=True`` stops the worker process
too (then it answers the scheduler late, and its heartbeats come irregularly).

The cycling runs in a process of its own at real-time priority where the
system allows (else niced up, else as it is): on a loaded machine a thread of
the test process wakes late, a 10 ms window becomes 300 ms, and the "slow"
worker gets a tenth of a CPU. The stop is sized from the window that really
passed, so the share stays near ``share``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import subprocess
import sys
import time


class Throttle:
    """``with Throttle(pid): ...``: ``pid``'s descendants (and ``pid`` itself
    with ``whole``) at about ``share`` of a CPU."""

    def __init__(
        self, pid: int, share: float = 0.01, max_stop: float = 4.0, whole: bool = False
    ) -> None:
        self.pid, self.share, self.max_stop, self.whole = pid, share, max_stop, whole
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Throttle:
        argv = [sys.executable, __file__, str(self.pid), str(self.share), str(self.max_stop),
                "whole" if self.whole else "children"]  # fmt: skip
        self._proc = subprocess.Popen(argv)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Stop cycling and let everything run again."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        _signal([self.pid, *descendants(self.pid)], signal.SIGCONT)


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for path in glob.glob(f"/proc/{todo.pop()}/task/*/children"):
            with contextlib.suppress(OSError, ValueError):
                with open(path) as f:
                    kids = [int(k) for k in f.read().split()]
                out += kids
                todo += kids
    return out


def _signal(pids: list[int], sig: int) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def _prioritise() -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(-10)


def cycle(pid: int, share: float, max_stop: float, whole: bool, window: float = 0.01) -> None:
    done = False

    def finish(*_: object) -> None:
        nonlocal done
        done = True

    def targets() -> list[int]:
        return [pid, *descendants(pid)] if whole else descendants(pid)

    signal.signal(signal.SIGTERM, finish)
    _prioritise()
    stop_for = max_stop
    try:
        while not done and os.path.exists(f"/proc/{pid}"):
            stopped: set[int] = set()
            deadline = time.monotonic() + stop_for
            while not done and time.monotonic() < deadline:
                new = [p for p in targets() if p not in stopped]
                _signal(new, signal.SIGSTOP)  # a task that just started, too
                stopped.update(new)
                time.sleep(0.005)
            if done:
                break
            began = time.monotonic()
            _signal(sorted(stopped), signal.SIGCONT)
            time.sleep(window)
            ran = time.monotonic() - began
            stop_for = min(max_stop, ran * (1 - share) / share)
    finally:
        _signal(targets(), signal.SIGCONT)


if __name__ == "__main__":
    cycle(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "whole")
