"""The dtype and nodata of each COG band, from the STAC metadata that declares them.

Without a declared dtype odc-stac loads a band as float32 with no nodata: the cloud mask then
has no value to write, no `_FillValue` is stored and the cube is twice its planned size. So
each band's type comes, in order, from the items' `raster:bands`, the collection's
`item_assets` (recorded in items.json by discover), or `datasets.<name>.raster_bands` in the
config; if none declares it, staging stops with one line naming the asset and that fix.
MPC's own `sentinel-2-l2a` items and collection carry no `raster:bands` (tests/fixtures/mpc).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pcflow.staging.retry import StagingError


@dataclass(frozen=True)
class BandType:
    """One band's storage type: numpy dtype name, nodata value, and where they came from."""

    dtype: str
    nodata: int | float | None
    source: str


def _from_raster_bands(meta: Mapping[str, Any] | None) -> tuple[str, Any] | None:
    bands = (meta or {}).get("raster:bands") or []
    if bands and bands[0].get("data_type"):
        return str(bands[0]["data_type"]), bands[0].get("nodata")
    return None


def band_types(
    dataset_name: str,
    bands: Sequence[str],
    items: Sequence[Mapping[str, Any]],
    item_assets: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, BandType]:
    """Each band's BandType, or StagingError (one line: the asset and the fix) if undeclared.

    `items` are item dicts as served; `item_assets` the collection's; `overrides` the
    config's `datasets.<name>.raster_bands` ({asset: {data_type, nodata}}), which wins.
    """
    out: dict[str, BandType] = {}
    for band in bands:
        found: tuple[str, Any] | None = None
        source = ""
        if overrides and band in overrides:
            found = (str(overrides[band]["data_type"]), overrides[band].get("nodata"))
            source = f"datasets.{dataset_name}.raster_bands"
        if found is None:
            declared = {
                _from_raster_bands(i.get("assets", {}).get(band))
                for i in items
                if _from_raster_bands(i.get("assets", {}).get(band)) is not None
            }
            if len(declared) > 1:
                raise StagingError(
                    f"asset {band!r}: items declare different raster:bands types "
                    f"{sorted(map(str, declared))} — set datasets.{dataset_name}.raster_bands."
                    f"{band} to the one to store"
                )
            if declared:
                found, source = declared.pop(), "item raster:bands"
        if found is None:
            found = _from_raster_bands((item_assets or {}).get(band))
            source = "collection item_assets raster:bands"
        if found is None:
            raise StagingError(
                f"asset {band!r} declares no raster:bands data_type in its items or the "
                f"collection's item_assets — set datasets.{dataset_name}.raster_bands.{band}: "
                "{data_type: uint16, nodata: 0} (Sentinel-2 L2A: uint16, nodata 0)"
            )
        dtype, nodata = found
        try:
            np.dtype(dtype)
        except TypeError:
            raise StagingError(
                f"asset {band!r}: data_type {dtype!r} ({source}) is not a numeric type — "
                f"set datasets.{dataset_name}.raster_bands.{band}.data_type"
            ) from None
        out[band] = BandType(dtype, nodata, source)
    return out
