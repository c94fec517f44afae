"""Mutual TLS: the certificate helper's files work with distributed.Security."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from distributed import Client, LocalCluster, Security

from dtf_core import cli
from dtf_core.cluster.tls import client_security
from dtf_core.errors import OptionError

pytest.importorskip("cryptography")


@pytest.mark.timeout(60)
def test_certs_secure_dask_comms(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli.main, ["tls", "certs", str(tmp_path), "--host", "dtf.example"])
    assert out.exit_code == 0, out.output
    ca, cert, key = (str(tmp_path / n) for n in ("ca.pem", "cert.pem", "key.pem"))
    assert (tmp_path / "key.pem").stat().st_mode & 0o077 == 0
    server = Security(
        tls_ca_file=ca, tls_scheduler_cert=cert, tls_scheduler_key=key,
        tls_worker_cert=cert, tls_worker_key=key, tls_client_cert=cert, tls_client_key=key,
        require_encryption=True,
    )  # fmt: skip
    with LocalCluster(
        n_workers=1, processes=False, protocol="tls://", host="127.0.0.1",
        security=server, dashboard_address=None,
    ) as lc:  # fmt: skip
        assert lc.scheduler_address.startswith("tls://")
        sec = client_security(ca, cert, key)
        with Client(lc.scheduler_address, security=sec, timeout=10) as c:
            assert c.submit(lambda x: x + 1, 1).result(timeout=10) == 2
        # Without a certificate there is no way in.
        with pytest.raises((OSError, TimeoutError)):
            Client(lc.scheduler_address.replace("tls://", "tcp://"), timeout=2)
    with pytest.raises(OptionError, match="needs all"):
        client_security(ca, cert, None)
    again = CliRunner().invoke(cli.main, ["tls", "certs", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
