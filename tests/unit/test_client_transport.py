"""The coordinator client never sends a token in clear text off this machine:
plain http:// is refused before any connection unless --insecure, both in the
library and on the command line (`dtf-core submit`, `dtf-tui`)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dtf_core import cli
from dtf_core.cluster import security
from dtf_core.errors import OptionError, ServiceError
from dtf_core.service.client import CoordinatorClient, is_loopback
from dtf_tui.cli import main as tui_main

TEST_NET = "http://192.0.2.1:8780"  # RFC 5737: nothing answers there


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every connection attempt, refused on the spot (a test never waits on TEST-NET)."""
    seen: list[Any] = []

    def refuse(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        seen.append(address)
        raise ConnectionRefusedError(f"test: no connection to {address}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return seen


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.9.8.7", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("LOCALHOST.", True), ("192.0.2.1", False), ("10.0.0.1", False),
     ("::ffff:10.0.0.1", False), ("dtf.example", False), ("localhost.example", False)],
)  # fmt: skip
def test_loopback_is_127_8_and_1_and_localhost(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_token_over_plain_http_off_this_machine_is_refused(connections: list[Any]) -> None:
    with pytest.raises(OptionError) as refused:
        CoordinatorClient(TEST_NET, "a-token")
    message = str(refused.value)
    assert TEST_NET in message and "https://" in message and "--insecure" in message
    assert "a-token" not in message
    # One non-loopback URL among standbys is enough to refuse.
    with pytest.raises(OptionError, match=r"192\.0\.2\.1"):
        CoordinatorClient(f"http://127.0.0.1:1,{TEST_NET}", "a-token")
    assert connections == []


def test_what_may_go_over_plain_http(connections: list[Any], monkeypatch: Any) -> None:
    monkeypatch.delenv("DTF_TOKEN", raising=False)
    CoordinatorClient("http://127.0.0.1:8780,http://localhost:8781", "a-token")
    CoordinatorClient(TEST_NET, None)  # no token: nothing to leak (the server answers 401)
    CoordinatorClient("https://192.0.2.1:8780", "a-token")
    insecure = CoordinatorClient(TEST_NET, "a-token", insecure=True)
    with pytest.raises(ServiceError, match="could not reach"):
        insecure.health()
    assert connections == [("192.0.2.1", 8780)]


def test_the_token_in_the_environment_counts(connections: list[Any], monkeypatch: Any) -> None:
    monkeypatch.setenv("DTF_TOKEN", "from-env")
    with pytest.raises(OptionError, match="refusing to send a token"):
        CoordinatorClient(TEST_NET, None)
    assert connections == []


def test_a_bad_ca_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(OptionError, match=f"--ca {bad}: not a readable PEM"):
        CoordinatorClient("https://127.0.0.1:8780", "t", ca_file=str(bad))


def test_submit_refuses_before_connecting_and_insecure_lets_it_try(
    tmp_path: Path, connections: list[Any]
) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text(
        '[suite]\nname = "s"\n[[task]]\nname = "t"\nkind = "command"\ncommand = ["true"]\n'
    )
    argv = ["submit", str(suite), "--coordinator", TEST_NET, "--token", "a-token"]
    refused = CliRunner().invoke(cli.main, argv)
    assert refused.exit_code == 2, refused.output
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and TEST_NET in lines[0] and "--insecure" in lines[0], lines
    assert connections == []
    tried = CliRunner().invoke(cli.main, [*argv, "--insecure"])
    assert tried.exit_code == 3, tried.output
    assert "could not reach the coordinator at http://192.0.2.1:8780" in tried.output
    assert connections == [("192.0.2.1", 8780)]


def test_the_console_refuses_the_same_way(connections: list[Any]) -> None:
    out = CliRunner().invoke(tui_main, ["--coordinator", TEST_NET, "--token", "a-token"])
    assert out.exit_code == 2, out.output
    assert "refusing to send a token over plain HTTP to http://192.0.2.1:8780" in out.output
    assert connections == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--api-tls-cert", "{cert}"], "HTTPS needs both --api-tls-cert and --api-tls-key"),
        (["--api-tls-cert", "{cert}", "--api-tls-key", "{cert}"], "not a PEM certificate"),
        (["--upload-limit", "lots"], "--upload-limit: 'lots' is not a size such as 50MB"),
        (["--keep-uploads-for", "soon"], "--keep-uploads-for: 'soon' is not a duration"),
    ],
)
def test_serve_refuses_bad_https_files_and_limits_before_starting(
    tmp_path: Path, connections: list[Any], extra: list[str], message: str
) -> None:
    security.write_secret(tmp_path / "secret")
    cert = tmp_path / "cert.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n")
    argv = ["serve", "--scheduler", "tcp://192.0.2.1:8786", "--secret-file",
            str(tmp_path / "secret"), "--db", str(tmp_path / "dtf.duckdb")]  # fmt: skip
    out = CliRunner().invoke(cli.main, [*argv, *(a.format(cert=cert) for a in extra)])
    assert out.exit_code == 2, out.output
    assert message in out.output and out.output.count("\n") == 1, out.output
    assert connections == [] and not (tmp_path / "dtf.duckdb").exists()
