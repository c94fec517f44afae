"""Issue 13, items 2-4 without a cluster: one key per job, private key files, token
lifetimes, revocation, the token commands, credentials handed over a pipe."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from dtf_core import cli
from dtf_core.cluster import handover, revocation, security
from dtf_core.cluster.scheduler_preload import check_worker
from dtf_core.errors import AuthError, OptionError


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_init_writes_three_distinct_owner_only_keys(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli.main, ["token", "init", str(tmp_path / "keys")])
    assert out.exit_code == 0, out.output
    keys = {n: tmp_path / "keys" / n for n in ("api.key", "worker.key", "result.key")}
    assert _mode(tmp_path / "keys") == 0o700
    assert all(_mode(p) == 0o600 for p in keys.values())
    assert len({p.read_bytes() for p in keys.values()}) == 3
    again = CliRunner().invoke(cli.main, ["token", "init", str(tmp_path / "keys")])
    assert again.exit_code == 2 and "already exist" in again.output


def test_a_token_minted_with_the_admission_key_opens_no_api(tmp_path: Path) -> None:
    api, admission = security.new_secret().encode(), security.new_secret().encode()
    # What a compromised scheduler could do with the key it holds:
    forged = security.issue_token(admission, role="admin", subject="evil", ttl_s=60)
    with pytest.raises(AuthError, match="invalid token") as exc:
        security.verify_token(api, forged, audience=security.API_AUDIENCE)
    assert exc.value.status == 401
    # ...while the same key still admits the workers it signed for.
    worker = security.issue_token(admission, role="worker", subject="h", ttl_s=60)
    assert check_worker(admission, {"dtf-token": worker}).subject == "h"
    assert security.key_id(api) != security.key_id(admission)
    assert security.key_id(api) == security.key_id(bytes(api))
    assert api.decode() not in security.key_id(api)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_key_and_token_files_open_to_others_are_refused(tmp_path: Path, mode: int) -> None:
    key = tmp_path / "api.key"
    security.write_secret(key)
    key.chmod(mode)
    with pytest.raises(OptionError) as exc:
        security.read_secret(key, "API key file")
    assert str(exc.value).endswith(f"run `chmod 600 {key}`")
    assert f"{key}" in str(exc.value) and "\n" not in str(exc.value)
    tok = tmp_path / "t.jwt"
    tok.write_text("abc")
    tok.chmod(mode)
    with pytest.raises(OptionError, match="chmod 600"):
        security.read_token_file(tok)
    # The command says it in one line, exit 2.
    out = CliRunner().invoke(cli.main, ["scheduler", "--secret-file", str(key)])
    assert out.exit_code == 2
    assert out.output.count("\n") == 1 and "chmod 600" in out.output


def test_every_token_has_a_bounded_lifetime() -> None:
    key = b"k" * 40
    with pytest.raises(OptionError, match="at most 30d"):
        security.issue_token(key, role="admin", subject="a", ttl_s=31 * 86400)
    security.issue_token(key, role="worker", subject="h", ttl_s=60 * 86400)  # workers: 90d
    with pytest.raises(OptionError, match="max-worker-ttl"):
        security.issue_token(key, role="worker", subject="h", ttl_s=91 * 86400)
    now = time.time()
    base = {"iss": "dtf", "aud": "dtf-api", "sub": "x", "role": "admin", "iat": int(now)}
    # Signed by hand with the right key: still refused when it lives too long, or
    # has no expiry, or no id (it could not be revoked).
    too_long = jwt.encode({**base, "exp": int(now + 365 * 86400), "jti": "a"}, key, "HS256")
    with pytest.raises(AuthError, match="longer than"):
        security.verify_token(key, too_long, audience=security.API_AUDIENCE)
    for missing in ("exp", "jti"):
        claims = {**base, "exp": int(now + 60), "jti": "b"}
        del claims[missing]
        with pytest.raises(AuthError):
            security.verify_token(
                key, jwt.encode(claims, key, "HS256"), audience=security.API_AUDIENCE
            )


def test_revocation_is_checked_on_every_verify_and_fails_closed(tmp_path: Path) -> None:
    key_file = tmp_path / "api.key"
    security.write_secret(key_file)
    key = security.read_secret(key_file)
    keep = security.issue_token(key, role="viewer", subject="ok", ttl_s=600)
    gone = security.issue_token(key, role="admin", subject="lost", ttl_s=600)
    security.watch_revocations(key, key_file)
    try:
        security.verify_token(key, gone, audience=security.API_AUDIENCE)
        token_id, exp = security.token_facts(key, gone)
        listed = revocation.revocation_file(key_file)
        assert revocation.add(listed, token_id, exp) == 1
        assert _mode(listed) == 0o600
        with pytest.raises(AuthError, match="revoked"):
            security.verify_token(key, gone, audience=security.API_AUDIENCE)
        assert security.verify_token(key, keep, audience=security.API_AUDIENCE).subject == "ok"
        # A list nobody can parse refuses every token rather than forget a revocation.
        listed.write_text(listed.read_text() + "garbage line here\n")
        with pytest.raises(AuthError, match="revocation list"):
            security.verify_token(key, keep, audience=security.API_AUDIENCE)
        listed.unlink()
        security.verify_token(key, gone, audience=security.API_AUDIENCE)  # list gone: none revoked
    finally:
        security._revocations.pop(key, None)


def test_revocation_entries_expire_with_their_tokens(tmp_path: Path) -> None:
    listed = tmp_path / "k.revoked"
    assert revocation.add(listed, "old", until=1000.0, now=500.0) == 1
    assert revocation.add(listed, "new", until=5000.0, now=2000.0) == 1  # "old" dropped
    assert set(revocation.parse(listed.read_text(), 2000.0)) == {"new"}
    with pytest.raises(OptionError):
        revocation.add(listed, "two words", until=9e9)


def test_token_commands_write_private_files_and_revoke(tmp_path: Path) -> None:
    runner = CliRunner()
    key = tmp_path / "worker.key"
    security.write_secret(key)
    out_file = tmp_path / "w1.jwt"
    out = runner.invoke(
        cli.main,
        ["token", "issue", "--role", "worker", "--subject", "w1", "--ttl", "30d",
         "--secret-file", str(key), "--output", str(out_file)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert _mode(out_file) == 0o600 and out.stdout == ""
    token = out_file.read_text().strip()
    token_id, _ = security.token_facts(security.read_secret(key), token)
    assert f"token id {token_id}" in out.stderr
    again = runner.invoke(
        cli.main,
        ["token", "issue", "--role", "worker", "--subject", "w1", "--secret-file", str(key),
         "--output", str(out_file)],
    )  # fmt: skip
    assert again.exit_code == 2 and "already exists" in again.output
    too_long = runner.invoke(
        cli.main,
        ["token", "issue", "--role", "admin", "--subject", "a", "--ttl", "60d",
         "--secret-file", str(key)],
    )  # fmt: skip
    assert too_long.exit_code == 2 and "at most 30d" in too_long.output
    for what in (str(out_file), "0123abcd"):
        rv = runner.invoke(cli.main, ["token", "revoke", what, "--secret-file", str(key)])
        assert rv.exit_code == 0, rv.output
    listed = revocation.parse(revocation.revocation_file(key).read_text(), time.time())
    assert set(listed) == {token_id, "0123abcd"}
    other = tmp_path / "other.key"
    security.write_secret(other)
    wrong = runner.invoke(cli.main, ["token", "revoke", str(out_file), "--secret-file", str(other)])
    assert wrong.exit_code == 2 and "not signed with this key" in wrong.output


def test_credentials_cross_a_pipe_once(monkeypatch: pytest.MonkeyPatch) -> None:
    blob = handover.encode("tok", b"\x00key\xff")
    assert handover.decode(blob) == ("tok", b"\x00key\xff")
    fd = handover.pipe_holding(blob)
    monkeypatch.setenv(handover.FD_ENV, str(fd))
    assert handover.take_from_env() == blob
    assert handover.FD_ENV not in os.environ
    with pytest.raises(OSError):
        os.fstat(fd)  # closed: no descriptor left for a task to find
    assert handover.take_from_env() is None


def test_a_task_user_needs_root_and_is_never_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(OptionError, match="as root"):
        handover.TaskUser.resolve("nobody")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(OptionError, match="must not be root"):
        handover.TaskUser.resolve("0")
    assert handover.TaskUser.resolve("65534").uid == 65534


def test_serve_refuses_one_key_for_two_jobs(tmp_path: Path) -> None:
    api, worker = tmp_path / "api.key", tmp_path / "worker.key"
    security.write_secret(api)
    security.write_secret(worker)
    base = ["serve", "--secret-file", str(api), "--db", str(tmp_path / "x.duckdb")]
    cases = {
        "needs --worker-key-file": ["--start-scheduler"],
        "one secret for both": ["--start-scheduler", "--worker-key-file", str(api)],
        "any worker could mint admin tokens": ["--scheduler", "tcp://127.0.0.1:1",
                                               "--result-key-file", str(api)],
        "any worker could admit others": ["--start-scheduler", "--worker-key-file", str(worker),
                                          "--result-key-file", str(worker)],
        "goes with --start-scheduler": ["--scheduler", "tcp://127.0.0.1:1",
                                        "--worker-key-file", str(worker)],
    }  # fmt: skip
    for why, extra in cases.items():
        out = CliRunner().invoke(cli.main, [*base, *extra])
        assert out.exit_code == 2, (why, out.output)
        assert why in out.output and out.output.count("\n") == 1, out.output
    assert not (tmp_path / "x.duckdb").exists()  # refused before anything opened
