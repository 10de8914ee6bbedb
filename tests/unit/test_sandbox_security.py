"""Sandbox certificates, account keys and the SAS token app (in process, no servers)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from urllib.parse import parse_qs

import pytest
from cryptography import x509

from pcflow.sandbox import accounts, certs
from pcflow.sandbox.sas_app import create_app


def test_ca_and_server_certificate_chain(tmp_path):
    paths = certs.ensure_certs(tmp_path)
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for key in (paths.ca_key, paths.server_key):
        assert key.stat().st_mode & 0o077 == 0
    # The bundle trusts public roots and the sandbox CA.
    ctx = ssl.create_default_context(cafile=str(paths.bundle))
    subjects = [c["subject"] for c in ctx.get_ca_certs()]
    assert len(subjects) > 50
    assert ((("commonName", "pcflow sandbox local CA"),),) in subjects


def test_certificates_are_made_once(tmp_path):
    first = certs.ensure_certs(tmp_path).server_cert.read_bytes()
    assert certs.ensure_certs(tmp_path).server_cert.read_bytes() == first


def test_account_keys_are_random_per_state_dir_and_private(tmp_path):
    a = accounts.ensure_account_keys(tmp_path / "a")
    b = accounts.ensure_account_keys(tmp_path / "b")
    assert set(a) == {"daymeteuwest", "sentinel2l2a01", "pcflowdemo"}
    assert all(a[n] != b[n] for n in a)
    assert accounts.ensure_account_keys(tmp_path / "a") == a  # stable once made
    assert accounts.keys_path(tmp_path / "a").stat().st_mode & 0o077 == 0
    value = accounts.azurite_accounts_value(a)
    assert value.count(";") == 2 and value.startswith("daymeteuwest:")


@pytest.fixture
def client(tmp_path):
    from fastapi.testclient import TestClient

    keys = accounts.ensure_account_keys(tmp_path)
    app = create_app(keys, {("daymeteuwest", "daymet-zarr")}, expiry_seconds=600, blob_port=10000)
    return TestClient(app)


def test_token_has_mpc_shape_read_list_and_expiry(client):
    resp = client.get("/api/sas/v1/token/daymeteuwest/daymet-zarr")
    assert resp.status_code == 200
    doc = resp.json()
    assert set(doc) == {"msft:expiry", "token"}
    expiry = dt.datetime.strptime(doc["msft:expiry"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    left = (expiry - dt.datetime.now(dt.UTC)).total_seconds()
    assert 590 < left <= 600
    q = parse_qs(doc["token"])
    assert q["sp"] == ["rl"] and q["sr"] == ["c"] and q["se"] == [doc["msft:expiry"]]
    assert q["sig"][0]
    # planetary_computer parses the response the same way it parses MPC's.
    from planetary_computer.sas import SASToken

    assert SASToken(**doc).ttl() > 500


def test_unknown_account_or_container_is_404(client):
    assert client.get("/api/sas/v1/token/daymeteuwest/other").status_code == 404
    assert client.get("/api/sas/v1/token/sentinel2l2a01/daymet-zarr").status_code == 404


def test_sign_endpoint_appends_token(client):
    href = "https://127.0.0.1:10000/daymeteuwest/daymet-zarr/daily/hi.zarr/.zmetadata"
    doc = client.get("/api/sas/v1/sign", params={"href": href}).json()
    assert doc["href"].startswith(href + "?") and "sig=" in doc["href"]
    other = "https://example.com/daymeteuwest/daymet-zarr/x"
    assert client.get("/api/sas/v1/sign", params={"href": other}).status_code == 404


# -- hardening (issue 12 hole 10) -----------------------------------------------------------


def _leaf(ca_key, ca_cert, names):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def test_ca_is_short_lived_and_name_constrained_to_loopback(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    paths = certs.ensure_certs(tmp_path)
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    assert ca.not_valid_after_utc - ca.not_valid_before_utc <= dt.timedelta(days=31)
    ext = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert ext.critical
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    verifier = PolicyBuilder().store(Store([ca])).build_server_verifier

    # The sandbox's own server certificate verifies for 127.0.0.1 ...
    server = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1"))).verify(server, [])
    # ... but the CA key cannot mint a certificate any verifier accepts for another host.
    evil = _leaf(ca_key, ca, [x509.DNSName("login.microsoftonline.com")])
    with pytest.raises(VerificationError):
        verifier(x509.DNSName("login.microsoftonline.com")).verify(evil, [])
    evil_ip = _leaf(ca_key, ca, [x509.IPAddress(ipaddress.ip_address("10.0.0.1"))])
    with pytest.raises(VerificationError):
        verifier(x509.IPAddress(ipaddress.ip_address("10.0.0.1"))).verify(evil_ip, [])


def test_an_old_unconstrained_ca_is_remade_when_azurite_starts(tmp_path):
    paths = certs.ensure_certs(tmp_path)
    first = paths.ca_cert.read_bytes()
    assert certs.ensure_certs(tmp_path).ca_cert.read_bytes() == first  # current: kept
    # Simulate an older pcflow's 10-year CA without name constraints.
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    now = dt.datetime.now(dt.UTC)
    old = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    paths.ca_cert.write_bytes(old.public_bytes(serialization.Encoding.PEM))
    assert certs.ensure_certs(tmp_path, renew=False).ca_cert.read_bytes() != first  # kept
    renewed = x509.load_pem_x509_certificate(certs.ensure_certs(tmp_path).ca_cert.read_bytes())
    renewed.extensions.get_extension_for_class(x509.NameConstraints)
    server = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    server.verify_directly_issued_by(renewed)


@pytest.mark.parametrize("which", ["account-keys", "ca-key", "server-key"])
def test_key_files_with_a_widened_mode_are_refused(tmp_path, which):
    from pcflow.sandbox import SandboxError

    accounts.ensure_account_keys(tmp_path)
    paths = certs.ensure_certs(tmp_path)
    target = {
        "account-keys": accounts.keys_path(tmp_path),
        "ca-key": paths.ca_key,
        "server-key": paths.server_key,
    }[which]
    target.chmod(0o644)
    with pytest.raises(SandboxError) as info:
        accounts.ensure_account_keys(tmp_path)
        certs.ensure_certs(tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(target) in message and "chmod 600" in message


def test_state_dirs_are_private(tmp_path):
    from pcflow.sandbox import Sandbox
    from pcflow.sandbox import gateway as gateway_server

    state = tmp_path / "state"
    sb = Sandbox(state, 25990)
    with sb._locked():
        pass
    assert state.stat().st_mode & 0o777 == 0o700
    # An existing, world-readable state dir is tightened too.
    state.chmod(0o755)
    with sb._locked():
        pass
    assert state.stat().st_mode & 0o777 == 0o700
    accounts.ensure_account_keys(tmp_path / "fresh")
    assert (tmp_path / "fresh").stat().st_mode & 0o077 == 0
    gw = tmp_path / "gw"
    gateway_server.write_config(gw, 25991, 25992)
    assert gw.stat().st_mode & 0o077 == 0
    password = gateway_server.password_path(gw)
    assert password.stat().st_mode & 0o077 == 0 and len(password.read_text()) >= 32
    config_text = (gw / gateway_server.CONFIG_NAME).read_text()
    assert password.read_text() not in config_text and str(password) in config_text
    env = gateway_server.env(25991, state_dir=gw)
    assert env["DASK_GATEWAY__AUTH__KWARGS__PASSWORD"] == password.read_text()


def test_constrained_ca_still_verifies_a_real_tls_handshake_on_loopback(tmp_path):
    """OpenSSL (what Python, GDAL/curl use) accepts the name-constrained chain for 127.0.0.1."""
    import socket
    import threading

    paths = certs.ensure_certs(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(paths.server_cert, paths.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors = []

    def serve():
        try:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
        except OSError as err:  # pragma: no cover - reported below
            errors.append(err)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(paths.bundle))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.recv(2) == b"ok"
    thread.join(30)
    listener.close()
    assert not errors
