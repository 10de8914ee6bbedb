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
