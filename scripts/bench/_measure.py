"""Small helpers the benchmark scripts share: a free loopback port, a percentile,
and a deployment's keys as docs/security.md sets them up."""

from __future__ import annotations

import socket
from pathlib import Path

from dtf_core.cluster import security


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; 0.0 for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


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
