"""Mutual TLS for Dask comms: a small certificate helper and the ``Security``
object dtf's clients use.

Dask does not authenticate clients: anyone who reaches the scheduler port can
run code on every worker. Mutual TLS (``distributed.Security``) closes the
port to whoever lacks a certificate signed by the deployment's CA. The helper
makes one CA and one certificate (server and client use) valid for the given
host names; per-host certificates from your own PKI work the same way.
``cryptography`` is needed only here (``pip install 'dtf[tls]'``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import stat
from pathlib import Path

from distributed import Security

from dtf_core.errors import OptionError


def make_certs(out_dir: str | os.PathLike[str], hosts: list[str], days: int = 365) -> list[Path]:
    """Write ``ca.pem``, ``cert.pem`` and ``key.pem`` (owner-only) into ``out_dir``."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise OptionError(
            "the certificate helper needs `cryptography`: pip install 'dtf[tls]'"
        ) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "ca.pem", out / "cert.pem", out / "key.pem"]
    for p in paths:
        if p.exists():
            raise OptionError(f"{p} already exists; remove it or choose another directory")
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "dtf")])
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dtf deployment CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False, data_encipherment=False,
                          key_agreement=False, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for h in dict.fromkeys(["localhost", "127.0.0.1", *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(both), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    fd = os.open(paths[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    return paths


def client_security(ca_file: str | None, cert: str | None, key: str | None) -> Security | None:
    """A ``Security`` for dtf's own Dask client, or None when TLS is not asked for."""
    given = [x for x in (ca_file, cert, key) if x]
    if not given:
        return None
    if len(given) != 3:
        raise OptionError("mutual TLS needs all of --tls-ca-file, --tls-cert and --tls-key")
    for p in given:
        if not os.path.isfile(p):
            raise OptionError(f"TLS file {p} does not exist")
    return Security(
        tls_ca_file=ca_file, tls_client_cert=cert, tls_client_key=key, require_encryption=True
    )
