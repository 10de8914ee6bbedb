"""Open what discovery found: the subset of variables, time and space that staging will write."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import xarray as xr

from pcflow.staging import plan as planmod
from pcflow.staging.retry import StagingError
from pcflow.staging.zarr_source import SourceAuth, ZarrV2Source, open_dataset


@dataclass
class OpenedSource:
    """The lazily opened subset and how to read it.

    raw: the source's own Zarr v2 chunks, read without xarray (None for COGs and stores the
    raw reader does not support); auth re-signs the source when its token nears expiry.
    """

    kind: str
    sub: xr.Dataset
    indexers: dict[str, slice]
    source_id: dict[str, Any]
    raw: ZarrV2Source | None = None
    auth: SourceAuth | None = None

    @property
    def index_names(self) -> list[str]:
        """The subset's dimensions with an index (the coordinates staged in full)."""
        return [d for d in self.sub.dims if d in self.sub.indexes]


def open_source(
    items_doc: dict[str, Any],
    dataset_name: str,
    dataset_cfg: dict[str, Any],
    stats: dict[str, Any],
    log: logging.Logger,
) -> OpenedSource:
    """Open the discovered asset (Zarr) or items (COGs) and cut the configured subset."""
    kind = items_doc.get("kind") or dataset_cfg.get("kind")
    signing = items_doc.get("signing") or dataset_cfg.get("signing", "planetary-computer")
    if kind == "zarr":
        asset = items_doc.get("asset")
        if not asset or not asset.get("href"):
            raise StagingError(
                f"results/{dataset_name}/items.json has no asset href — re-run discover"
            )
        auth = SourceAuth(asset, signing, log)
        ds = open_dataset(auth, log)
        keep = select_variables(ds, dataset_name, dataset_cfg.get("variables"))
        indexers = planmod.subset_indexers(ds, dataset_cfg.get("bbox"), dataset_cfg.get("datetime"))
        raw = ZarrV2Source(auth, ds, log, stats) if ZarrV2Source.supports(auth) else None
        source_id = {
            "href": asset["href"],
            "collection": items_doc.get("collection"),
            "collection_updated": items_doc.get("collection_updated"),
        }
        return OpenedSource(kind, ds[keep].isel(indexers), indexers, source_id, raw, auth)
    if kind == "cog":
        from pcflow.staging import cog_source

        sub = cog_source.load(items_doc, dataset_name, dataset_cfg, signing, log)
        source_id = {
            "collection": items_doc.get("collection"),
            "items": dict(sorted((items_doc.get("item_updated") or {}).items())),
        }
        return OpenedSource(kind, sub, {}, source_id)
    raise StagingError(f"datasets.{dataset_name}.kind {kind!r} is not zarr or cog")


def select_variables(ds: xr.Dataset, name: str, wanted: list[str] | None) -> list[str]:
    """The configured variables (all non-scalar ones by default) plus their grid mappings."""
    if not wanted:
        wanted = [v for v in ds.data_vars if ds[v].ndim > 0]
    unknown = [v for v in wanted if v not in ds.data_vars]
    if unknown:
        raise StagingError(
            f"datasets.{name}.variables {unknown} are not in the source — use some of: "
            + ", ".join(sorted(ds.data_vars))
        )
    keep = list(wanted)
    for v in wanted:  # grid-mapping variables travel with the data (CRS for readers)
        gm = ds[v].attrs.get("grid_mapping")
        if gm and gm in ds.variables and gm not in keep:
            keep.append(gm)
    return keep
