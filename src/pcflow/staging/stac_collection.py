"""A STAC Collection describing a staged Zarr store with MPC's asset conventions.

Readers use it exactly like an MPC collection:

    asset = collection.assets["zarr-abfs"]
    xr.open_zarr(asset.href, **asset.extra_fields["xarray:open_kwargs"],
                 storage_options=asset.extra_fields["xarray:storage_options"])

(plus their own credential, and `account_host` from storage.with_account_host in the sandbox).
Nothing secret and nothing machine-local goes in: storage options are filtered through
storage.public_storage_options.
"""

from __future__ import annotations

from typing import Any

from pcflow import storage


def _temporal(manifest: dict[str, Any]) -> list[list[str | None]]:
    for name in ("time", "t"):
        c = manifest.get("coords", {}).get(name)
        if c and c.get("first"):
            return [[_iso(c["first"]), _iso(c["last"])]]
    return [[None, None]]


def _iso(value: str) -> str:
    text = str(value).split(".")[0]
    return text + "Z" if "T" in text else text + "T00:00:00Z"


def stac_collection(manifest: dict[str, Any]) -> dict[str, Any]:
    """The collection as a dict (validated with pystac by the tests)."""
    dataset = manifest["dataset"]
    source = manifest.get("source", {})
    target = manifest.get("target", {})
    bbox = manifest.get("bbox") or [-180.0, -90.0, 180.0, 90.0]
    storage_options = storage.public_storage_options(dict(manifest["xarray:storage_options"]))
    variables = {}
    for name, v in manifest.get("variables", {}).items():
        variables[name] = {
            "dimensions": v["dims"],
            "type": "data" if v["dims"] else "auxiliary",
            "shape": v["shape"],
            "chunks": v["chunks"],
            "attrs": v.get("attrs", {}),
            **({"unit": v["attrs"]["units"]} if "units" in v.get("attrs", {}) else {}),
        }
    collection = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": f"pcflow-{dataset}",
        "title": f"{dataset} (staged by pcflow)",
        "description": (
            f"Subset of {source.get('collection')} staged by pcflow into "
            f"{target.get('account_name')}/{target.get('container')} as Zarr v2 with consolidated "
            "metadata."
        ),
        "license": "proprietary",
        "links": [],
        "stac_extensions": [],
        "extent": {
            "spatial": {"bbox": [list(map(float, bbox))]},
            "temporal": {"interval": _temporal(manifest)},
        },
        "providers": [{"name": "pcflow", "roles": ["processor"]}],
        "assets": {
            "zarr-abfs": {
                "href": manifest["href"],
                "type": "application/vnd+zarr",
                "title": f"{dataset} Zarr root (Azure Blob File System)",
                "roles": ["data", "zarr", "abfs"],
                "xarray:open_kwargs": dict(
                    manifest.get("xarray:open_kwargs", {"consolidated": True})
                ),
                "xarray:storage_options": storage_options,
            }
        },
        "msft:region": target.get("region"),
        "msft:storage_account": target.get("account_name"),
        "msft:container": target.get("container"),
        "cube:variables": variables,
        "pcflow:checksum": manifest.get("checksum"),
        "pcflow:chunking": manifest.get("chunking"),
        "pcflow:provenance": manifest.get("provenance", {}),
        "pcflow:source": source,
    }
    return collection
