"""Facts about where and from what a run was started (stored as run metadata).

Benchmarks are only comparable when we know which commit, branch and Python
produced them; CI variables tell us which pipeline asked.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from typing import Any


def _git(args: list[str], cwd: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def collect(cwd: str) -> dict[str, Any]:
    """Run metadata: git commit/branch of ``cwd``, interpreter, host, CI."""
    meta: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit:
        meta["commit"] = commit
        meta["branch"] = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
        meta["dirty"] = bool(_git(["status", "--porcelain", "--untracked-files=no"], cwd))
    for var in ("GITHUB_SHA", "GITHUB_REF_NAME", "GITHUB_RUN_ID", "CI_PIPELINE_ID", "BUILD_ID"):
        if os.environ.get(var):
            meta.setdefault("ci", {})[var] = os.environ[var]
    return meta
