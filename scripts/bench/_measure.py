"""Small helpers the benchmark scripts share: a free loopback port, a percentile, and a
whole process timed from the outside (wall and CPU seconds)."""

from __future__ import annotations

import resource
import socket
import statistics
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; 0.0 for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def timed_process(cmd: list[str], cwd: str, expect: str = "PASSED") -> tuple[float, float]:
    """Run ``cmd`` to its end: (wall s, CPU s of it and every process it waited for).

    CPU is what a busy shared machine does not stretch: when the load moves wall
    times by tens of per cent, the CPU seconds still say which side does more work.
    Exits with the command's output when it fails or does not print ``expect``.
    """
    cpu0, t0 = _children_cpu(), time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if out.returncode != 0 or expect not in out.stdout:
        sys.exit(f"{' '.join(cmd)} failed (rc {out.returncode}):\n{out.stdout}\n{out.stderr}")
    return wall, cpu


def spread(xs: list[float], digits: int = 2) -> str:
    """median (min-max)"""
    return f"{statistics.median(xs):.{digits}f} ({min(xs):.{digits}f}-{max(xs):.{digits}f})"
