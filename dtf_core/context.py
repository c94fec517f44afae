"""Facts about where and from what a run was started (stored as run metadata).

Benchmarks are only comparable when we know which commit, branch and Python
produced them; CI variables tell us which pipeline asked.
"""

from __future__ import annotations

import json
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
        branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
        meta["branch"] = None if branch == "HEAD" else branch  # detached: no branch
        meta["dirty"] = bool(_git(["status", "--porcelain", "--untracked-files=no"], cwd))
        meta["default_branch"] = _default_branch(cwd)
    ci = ci_context(os.environ)
    if ci:
        meta["ci"] = ci
        # A CI checkout is usually a detached HEAD (git says "HEAD"), or a
        # synthetic merge commit on a pull request: the CI's word is the truth.
        for key in ("branch", "commit", "target_branch", "default_branch"):
            if ci.get(key):
                meta[key] = ci[key]
    # The baseline of a run follows these three (dtf_core.analysis.baseline).
    return {k: v for k, v in meta.items() if v is not None}


def _default_branch(cwd: str) -> str | None:
    """The remote's default branch as this clone knows it (``origin/HEAD``)."""
    ref = _git(["symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"], cwd)
    return ref.split("/", 1)[1] if ref and "/" in ref else None


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        if env.get(name):
            return env[name]
    return None


def _event(env: Mapping[str, str]) -> dict[str, Any]:
    """The webhook payload GitHub leaves in a file (``GITHUB_EVENT_PATH``)."""
    try:
        with open(env.get("GITHUB_EVENT_PATH") or "", encoding="utf-8") as fh:
            event = json.load(fh)
    except (OSError, ValueError):
        return {}
    return event if isinstance(event, dict) else {}


def _dig(doc: Any, *path: str) -> str | None:
    for key in path:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc if isinstance(doc, str) else None


def _github(env: Mapping[str, str]) -> dict[str, Any]:
    pr = env.get("GITHUB_EVENT_NAME", "").startswith("pull_request")
    ref = env.get("GITHUB_REF", "")  # refs/pull/7/merge on a pull request
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    repo, run = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    event = _event(env)
    return {
        "provider": "github",
        # On a pull request GITHUB_REF_NAME is "7/merge"; the head branch is the one pushed.
        "branch": _first(env, "GITHUB_HEAD_REF", "GITHUB_REF_NAME")
        if pr
        else env.get("GITHUB_REF_NAME"),
        "target_branch": env.get("GITHUB_BASE_REF") if pr else None,
        "default_branch": _dig(event, "repository", "default_branch"),
        "commit": env.get("GITHUB_SHA"),  # on a pull request: the merge commit that was tested
        "head_commit": _dig(event, "pull_request", "head", "sha") if pr else None,
        "pr": ref.split("/")[2] if pr and ref.startswith("refs/pull/") else None,
        "job_url": f"{server}/{repo}/actions/runs/{run}" if repo and run else None,
    }


def _gitlab(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "provider": "gitlab",
        "branch": _first(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "CI_COMMIT_REF_NAME"),
        "target_branch": env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"),
        "default_branch": env.get("CI_DEFAULT_BRANCH"),
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
    ``target_branch`` (of a pull/merge request), ``default_branch`` (GitLab's
    ``CI_DEFAULT_BRANCH``, GitHub's event payload; Jenkins has none), ``commit``
    (and on a GitHub pull request the branch's own ``head_commit``),
    ``pr`` (pull/merge request number), ``job_url``, plus the raw variables
    under ``env``; ``{}`` outside CI. Missing fields are left out."""
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
