"""A throwaway certificate authority so the sandbox's Azure Blob stand-in speaks HTTPS.

adlfs and the Azure SDK only talk https to an `account_host`, and GDAL must read COGs over
https too, so Azurite gets a server certificate for 127.0.0.1/localhost signed by a small CA
made per state dir. Clients trust it through a bundle = certifi's roots + this CA (exported as
SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE), so public hosts stay trusted as well.

Trusting a CA whose key sits in a local directory must not extend to the world: the CA is valid
30 days (remade, with a new server certificate, when fewer than 2 days are left) and carries a
critical X.509 NameConstraints extension that permits only 127.0.0.1, ::1 and localhost, so a
certificate it signs for any other host is rejected by every verifier.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pcflow.sandbox.private import check_private, private_dir, write_private

VALID_DAYS = 30  # short: a leaked CA key is useful for a month at most
RENEW_DAYS = 2  # remade at `sandbox up` when fewer days are left
PERMITTED = (
    x509.IPAddress(ipaddress.ip_network("127.0.0.1/32")),
    x509.IPAddress(ipaddress.ip_network("::1/128")),
    x509.DNSName("localhost"),
)


@dataclass(frozen=True)
class CertPaths:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    bundle: Path


def cert_paths(state_dir: Path) -> CertPaths:
    d = Path(state_dir) / "certs"
    return CertPaths(
        ca_cert=d / "ca.pem",
        ca_key=d / "ca-key.pem",
        server_cert=d / "server.pem",
        server_key=d / "server-key.pem",
        bundle=d / "ca-bundle.pem",
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by the owner only (created 0600, never wider)."""
    write_private(path, data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pcflow sandbox local CA")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.NameConstraints(permitted_subtrees=list(PERMITTED), excluded_subtrees=None),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_server(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(ca_cert.not_valid_after_utc)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _ca_current(paths: CertPaths, renew: bool) -> bool:
    """The stored CA is usable: present, private, name-constrained and not about to expire."""
    if not (paths.ca_cert.exists() and paths.ca_key.exists()):
        return False
    check_private(paths.ca_key)
    if not renew:
        return True
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    try:
        ca.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return False  # made by an older pcflow: unconstrained, so remade
    left = ca.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return left > dt.timedelta(days=RENEW_DAYS)


def ensure_certs(state_dir: Path, renew: bool = True) -> CertPaths:
    """Create the CA, the server certificate and the trust bundle unless current ones exist.

    renew=False keeps an existing CA even if old or unconstrained (for callers that only need
    the paths while Azurite may be serving the current certificate); Azurite's start renews.
    """
    paths = cert_paths(state_dir)
    private_dir(paths.ca_cert.parent)
    if not _ca_current(paths, renew):
        ca_key, ca_cert = _make_ca()
        _write_private(paths.ca_key, _key_pem(ca_key))
        paths.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        paths.server_cert.unlink(missing_ok=True)  # a new CA invalidates the old server cert
        paths.bundle.unlink(missing_ok=True)
    if paths.server_key.exists():
        check_private(paths.server_key)
    if not (paths.server_cert.exists() and paths.server_key.exists()):
        ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        key, cert = _make_server(ca_key, ca_cert)  # type: ignore[arg-type]
        _write_private(paths.server_key, _key_pem(key))
        paths.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if not paths.bundle.exists():
        roots = Path(certifi.where()).read_text()
        local = paths.ca_cert.read_text()
        paths.bundle.write_text(f"{roots.rstrip()}\n\n# pcflow sandbox local CA\n{local}")
    return paths
