"""The manifest a staging run returns: where the store is, how to open it, what it holds."""

from __future__ import annotations

import json
from typing import Any

from pcflow import storage
from pcflow.staging import plan as planmod
from pcflow.staging import stac_collection
from pcflow.staging.layout import ZARR_FORMAT
from pcflow.staging.plan import VarPlan
from pcflow.staging.source import OpenedSource


def build_manifest(
    *,
    dataset_name: str,
    dataset_cfg: dict[str, Any],
    items_doc: dict[str, Any],
    target: dict[str, Any],
    url: str,
    src: OpenedSource,
    plans: dict[str, VarPlan],
    data_plan: dict[str, Any],
    fp: str,
    complete: dict[str, Any],
    identity: str,
    cfg: dict[str, Any],
    provenance: dict[str, Any],
    run: dict[str, Any],
) -> dict[str, Any]:
    """The manifest of a complete store (its completion record's checksums and ETag)."""
    root = url.split("://", 1)[1]
    return {
        "dataset": dataset_name,
        "kind": src.kind,
        "url": url,
        "href": f"abfs://{root}",
        "zarr_format": ZARR_FORMAT,
        "consolidated": True,
        "target": {k: target.get(k) for k in ("account_name", "container", "prefix", "region")},
        "xarray:open_kwargs": {"consolidated": True},
        "xarray:storage_options": storage.public_storage_options(
            {"account_name": target["account_name"]}
        ),
        "fingerprint": fp,
        "checksum": complete["checksum"],
        "checksums": complete["checksums"],
        "identity": identity,
        "variables": {
            n: {**p.to_json(), "attrs": _jsonable(dict(src.sub[n].attrs))} for n, p in plans.items()
        },
        "coords": data_plan["coords"],
        "grid": stac_collection.grid_summary(src.sub),  # CRS, steps, footprint for collection.json
        "chunking": {
            "chunk_mb": cfg["chunk_mb"],
            "time_series_chunks": cfg["time_series_chunks"],
            "region_mb": cfg["region_mb"],
            "write_order": planmod.CHUNK_ORDER,
            "per_variable": {
                n: {"chunks": list(p.chunks), "mode": p.mode, "reason": p.reason}
                for n, p in plans.items()
            },
        },
        "bbox": dataset_cfg.get("bbox"),
        "datetime": dataset_cfg.get("datetime"),
        "source": {
            **src.source_id,
            "msft:region": items_doc.get("msft:region"),
            "item_ids": items_doc.get("item_ids", []),
        },
        "provenance": provenance,
        "verification": complete.get("verification"),
        "run": run,
    }


def _jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    return json.loads(
        json.dumps(attrs, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )
