"""A self-signed certificate for trying the service on a LAN (browsers need https there).

It names every address the service is opened at (loopback, the host, the LAN addresses): a
browser accepting it once on a device then matches it to the URL. A certificate already under
the data directory is kept while it still names them all and is not about to expire, so the
exception a browser stored for it keeps working; a new LAN address (another network, a DHCP
lease) makes a new one.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Not names anyone opens: a wildcard bind address.
NOT_NAMES = ("", "0.0.0.0", "::")  # noqa: S104 - compared, not bound
VALID_DAYS = 365
RENEW_BEFORE_DAYS = 30

SubjectName = x509.DNSName | x509.IPAddress


def subject_names(hosts: Iterable[str]) -> list[SubjectName]:
    """The certificate's subject alternative names: loopback, then ``hosts`` (IP addresses
    as IP names, anything else as DNS names), each once."""
    names: list[SubjectName] = []
    for value in dict.fromkeys((*LOOPBACK_NAMES, *hosts)):
        if value in NOT_NAMES:
            continue
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            names.append(x509.DNSName(value))
    return names


def ensure_self_signed(directory: Path, hosts: Iterable[str]) -> tuple[Path, Path]:
    """The certificate and key under ``directory``, made (again) unless the ones there name
    every one of ``hosts`` and stay valid a while longer."""
    cert_path, key_path = directory / "self-signed.crt", directory / "self-signed.key"
    names = subject_names(hosts)
    if key_path.exists() and _still_fits(cert_path, names):
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "teleconsult self-signed")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def certificate_names(cert: x509.Certificate) -> list[SubjectName]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [name for name in san if isinstance(name, x509.DNSName | x509.IPAddress)]


def _still_fits(cert_path: Path, names: list[SubjectName]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        held = certificate_names(cert)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    renew_at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=RENEW_BEFORE_DAYS)
    return all(name in held for name in names) and cert.not_valid_after_utc > renew_at
