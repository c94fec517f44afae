"""A deployment's three keys, as docs/security.md sets them up: the API key (serve),
the worker admission key (the scheduler) and the result key (workers and serve), with
tokens signed by the right one and token files readable by their owner only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dtf_core.cluster import security


@dataclass(frozen=True)
class Keys:
    api: Path  # serve --secret-file
    worker: Path  # dtf-core scheduler --secret-file / serve --worker-key-file
    result: Path  # --result-key-file of workers and serve

    def token(self, role: str, subject: str, ttl_s: float = 3600) -> str:
        """An API token (viewer, submitter, admin), signed with the API key."""
        return security.issue_token(
            security.read_secret(self.api), role=role, subject=subject, ttl_s=ttl_s
        )

    def worker_token_file(self, path: Path, subject: str, ttl_s: float = 7200) -> Path:
        """A worker token signed with the admission key, written owner-only."""
        token = security.issue_token(
            security.read_secret(self.worker), role="worker", subject=subject, ttl_s=ttl_s
        )
        path.write_text(token)
        path.chmod(0o600)
        return path


def make_keys(where: Path) -> Keys:
    keys = Keys(where / "api.key", where / "worker.key", where / "result.key")
    for f in (keys.api, keys.worker, keys.result):
        if not f.exists():
            security.write_secret(f)
    return keys
