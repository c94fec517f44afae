"""A process tree kept to about 1 % of a CPU by stop/continue cycles: a worker
that is alive and heart-beating, and very slow (a noisy neighbour, a throttled
CPU). Used by the straggler tests and ``scripts/bench/straggler.py``.

Each cycle stops the process and all its descendants (SIGSTOP), lets them run
for a short window (SIGCONT), and stops them again. The cycling runs in a
process of its own, at real-time priority where the system allows (else
niced up, else as it is): on a loaded machine a thread of the test process
wakes late, a 10 ms window becomes 300 ms, and the "slow" worker gets a
tenth of a CPU. The stop is sized from the window that really passed, so the
share stays near ``share``; it is capped so that the worker still sends a
heartbeat every few seconds. Children start only while their parent runs, so
a new task process is caught by the next stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil


class Throttle:
    """``with Throttle(pid): ...`` keeps ``pid`` and its descendants at ``share`` of a CPU."""

    def __init__(self, pid: int, share: float = 0.01, max_stop: float = 4.0) -> None:
        self.pid, self.share, self.max_stop = pid, share, max_stop
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Throttle:
        argv = [sys.executable, __file__, str(self.pid), str(self.share), str(self.max_stop)]
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
        _signal(self.pid, signal.SIGCONT)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _signal(pid: int, sig: int) -> None:
    for p in _tree(pid):
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)


def _prioritise() -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(-10)


def cycle(pid: int, share: float, max_stop: float, window: float = 0.01) -> None:
    done = False

    def finish(*_: object) -> None:
        nonlocal done
        done = True

    signal.signal(signal.SIGTERM, finish)
    _prioritise()
    stop_for = max_stop
    try:
        while not done and psutil.pid_exists(pid):
            _signal(pid, signal.SIGSTOP)
            deadline = time.monotonic() + stop_for
            while not done and time.monotonic() < deadline:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            if done:
                break
            began = time.monotonic()
            _signal(pid, signal.SIGCONT)
            time.sleep(window)
            ran = time.monotonic() - began
            stop_for = min(max_stop, ran * (1 - share) / share)
    finally:
        _signal(pid, signal.SIGCONT)


if __name__ == "__main__":
    cycle(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
