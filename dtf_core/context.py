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
from collections.abc import Mapping
from typing import Any

# Raw variables kept under ``ci.env`` as they were: the detected fields below
# are derived from them, and a provider we do not parse still leaves a trace.
_RAW_VARS = ("GITHUB_SHA", "GITHUB_REF_NAME", "GITHUB_RUN_ID", "CI_PIPELINE_ID", "BUILD_ID")


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
    ci = ci_context(os.environ)
    if ci:
        meta["ci"] = ci
        # A CI checkout is usually a detached HEAD (git says "HEAD"), or a
        # synthetic merge commit on a pull request: the CI's word is the truth.
        for key in ("branch", "commit"):
            if ci.get(key):
                meta[key] = ci[key]
    return meta


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        if env.get(name):
            return env[name]
    return None


def _github(env: Mapping[str, str]) -> dict[str, Any]:
    pr = env.get("GITHUB_EVENT_NAME", "").startswith("pull_request")
    ref = env.get("GITHUB_REF", "")  # refs/pull/7/merge on a pull request
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    repo, run = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    return {
        "provider": "github",
        # On a pull request GITHUB_REF_NAME is "7/merge"; the head branch is the one pushed.
        "branch": _first(env, "GITHUB_HEAD_REF", "GITHUB_REF_NAME")
        if pr
        else env.get("GITHUB_REF_NAME"),
        "target_branch": env.get("GITHUB_BASE_REF") if pr else None,
        "commit": env.get("GITHUB_SHA"),
        "pr": ref.split("/")[2] if pr and ref.startswith("refs/pull/") else None,
        "job_url": f"{server}/{repo}/actions/runs/{run}" if repo and run else None,
    }


def _gitlab(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "provider": "gitlab",
        "branch": _first(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "CI_COMMIT_REF_NAME"),
        "target_branch": env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"),
        "commit": env.get("CI_COMMIT_SHA"),
        "pr": env.get("CI_MERGE_REQUEST_IID"),
        "job_url": env.get("CI_JOB_URL"),
    }


def _jenkins(env: Mapping[str, str]) -> dict[str, Any]:
    branch = _first(env, "CHANGE_BRANCH", "BRANCH_NAME", "GIT_BRANCH")
    if branch and branch.startswith("origin/"):  # GIT_BRANCH of a plain Git checkout
        branch = branch[len("origin/") :]
    return {
        "provider": "jenkins",
        "branch": branch,
        "target_branch": env.get("CHANGE_TARGET"),
        "commit": env.get("GIT_COMMIT"),
        "pr": env.get("CHANGE_ID"),
        "job_url": env.get("BUILD_URL"),
    }


def ci_context(env: Mapping[str, str]) -> dict[str, Any]:
    """Which CI started this and for what: ``provider``, ``branch``,
    ``target_branch``, ``commit``, ``pr`` (pull/merge request number),
    ``job_url``, plus the raw variables under ``env``; ``{}`` outside CI.
    Missing fields are left out."""
    if env.get("GITHUB_ACTIONS") == "true":
        found = _github(env)
    elif env.get("GITLAB_CI") == "true":
        found = _gitlab(env)
    elif env.get("JENKINS_URL") or env.get("JENKINS_HOME"):
        found = _jenkins(env)
    elif env.get("CI"):
        found = {"provider": "unknown"}
    else:
        found = {}
    raw = {v: env[v] for v in _RAW_VARS if env.get(v)}
    out = {k: v for k, v in found.items() if v}
    if raw:
        out["env"] = raw
    return out
