"""open_staged without any credential: one line within seconds (was ~85 s of retries)."""

from __future__ import annotations

import time

import pytest

from pcflow.staging import open_staged, staged

MANIFEST = {"url": "az://pcflow/demo/daymet-hi.zarr", "checksum": "f" * 64}
TARGET = {"account_name": "pcflowdemo", "container": "pcflow"}


@pytest.fixture
def no_credential(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith(("PCFLOW_TARGET_", "AZURE_", "IDENTITY_", "MSI_")):
            monkeypatch.delenv(name)
    # A closed local port: nothing here may reach a network either way.
    monkeypatch.setenv("PCFLOW_AZURE_ACCOUNT_HOST", "127.0.0.1:9/{account_name}")


def test_no_credential_fails_in_seconds_with_one_line(no_credential):
    # Before: DefaultAzureCredential's chain retried inside adlfs for 88.6 s (measured) and
    # ended in a 20-line ClientAuthenticationError.
    start = time.monotonic()
    with pytest.raises(staged.NoCredentialError) as err:
        open_staged(MANIFEST, TARGET)
    elapsed = time.monotonic() - start
    msg = str(err.value)
    assert "\n" not in msg and "'pcflowdemo'" in msg
    assert "PCFLOW_TARGET_SAS_TOKEN" in msg and "az login" in msg
    assert elapsed < staged.CREDENTIAL_PROBE_S + 10  # generous on a loaded machine


def test_a_hung_identity_endpoint_cannot_outlast_the_deadline(no_credential, monkeypatch):
    import azure.identity

    class Hung:
        def get_token(self, *scopes):
            time.sleep(60)

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", Hung)
    monkeypatch.setattr(staged, "CREDENTIAL_PROBE_S", 1.0)
    start = time.monotonic()
    with pytest.raises(staged.NoCredentialError, match="no token within 1 s"):
        open_staged(MANIFEST, TARGET)
    assert time.monotonic() - start < 10


def test_explicit_credentials_skip_the_probe(monkeypatch):
    def boom(_):
        raise AssertionError("probed although a key was given")

    monkeypatch.setattr(staged, "_probe_default_credential", boom)
    opts = {"account_name": "a", "account_key": "k"}
    assert staged.reader_storage_options(opts, "a") is opts
