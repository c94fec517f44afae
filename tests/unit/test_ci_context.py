"""CI provider detection: which branch, target, commit, PR and job a run came from."""

from __future__ import annotations

import pytest

from dtf_core.context import ci_context

GH = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/calc", "GITHUB_RUN_ID": "99"}
GH_URL = "https://github.com/acme/calc/actions/runs/99"

CASES = [
    pytest.param({}, {}, id="not-ci"),
    pytest.param(
        {
            **GH,
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_REF_NAME": "main",
            "GITHUB_SHA": "abc",
        },
        {"provider": "github", "branch": "main", "commit": "abc", "job_url": GH_URL},
        id="github-push",
    ),
    pytest.param(
        {
            **GH,
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_REF": "refs/pull/7/merge",
            "GITHUB_REF_NAME": "7/merge",
            "GITHUB_HEAD_REF": "fix-it",
            "GITHUB_BASE_REF": "main",
            "GITHUB_SHA": "abc",
        },
        {
            "provider": "github",
            "branch": "fix-it",
            "target_branch": "main",
            "commit": "abc",
            "pr": "7",
            "job_url": GH_URL,
        },
        id="github-pull-request",
    ),
    pytest.param(
        {
            **GH,
            "GITHUB_EVENT_NAME": "pull_request_target",
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_HEAD_REF": "fork-branch",
            "GITHUB_BASE_REF": "main",
            "GITHUB_SERVER_URL": "https://ghe.example",
        },
        {
            "provider": "github",
            "branch": "fork-branch",
            "target_branch": "main",
            "job_url": "https://ghe.example/acme/calc/actions/runs/99",
        },
        id="github-pull-request-target",
    ),
    pytest.param(
        {
            "GITLAB_CI": "true",
            "CI": "true",
            "CI_COMMIT_REF_NAME": "main",
            "CI_COMMIT_SHA": "def",
            "CI_JOB_URL": "https://gitlab.example/acme/calc/-/jobs/5",
        },
        {
            "provider": "gitlab",
            "branch": "main",
            "commit": "def",
            "job_url": "https://gitlab.example/acme/calc/-/jobs/5",
        },
        id="gitlab-branch",
    ),
    pytest.param(
        {
            "GITLAB_CI": "true",
            "CI_COMMIT_REF_NAME": "refs/merge-requests/3/head",
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature",
            "CI_MERGE_REQUEST_IID": "3",
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "release",
            "CI_DEFAULT_BRANCH": "main",
            "CI_COMMIT_SHA": "def",
        },
        {
            "provider": "gitlab",
            "branch": "feature",
            "target_branch": "release",
            "default_branch": "main",
            "commit": "def",
            "pr": "3",
        },
        id="gitlab-merge-request",
    ),
    pytest.param(
        {
            "JENKINS_URL": "https://ci.example/",
            "BRANCH_NAME": "PR-12",
            "CHANGE_BRANCH": "feature",
            "CHANGE_TARGET": "main",
            "CHANGE_ID": "12",
            "GIT_COMMIT": "0123",
            "BUILD_URL": "https://ci.example/job/calc/PR-12/4/",
        },
        {
            "provider": "jenkins",
            "branch": "feature",
            "target_branch": "main",
            "commit": "0123",
            "pr": "12",
            "job_url": "https://ci.example/job/calc/PR-12/4/",
        },
        id="jenkins-multibranch-pr",
    ),
    pytest.param(
        {"JENKINS_HOME": "/var/jenkins", "GIT_BRANCH": "origin/release", "GIT_COMMIT": "0123"},
        {"provider": "jenkins", "branch": "release", "commit": "0123"},
        id="jenkins-freestyle-git",
    ),
    pytest.param({"CI": "true"}, {"provider": "unknown"}, id="other-ci"),
]


@pytest.mark.parametrize(("env", "expected"), CASES)
def test_ci_context(env, expected):
    got = ci_context(env)
    got.pop("env", None)
    assert got == expected


def test_raw_variables_are_kept():
    got = ci_context({**GH, "GITHUB_SHA": "abc", "GITHUB_REF_NAME": "main"})
    assert got["env"] == {"GITHUB_SHA": "abc", "GITHUB_REF_NAME": "main", "GITHUB_RUN_ID": "99"}


def test_collect_stores_the_ci_branch_over_a_detached_head(tmp_path, monkeypatch):
    from dtf_core.context import collect

    for var in ("GITLAB_CI", "JENKINS_URL", "JENKINS_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_HEAD_REF", "fix-it")
    monkeypatch.setenv("GITHUB_SHA", "f" * 40)
    meta = collect(str(tmp_path))  # not a git checkout
    assert meta["branch"] == "fix-it"
    assert meta["commit"] == "f" * 40
    assert meta["ci"]["provider"] == "github"


def test_github_default_branch_and_head_commit_come_from_the_event_file(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(
        '{"repository": {"default_branch": "trunk"},'
        ' "pull_request": {"head": {"sha": "' + "e" * 40 + '"}}}'
    )
    env = {
        **GH, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/7/merge",
        "GITHUB_HEAD_REF": "fix-it", "GITHUB_BASE_REF": "release", "GITHUB_SHA": "m" * 40,
        "GITHUB_EVENT_PATH": str(event),
    }  # fmt: skip
    got = ci_context(env)
    assert got["default_branch"] == "trunk"
    assert got["target_branch"] == "release"
    assert got["commit"] == "m" * 40  # the merge commit that was tested
    assert got["head_commit"] == "e" * 40
    event.write_text("not json")
    assert "default_branch" not in ci_context(env)  # a broken payload is no payload
