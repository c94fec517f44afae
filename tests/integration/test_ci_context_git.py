"""CI context from a real git repository: branch, default branch (origin/HEAD), GitLab MR vars."""


def test_collect_keeps_target_and_default_branch_for_the_baseline(tmp_path, monkeypatch):
    import subprocess

    from dtf_core.context import collect

    for var in ("GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "JENKINS_HOME", "CI"):
        monkeypatch.delenv(var, raising=False)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q", "-b", "feat"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    subprocess.run([*git, "update-ref", "refs/remotes/origin/trunk", "HEAD"], check=True)
    subprocess.run(
        [*git, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/trunk"], check=True
    )
    meta = collect(str(tmp_path))
    assert (meta["branch"], meta["default_branch"]) == ("feat", "trunk")
    assert "target_branch" not in meta  # only a pull/merge request has one
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feat")
    monkeypatch.setenv("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "release")
    monkeypatch.setenv("CI_DEFAULT_BRANCH", "main")
    meta = collect(str(tmp_path))
    assert (meta["branch"], meta["target_branch"], meta["default_branch"]) == (
        "feat", "release", "main",
    )  # fmt: skip
