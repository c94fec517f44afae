"""Tokens, roles, result signatures, suite bundles, worker resources (no cluster, no process)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from dtf_core import cli, model
from dtf_core.cluster import security, supervisor
from dtf_core.cluster.scheduler_preload import check_worker
from dtf_core.errors import AuthError, OptionError
from dtf_core.model import AttemptResult
from dtf_core.service import bundle

SECRET = b"s" * 40
OTHER = b"o" * 40


def test_token_roundtrip_roles_and_audiences() -> None:
    tok = security.issue_token(SECRET, role="submitter", subject="ci", ttl_s=60)
    claims = security.verify_token(SECRET, tok, audience=security.API_AUDIENCE)
    assert (claims.subject, claims.role) == ("ci", "submitter")
    security.require_role(claims, "viewer")
    security.require_role(claims, "submitter")
    with pytest.raises(AuthError) as denied:
        security.require_role(claims, "admin")
    assert denied.value.status == 403
    # A worker token does not open the API, nor an API token the scheduler.
    wtok = security.issue_token(SECRET, role="worker", subject="host1", ttl_s=60)
    with pytest.raises(AuthError, match="wrong kind"):
        security.verify_token(SECRET, wtok, audience=security.API_AUDIENCE)
    with pytest.raises(AuthError, match="wrong kind"):
        check_worker(SECRET, {"dtf-token": tok})
    assert check_worker(SECRET, {"dtf-token": wtok}).subject == "host1"


@pytest.mark.parametrize(
    "token, reason",
    [
        (None, "missing token"),
        ("not-a-jwt", "invalid token"),
        (security.issue_token(OTHER, role="admin", subject="x", ttl_s=60), "invalid token"),
        (security.issue_token(SECRET, role="admin", subject="x", ttl_s=60, now=1000), "expired"),
    ],
    # Stable ids: the tokens differ per process (jti, iat), and pytest-xdist needs
    # every worker to collect the same test names.
    ids=["missing", "not-a-jwt", "other-key", "expired"],
)
def test_bad_tokens_are_401_and_never_echoed(token: str | None, reason: str) -> None:
    with pytest.raises(AuthError) as exc:
        security.verify_token(SECRET, token, audience=security.API_AUDIENCE)
    assert exc.value.status == 401
    assert reason in str(exc.value)
    if token:
        assert token not in str(exc.value)
    assert SECRET.decode() not in str(exc.value)


def test_scheduler_refuses_a_worker_without_token() -> None:
    with pytest.raises(AuthError, match="no dtf worker token"):
        check_worker(SECRET, {})


def test_ttl_and_secret_files(tmp_path: Path) -> None:
    assert security.parse_ttl("7d") == 7 * 86400
    assert security.parse_ttl("90") == 90
    assert security.parse_ttl("1.5h") == 5400
    for bad in ("", "soon", "-1d", "0"):
        with pytest.raises(OptionError):
            security.parse_ttl(bad)
    f = tmp_path / "secret"
    security.write_secret(f)
    assert f.stat().st_mode & 0o077 == 0  # owner only
    assert len(security.read_secret(f)) == 64
    with pytest.raises(OptionError, match="already exists"):
        security.write_secret(f)
    short = tmp_path / "short"
    short.write_text("tiny")
    short.chmod(0o600)
    with pytest.raises(OptionError, match="at least 32") as exc:
        security.read_secret(short)
    assert "tiny" not in str(exc.value)
    with pytest.raises(OptionError, match="does not exist"):
        security.read_secret(tmp_path / "nope")


def _result() -> AttemptResult:
    return AttemptResult(
        run_id="r", task_id="t[i=1]", attempt=1, outcome="passed", worker="w1",
        samples=[0.1, 0.2], tests=[model.TestResult("a.py::t", "passed", 0.01)],
    )  # fmt: skip


def test_result_signature_detects_any_change() -> None:
    res = _result()
    security.sign_result(res, SECRET)
    assert res.signature
    assert security.verify_result(res, SECRET) is None
    assert security.verify_result(res, OTHER) == "bad signature"
    for change in (
        lambda r: setattr(r, "outcome", "failed"),
        lambda r: r.samples.append(9.9),
        lambda r: setattr(r.tests[0], "outcome", "failed"),
        lambda r: setattr(r, "worker", "w2"),
    ):
        tampered = _result()
        security.sign_result(tampered, SECRET)
        change(tampered)
        assert "tampered" in (security.verify_result(tampered, SECRET) or "")
    assert security.verify_result(_result(), SECRET) == "the result is not signed"


def test_signing_is_off_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(security.RESULT_KEY_ENV, raising=False)
    security.set_result_key(None)
    res = _result()
    security.sign_result(res)
    assert res.signature == ""


def test_bundle_roundtrip_skips_junk_and_ships_to_new_dirs(tmp_path: Path) -> None:
    src = tmp_path / "suite"
    (src / "pkg").mkdir(parents=True)
    (src / "suite.toml").write_text("[suite]\n")
    (src / "pkg" / "m.py").write_text("x = 1\n")
    (src / ".venv" / "lib").mkdir(parents=True)
    (src / ".venv" / "lib" / "big.py").write_text("junk")
    (src / "old.duckdb").write_text("db")
    data = bundle.pack(src, limit=10**6)
    dest = tmp_path / "out"
    bundle.unpack(data, dest, unpacked_limit=10**6, entry_limit=100)
    assert (dest / "pkg" / "m.py").read_text() == "x = 1\n"
    assert not (dest / ".venv").exists() and not (dest / "old.duckdb").exists()


def test_bundle_limits_and_unsafe_archives(tmp_path: Path) -> None:
    src = tmp_path / "s"
    src.mkdir()
    (src / "blob.bin").write_bytes(os.urandom(300_000))  # random: gzip cannot shrink it
    with pytest.raises(OptionError, match="MB"):
        bundle.pack(src, limit=100_000)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(OptionError, match="unsafe"):
        bundle.unpack(buf.getvalue(), tmp_path / "x", unpacked_limit=10**6, entry_limit=100)
    with pytest.raises(OptionError, match="cannot be unpacked"):
        bundle.unpack(b"not a tarball", tmp_path / "y", unpacked_limit=10**6, entry_limit=100)


def test_worker_resources_from_hardware_with_a_mocked_gpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dtf_core.cluster import hardware

    token = tmp_path / "worker.jwt"
    security.write_private(
        token, security.issue_token(SECRET, role="worker", subject="h", ttl_s=60)
    )
    info = {**hardware.describe(), "gpus": [{"name": "NVIDIA H100", "memory_bytes": 8 << 30}] * 2}
    res = supervisor.derive_resources(info)
    assert res["GPU"] == 2 and res["CPU"] >= 1 and "MEM_GB" in res and "DISK_GB" in res
    monkeypatch.setattr(hardware, "describe", lambda: info)
    out = CliRunner().invoke(
        cli.main,
        ["worker", "tcp://127.0.0.1:1", "--token-file", str(token), "-r", "CUDA=1", "--dry-run"],
    )
    assert out.exit_code == 0, out.output
    assert "GPU=2" in out.output and "CUDA=1" in out.output
    # The credentials go over a pipe: the worker's command line names no file.
    assert "--preload dtf_core.worker_preload" in out.output
    assert "--preload-nanny dtf_core.worker_preload" in out.output
    assert str(token) not in out.output and "--dtf-token" not in out.output


def test_token_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    secret = tmp_path / "secret"
    assert runner.invoke(cli.main, ["token", "secret", str(secret)]).exit_code == 0
    out = runner.invoke(
        cli.main,
        ["token", "issue", "--role", "viewer", "--ttl", "1h", "--subject", "me",
         "--secret-file", str(secret)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    claims = security.verify_token(
        security.read_secret(secret), out.stdout.strip(), audience=security.API_AUDIENCE
    )
    assert claims.role == "viewer"
    bad = runner.invoke(
        cli.main,
        ["token", "issue", "--role", "viewer", "--ttl", "soon", "--subject", "me",
         "--secret-file", str(secret)],
    )  # fmt: skip
    assert bad.exit_code == 2 and "--ttl" in bad.output


def test_submit_checks_the_suite_before_contacting_anyone(tmp_path: Path) -> None:
    bad = Path(__file__).parents[1] / "data" / "bad" / "missing_kind.toml"
    out = CliRunner().invoke(
        cli.main, ["submit", str(bad), "--coordinator", "http://127.0.0.1:9", "--token", "x"]
    )
    assert out.exit_code == 2
    assert len(out.output.strip().splitlines()) == 1


def test_a_remembered_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    tok = security.issue_token(SECRET, role="viewer", subject="console", ttl_s=60)
    first = security.verify_token(SECRET, tok, audience=security.API_AUDIENCE)
    assert security.verify_token(SECRET, tok, audience=security.API_AUDIENCE) is first  # a hit
    # Other secrets and audiences never share the entry.
    with pytest.raises(AuthError, match="invalid token"):
        security.verify_token(OTHER, tok, audience=security.API_AUDIENCE)
    with pytest.raises(AuthError, match="wrong kind"):
        security.verify_token(SECRET, tok, audience=security.WORKER_AUDIENCE)
    later = first.expires_at + 60
    monkeypatch.setattr(security.time, "time", lambda: later)
    with pytest.raises(AuthError, match="expired"):
        security.verify_token(SECRET, tok, audience=security.API_AUDIENCE)
