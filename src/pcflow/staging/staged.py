"""Opening a staged store: only when its completion marker matches the manifest."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import xarray as xr

from pcflow import storage
from pcflow.staging.retry import StagingError
from pcflow.staging.writer import STATE


class IncompleteStoreError(StagingError):
    """The store is missing, unfinished, or not the one the manifest describes."""


class NoCredentialError(StagingError):
    """No credential for the target account was found; str() is one line naming the fixes."""


CREDENTIAL_OPTIONS = ("account_key", "sas_token", "connection_string", "credential")
CREDENTIAL_PROBE_S = 15.0  # DefaultAzureCredential's whole chain, IMDS probe included
STORAGE_SCOPE = "https://storage.azure.com/.default"


def _probe_default_credential(deadline_s: float) -> str | None:
    """None if DefaultAzureCredential yields a storage token within the deadline, else why not.

    adlfs builds the same chain (async) when options carry no credential; left to itself a
    failing chain is retried for ~85 s per read and prints a 20-line error. The probe runs in
    a daemon thread so a hung identity endpoint cannot hold the caller past the deadline.
    """
    from azure.identity import DefaultAzureCredential

    outcome: dict[str, str | None] = {}

    def probe() -> None:
        try:
            DefaultAzureCredential().get_token(STORAGE_SCOPE)
            outcome["why"] = None
        except Exception as err:  # noqa: BLE001 - any failure means "no usable credential"
            outcome["why"] = type(err).__name__

    thread = threading.Thread(target=probe, name="credential-probe", daemon=True)
    thread.start()
    thread.join(deadline_s)
    if "why" not in outcome:
        return f"no token within {deadline_s:.0f} s"
    return outcome["why"]


def reader_storage_options(storage_options: dict[str, Any], account_name: str) -> dict[str, Any]:
    """Storage options to read a staged store, with a credential known to work.

    Options that carry a key, SAS, connection string or credential are returned as they are.
    Otherwise the Azure identity chain (managed identity, workload identity, `az login`) is
    tried once, within CREDENTIAL_PROBE_S: on success its async credential is added (what
    adlfs would have used); on failure a NoCredentialError names the fixes, in seconds.
    """
    if any(storage_options.get(k) for k in CREDENTIAL_OPTIONS) or storage_options.get("anon"):
        return storage_options
    why = _probe_default_credential(CREDENTIAL_PROBE_S)
    if why is not None:
        raise NoCredentialError(
            f"no credential for storage account {account_name!r} ({why} from the Azure "
            "identity chain) — set PCFLOW_TARGET_SAS_TOKEN, PCFLOW_TARGET_ACCOUNT_KEY or "
            "PCFLOW_TARGET_CONNECTION_STRING, or sign in (`az login`, managed identity)"
        )
    from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential

    return {**storage_options, "credential": AsyncDefaultAzureCredential()}


def load_manifest(manifest: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(manifest, dict):
        return manifest
    path = Path(manifest)
    if not path.exists():
        raise IncompleteStoreError(
            f"{path} does not exist: the dataset was never staged completely"
        )
    return json.loads(path.read_text())


def completion_record(
    manifest: dict[str, Any], target: dict[str, Any], options: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The store's `.pcflow/complete.json`, or None when absent."""
    fs = storage.filesystem(options or storage.target_storage_options(target))
    root = manifest["url"].split("://", 1)[1]
    try:
        return json.loads(fs.cat_file(f"{root}/{STATE}/complete.json"))
    except FileNotFoundError:
        return None


def open_staged(manifest: dict[str, Any] | str | Path, target: dict[str, Any]) -> xr.Dataset:
    """Open a staged Zarr store lazily, refusing it unless it is complete and matches the manifest.

    A store is complete when `.pcflow/complete.json` exists (written last, after verification) and
    its checksum equals the manifest's: a store being rewritten or resumed has no such marker.
    """
    doc = load_manifest(manifest)
    for key in ("url", "checksum"):
        if key not in doc:
            raise IncompleteStoreError(f"manifest lacks {key!r}: re-run the stage rule")
    # Credential first: without one, fail in seconds with one line (not ~85 s of retries).
    options = reader_storage_options(storage.target_storage_options(target), target["account_name"])
    record = completion_record(doc, target, options)
    if record is None:
        raise IncompleteStoreError(
            f"{doc['url']} is incomplete (no completion marker): re-run the stage rule to finish it"
        )
    if record.get("checksum") != doc["checksum"]:
        raise IncompleteStoreError(
            f"{doc['url']} changed since this manifest was written (checksum "
            f"{record.get('checksum', '?')[:12]} != {doc['checksum'][:12]}): re-run the stage rule"
        )
    ds = xr.open_zarr(
        doc["url"],
        storage_options=options,
        **doc.get("xarray:open_kwargs", {"consolidated": True}),
    )
    missing = [v for v in doc.get("variables", {}) if v not in ds.variables]
    if missing:
        raise IncompleteStoreError(f"{doc['url']} lacks variables {missing}: re-run the stage rule")
    return ds
