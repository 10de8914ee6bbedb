"""The run record (results/provenance.json): the run's provenance and what every dataset's
outputs hold (STAC items, Zarr chunk checksums, NetCDF value hashes)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pcflow import provenance

RUN_RECORD_SCHEMA = "pcflow-run-record/1"
ZARR_METADATA = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}


def _array_of(key: str) -> str:
    """The array a chunk key belongs to (v3 `var/c/0/0`, v2 `var/0.0`)."""
    if "/c/" in key or key.startswith("c/"):
        return key.split("/c/", 1)[0] if "/c/" in key else ""
    return key.rsplit("/", 1)[0] if "/" in key else ""


def is_chunk_key(key: str) -> bool:
    """Chunk objects only: not metadata (zarr.json, .zarray, ...) nor hidden state (.pcflow/)."""
    parts = key.split("/")
    return not any(p.startswith(".") for p in parts) and parts[-1] not in ZARR_METADATA


def zarr_digests(url: str, storage_options: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per array: number of chunk objects and a sha256 over (chunk key, chunk sha256), sorted.

    Metadata documents (zarr.json, .zattrs, ...) are left out: they carry the provenance
    record itself, which names the commit and so legitimately differs between runs.
    """
    from pcflow import storage

    fs = storage.filesystem(dict(storage_options))
    root = url.split("://", 1)[-1].rstrip("/")
    keys = sorted(k for k in (p[len(root) + 1 :] for p in fs.find(root)) if is_chunk_key(k))
    arrays: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), 64):
        batch = keys[start : start + 64]
        blobs = fs.cat([f"{root}/{k}" for k in batch])
        for key in batch:
            entry = arrays.setdefault(_array_of(key), {"chunks": 0, "_h": []})
            entry["chunks"] += 1
            entry["_h"].append(f"{key}:{hashlib.sha256(blobs[f'{root}/{key}']).hexdigest()}")
    for entry in arrays.values():
        entry["sha256"] = hashlib.sha256("\n".join(entry.pop("_h")).encode()).hexdigest()
    return arrays


def netcdf_digests(path: str | Path) -> dict[str, dict[str, Any]]:
    """Per variable and coordinate: dtype, shape and sha256 of the values (C order)."""
    import xarray as xr

    out = {}
    with xr.open_dataset(path) as ds:
        for name in sorted(map(str, ds.variables)):
            values = np.ascontiguousarray(ds[name].values)
            out[name] = {
                "dtype": str(values.dtype),
                "shape": list(values.shape),
                "sha256": hashlib.sha256(values.tobytes()).hexdigest(),
            }
    return out


def _manifest_url(manifest: Mapping[str, Any]) -> str | None:
    for key in ("url", "store", "zarr_url", "href"):
        if isinstance(manifest.get(key), str):
            return manifest[key]
    return None


def dataset_results(
    config: Mapping[str, Any], results: Path, name: str, hash_zarr: bool = True
) -> dict[str, Any]:
    """What one dataset's outputs hold: STAC items, Zarr chunk checksums, NetCDF value hashes."""
    from pcflow import storage

    out: dict[str, Any] = {}
    items = results / name / "items.json"
    if items.exists():
        out["stac"] = provenance.with_stac({}, json.loads(items.read_text()))["stac"]
    manifest_path = results / name / "staged.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        url = _manifest_url(manifest) or storage.target_url(config["target"], name)
        out["zarr"] = {"url": url}
        if hash_zarr:
            opts = storage.target_storage_options(dict(config["target"]))
            out["zarr"]["arrays"] = zarr_digests(url, opts)
    out["results"] = {}
    made_by = {}  # outputs kept from an earlier run name their own commit
    for path in (items, manifest_path):
        if path.exists():
            made_by[path.name] = (json.loads(path.read_text()).get("provenance") or {}).get("git")
    for reduction in config["datasets"][name].get("reductions", []):
        nc = results / name / f"{reduction}.nc"
        if nc.exists():
            out["results"][reduction] = netcdf_digests(nc)
            made_by[nc.name] = provenance.from_output(nc).get("git")
    out["made_by"] = {k: (v or {}).get("commit") for k, v in made_by.items()}
    return out


def write_run_record(
    config: Mapping[str, Any],
    record: Mapping[str, Any],
    results: str | Path,
    out: str | Path,
    log_path: str | None = None,
) -> dict[str, Any]:
    """Write results/provenance.json: the run's provenance + per-dataset result checksums."""
    from pcflow.workflow.steps import write_json

    results = Path(results)
    doc = {
        "schema": RUN_RECORD_SCHEMA,
        "provenance": dict(record),
        "datasets": {
            name: dataset_results(config, results, name) for name in sorted(config["datasets"])
        },
    }
    write_json(out, doc)
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text(f"wrote {out}: {provenance.summary(record)}\n")
    return doc
