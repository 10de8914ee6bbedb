"""Opening a staged store: only when its completion marker matches the manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import xarray as xr

from pcflow import storage
from pcflow.staging.retry import StagingError
from pcflow.staging.writer import STATE


class IncompleteStoreError(StagingError):
    """The store is missing, unfinished, or not the one the manifest describes."""


def load_manifest(manifest: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(manifest, dict):
        return manifest
    path = Path(manifest)
    if not path.exists():
        raise IncompleteStoreError(
            f"{path} does not exist: the dataset was never staged completely"
        )
    return json.loads(path.read_text())


def completion_record(manifest: dict[str, Any], target: dict[str, Any]) -> dict[str, Any] | None:
    """The store's `.pcflow/complete.json`, or None when absent."""
    fs = storage.filesystem(storage.target_storage_options(target))
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
    record = completion_record(doc, target)
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
        storage_options=storage.target_storage_options(target),
        **doc.get("xarray:open_kwargs", {"consolidated": True}),
    )
    missing = [v for v in doc.get("variables", {}) if v not in ds.variables]
    if missing:
        raise IncompleteStoreError(f"{doc['url']} lacks variables {missing}: re-run the stage rule")
    return ds
