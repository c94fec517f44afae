"""Small helpers the benchmark scripts share: a free loopback port, a percentile, a
whole process timed from the outside (wall and CPU seconds), a deployment's keys as
docs/security.md sets them up, and serve's own API latency read from its ``/metrics``."""

from __future__ import annotations

import re
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from dtf_core.cluster import security


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


_BUCKET = re.compile(
    r"^dtf_api_request_duration_seconds_bucket\{(?P<labels>.*)\} (?P<n>\S+)$", re.M
)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


class Keys:
    """One key per job: serve's API key (``secret``), the scheduler's worker
    admission key (``worker_key``), the result key of workers and serve
    (``result_key``); worker tokens one per worker, owner-only files."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.secret = where / "api.key"
        self.worker_key = where / "worker.key"
        self.result_key = where / "result.key"
        for f in (self.secret, self.worker_key, self.result_key):
            security.write_secret(f)

    def token(self, role: str, subject: str = "bench") -> str:
        secret = security.read_secret(self.secret)
        return security.issue_token(secret, role=role, subject=subject, ttl_s=3600)

    def worker_token_file(self, name: str) -> Path:
        path = self.where / f"{name}.jwt"
        secret = security.read_secret(self.worker_key)
        path.write_text(security.issue_token(secret, role="worker", subject=name, ttl_s=3600))
        path.chmod(0o600)
        return path


Histogram = dict[str, dict[float, float]]  # route -> upper bound (s) -> requests


def api_histogram(url: str, token: str) -> Histogram:
    """serve's own API latency (``/metrics``), cumulative per route template:
    what the service took, without the client's decoding or its process's GIL."""
    req = urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        text = resp.read().decode()
    out: Histogram = {}
    for m in _BUCKET.finditer(text):
        labels = dict(_LABEL.findall(m.group("labels")))
        route, le, n = labels["route"], labels["le"], float(m.group("n"))
        bound = float("inf") if le == "+Inf" else float(le)
        per = out.setdefault(route, {})
        per[bound] = per.get(bound, 0.0) + n  # summed over methods and status codes
    return out


def api_p99(before: Histogram, after: Histogram, skip: tuple[str, ...] = ()) -> tuple[int, float]:
    """Requests between two scrapes (routes in ``skip`` left out: long-polls wait on
    purpose) and the bucket bound their 99th percentile falls in, in ms."""
    merged: dict[float, float] = {}
    for route, per in after.items():
        if any(s in route for s in skip):
            continue
        for bound, n in per.items():
            merged[bound] = merged.get(bound, 0.0) + n - before.get(route, {}).get(bound, 0.0)
    total = merged.get(float("inf"), 0.0)
    for bound in sorted(merged):
        if total and merged[bound] >= 0.99 * total:
            return int(total), 1000 * bound
    return int(total), 0.0


def wait_for_workers(client: Any, n: int, timeout: float, log: Path) -> None:
    """Until serve (``client``: a CoordinatorClient) sees ``n`` workers; exits
    naming the processes' log when it does not within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if len(client.workers()) == n:
                return
        except Exception:
            pass  # not listening yet
        if time.monotonic() > deadline:
            sys.exit(f"service did not come up; see {log}")
        time.sleep(0.2)
