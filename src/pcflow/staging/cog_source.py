"""COG item collections (Sentinel-2 L2A style) as a lazy (time, y, x) Dataset of bands.

odc-stac loads the signed items onto one grid (configured CRS and resolution, clipped to
the bbox), one time step per solar day. Where the collection provides a scene
classification (Sentinel-2's SCL band), cloudy, shadowed and no-data pixels of the other
bands are set to the band's nodata value, which is written as `_FillValue` so xarray
readers see NaN there.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import xarray as xr

from pcflow.staging.band_types import BandType, band_types
from pcflow.staging.retry import StagingError

# SCL classes masked out: 0 no data, 1 saturated/defective, 3 cloud shadow, 8/9 cloud medium/high
# probability, 10 thin cirrus (ESA L2A product definition).
SCL_MASKED = (0, 1, 3, 8, 9, 10)
MASK_BAND = "SCL"


def _check_mask(
    dataset_name: str,
    bands: list[str],
    raw_items: list[dict[str, Any]],
    types: dict[str, BandType],
    log: logging.Logger,
) -> bool:
    """Whether the SCL mask applies; it is never skipped without a word.

    Masking needs a nodata value for every masked band (else there is nothing to write where
    clouds are): a band without one is an error. Items offering SCL that the config did not
    ask for are unmasked, said loudly in the log and in each band's `pcflow_cloud_mask` attr.
    """
    if MASK_BAND not in bands:
        if any(MASK_BAND in i.get("assets", {}) for i in raw_items):
            log.warning(
                "datasets.%s: items offer %s but it is not in assets — bands are NOT cloud "
                "masked (add %s to datasets.%s.assets to mask)",
                dataset_name,
                MASK_BAND,
                MASK_BAND,
                dataset_name,
            )
        return False
    no_nodata = [b for b in bands if b != MASK_BAND and types[b].nodata is None]
    if no_nodata:
        raise StagingError(
            f"assets {no_nodata} have no nodata value ({types[no_nodata[0]].source}), so the "
            f"{MASK_BAND} cloud mask has nothing to write — set datasets.{dataset_name}."
            f"raster_bands.{no_nodata[0]}.nodata"
        )
    return True


def load(
    items_doc: dict[str, Any],
    dataset_name: str,
    dataset_cfg: dict[str, Any],
    signing: str,
    log: logging.Logger,
) -> xr.Dataset:
    """The lazy band cube (Dask-backed; chunks per time step) with cloud masking applied."""
    import odc.stac

    from pcflow.discover import sign_item_dicts

    raw_items = items_doc.get("items") or []
    if not raw_items:
        raise StagingError(
            f"results/{dataset_name}/items.json has no items — widen datasets.{dataset_name}."
            "bbox/datetime/query"
        )
    bands = list(dataset_cfg.get("assets") or [])
    if not bands:
        raise StagingError(f"datasets.{dataset_name}.assets is empty — list bands, e.g. [B04, B08]")
    crs = dataset_cfg.get("crs")
    resolution = dataset_cfg.get("resolution")
    if not crs or not resolution:
        raise StagingError(f"datasets.{dataset_name} needs crs and resolution for kind cog")
    # Sorted by datetime then id: the cube's time order must not depend on the search order.
    items = sorted(sign_item_dicts(raw_items, signing), key=lambda i: (str(i.datetime), i.id))
    missing = [b for b in bands if not any(b in i.assets for i in items)]
    if missing:
        raise StagingError(f"datasets.{dataset_name}.assets {missing} are not in the items")
    types = band_types(
        dataset_name,
        bands,
        raw_items,
        items_doc.get("collection_item_assets"),
        dataset_cfg.get("raster_bands"),
    )
    masking = _check_mask(dataset_name, bands, raw_items, types, log)
    # odc-stac reads dtype/nodata from stac_cfg where items lack raster:bands ("*": any
    # collection); without it a band loads as float32 with no nodata.
    stac_cfg = {
        "*": {
            "assets": {
                b: {"data_type": t.dtype, **({"nodata": t.nodata} if t.nodata is not None else {})}
                for b, t in types.items()
            }
        }
    }
    ds = odc.stac.load(
        items,
        bands=bands,
        crs=crs,
        resolution=resolution,
        bbox=dataset_cfg.get("bbox"),
        chunks={},
        groupby="solar_day",
        resampling="nearest",
        fail_on_error=True,
        stac_cfg=stac_cfg,
    )
    out = {}
    mask = ds[MASK_BAND].isin(list(SCL_MASKED)) if masking else None
    for band in bands:
        da = ds[band]
        t = types[band]
        if da.dtype != np.dtype(t.dtype):
            raise StagingError(
                f"asset {band!r} loaded as {da.dtype}, declared {t.dtype} ({t.source}) — "
                f"check datasets.{dataset_name}.raster_bands.{band}"
            )
        attrs = {k: v for k, v in da.attrs.items() if k != "nodata"}
        if mask is not None and band != MASK_BAND:
            da = da.where(~mask, t.nodata)
            attrs["pcflow_cloud_mask"] = f"{MASK_BAND} in {list(SCL_MASKED)} set to nodata"
        elif band != MASK_BAND:
            attrs["pcflow_cloud_mask"] = f"none: {MASK_BAND} not in datasets.{dataset_name}.assets"
        da = da.astype(t.dtype)
        da.attrs = attrs
        da.encoding = {"dtype": np.dtype(t.dtype)}
        if t.nodata is not None:
            da.encoding["_FillValue"] = t.nodata
        out[band] = da
    cube = xr.Dataset(out, attrs={"title": f"{items_doc.get('collection')} bands {bands}"})
    cube.attrs["pcflow_items"] = len(items)
    log.info(
        "cog cube %s: %s at %s m in %s (%d items)",
        dataset_name,
        dict(cube.sizes),
        resolution,
        crs,
        len(items),
    )
    return cube
