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

import xarray as xr

from pcflow.staging.retry import StagingError

# SCL classes masked out: 0 no data, 1 saturated/defective, 3 cloud shadow, 8/9 cloud medium/high
# probability, 10 thin cirrus (ESA L2A product definition).
SCL_MASKED = (0, 1, 3, 8, 9, 10)
MASK_BAND = "SCL"


def _nodata(items: list[Any], band: str) -> int | float | None:
    for item in items:
        asset = item.assets.get(band)
        if asset is None:
            continue
        for rb in asset.extra_fields.get("raster:bands", []) or []:
            if "nodata" in rb:
                return rb["nodata"]
    return None


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
    )
    out = {}
    mask = None
    if MASK_BAND in ds.data_vars:
        mask = ds[MASK_BAND].isin(list(SCL_MASKED))
    for band in bands:
        da = ds[band]
        nodata = da.attrs.get("nodata", _nodata(items, band))
        attrs = {k: v for k, v in da.attrs.items() if k != "nodata"}
        if mask is not None and band != MASK_BAND and nodata is not None:
            da = da.where(~mask, nodata)
            attrs["pcflow_cloud_mask"] = f"{MASK_BAND} in {list(SCL_MASKED)} set to nodata"
        da = da.astype(ds[band].dtype)
        da.attrs = attrs
        da.encoding = {"dtype": ds[band].dtype}
        if nodata is not None:
            da.encoding["_FillValue"] = nodata
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
