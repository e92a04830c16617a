"""A throw-away self-signed certificate for the benchmarks' ``tls+tcp://`` rows.

Made with the ``cryptography`` package when it is installed (it comes with the test
extra, through ``trustme``); without it :func:`make_self_signed` returns None and the
tls+tcp rows are skipped with a line saying so.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from pathlib import Path

__all__ = ["SERVER_NAME", "make_self_signed"]

SERVER_NAME = "localhost"


def make_self_signed(folder: Path) -> dict[str, str] | None:
    """Write a key and a self-signed certificate for localhost / 127.0.0.1 into ``folder``.

    Returns the TLS description the benchmark peers take (``cert_key_file`` for the
    listener, ``ca_file`` and ``server_name`` for the dialer), or None without ``cryptography``.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return None
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    cert_key_file = folder / "server.pem"
    ca_file = folder / "ca.pem"
    cert_key_file.write_bytes(cert_pem + key_pem)
    ca_file.write_bytes(cert_pem)
    return {"cert_key_file": str(cert_key_file), "ca_file": str(ca_file), "server_name": SERVER_NAME}
