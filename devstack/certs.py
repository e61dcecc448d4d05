"""Development TLS material: a dev CA and server certificates, made with ``cryptography`` only.

``inv certs`` (deployment) and ``make up`` with ``DSX_TLS=1`` both call :func:`make_certs`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class ServerCert:
    """A CA's certificate and one server certificate signed by it, with its key (PEM files)."""

    ca: Path
    cert: Path
    key: Path


def server_cert(folder: Path, name: str = "localhost", days: int = 2) -> ServerCert:
    """A new CA and a server certificate ``name`` (SANs: it, localhost, 127.0.0.1, ::1) in ``folder``."""
    make_certs(folder, [name], days=days, force=True)
    return ServerCert(folder / "ca.crt", folder / f"{name}.crt", folder / f"{name}.key")


class CertError(Exception):
    """The certificates cannot be made (a CA key of the wrong kind, a bad argument)."""


CERT_NAMES = (
    "dsx-connect-api",
    "filesystem-connector",
    "aws-s3-connector",
    "azure-blob-storage-connector",
    "google-cloud-storage-connector",
    "sharepoint-connector",
)
DEFAULT_SANS = ("localhost", "127.0.0.1", "::1")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def private_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def alt_names(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    """A SAN extension: an IP address entry for each address in ``hosts``, a DNS name for the others."""
    return x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address(h)) if _is_ip(h) else x509.DNSName(h) for h in hosts]
    )


def self_signed(
    key: PrivateKey,
    common_name: str,
    *,
    days: float,
    backdate: dt.timedelta = dt.timedelta(minutes=5),
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> x509.Certificate:
    """A SHA-256 certificate for ``common_name`` signed by its own ``key``: valid from ``backdate``
    ago (clock skew) for ``days`` (negative: already expired); ``extensions`` as (value, critical)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate)
        .not_valid_after(now + dt.timedelta(days=days))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(key, hashes.SHA256())


def make_certs(
    out: Path,
    names: Sequence[str] = CERT_NAMES,
    extra_hosts: Sequence[str] = (),
    days: int = 825,
    force: bool = False,
) -> list[Path]:
    """A dev CA (``ca.crt``/``ca.key``, reused unless ``force``) and ``<name>.crt``/``.key`` per name.

    Keys are ECDSA P-256 (PKCS#8 PEM), certificates SHA-256 with serverAuth and clientAuth.

    Each server certificate's SANs: its name, localhost, 127.0.0.1, ::1 and ``extra_hosts``.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = _make(out, list(names), list(extra_hosts), days, force)
    for path in written:
        path.chmod(0o600 if path.suffix == ".key" else 0o644)
    return written


def _make(out: Path, names: list[str], extra: list[str], days: int, force: bool) -> list[Path]:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_crt, ca_key_path = out / "ca.crt", out / "ca.key"
    written = []
    if force or not (ca_crt.exists() and ca_key_path.exists()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = self_signed(
            ca_key,
            "dsx-connect development CA",
            days=3650,
            extensions=[
                (x509.BasicConstraints(ca=True, path_length=0), True),
                (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),
                (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False),
            ],
        )
        ca_key_path.write_bytes(private_pem(ca_key))
        ca_crt.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        written += [ca_crt, ca_key_path]
    else:
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise CertError(f"{ca_key_path} is not an ECDSA key: make a new CA with --force")
        ca_key = loaded
        ca_cert = x509.load_pem_x509_certificate(ca_crt.read_bytes())
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(alt_names(_sans(name, extra)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        (out / f"{name}.key").write_bytes(private_pem(key))
        (out / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        written += [out / f"{name}.crt", out / f"{name}.key"]
    return written


def _sans(name: str, extra: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for host in (name, *DEFAULT_SANS, *extra):
        if host and host not in seen:
            seen.append(host)
    return seen
