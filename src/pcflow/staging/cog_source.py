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


# GDAL's own HTTP retries for COG reads (transient 429/5xx, resets): odc-stac applies these
# rasterio settings in every read thread.
GDAL_HTTP = {"GDAL_HTTP_MAX_RETRY": "5", "GDAL_HTTP_RETRY_DELAY": "1", "GDAL_HTTP_TIMEOUT": "60"}


def configure_gdal_http() -> None:
    """Set GDAL's HTTP retry/timeout options for odc-stac reads in this process."""
    import odc.stac

    odc.stac.configure_rio(cloud_defaults=True, **GDAL_HTTP)


def _solar_day(item: dict[str, Any]) -> str:
    """odc-stac's `solar_day` grouping: UTC time shifted by the footprint's longitude."""
    import datetime as dt

    when = dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
    box = item["bbox"]  # [w, s, e, n] or [w, s, zmin, e, n, zmax]
    west, east = box[0], box[len(box) // 2]
    return (when + dt.timedelta(hours=(west + east) / 2 / 15)).date().isoformat()


def _read_day_band(
    day_items: list[dict[str, Any]], band: str, geobox: Any, signing: str, stac_cfg: dict
) -> np.ndarray:
    """One solar day of one band, read with items signed now (fresh SAS if the last expires)."""
    import odc.stac

    from pcflow.discover import sign_item_dicts

    items = sorted(sign_item_dicts(day_items, signing), key=lambda i: (str(i.datetime), i.id))
    ds = odc.stac.load(
        items,
        bands=[band],
        geobox=geobox,
        chunks=None,
        groupby="solar_day",
        resampling="nearest",
        fail_on_error=True,
        stac_cfg=stac_cfg,
    )
    return ds[band].values


def _signed_cube(
    plan: xr.Dataset,
    raw_items: list[dict[str, Any]],
    bands: list[str],
    signing: str,
    stac_cfg: dict,
) -> xr.Dataset:
    """The planned cube, each (day, band) chunk a task that signs its items when it runs.

    SAS tokens expire (MPC's in about an hour); signing once when the graph is built let a
    long load read with an expired token (HTTP 403). Signing per chunk at read time takes a
    fresh token whenever the cached one has under a minute left (planetary_computer's rule).
    """
    import dask
    import dask.array

    by_day: dict[str, list[dict[str, Any]]] = {}
    for item in raw_items:
        by_day.setdefault(_solar_day(item), []).append(item)
    days = sorted(by_day)
    if len(days) != plan.sizes["time"]:
        raise StagingError(
            f"grouping {len(raw_items)} items by solar day gave {len(days)} days, odc-stac "
            f"planned {plan.sizes['time']} — report this with results/<dataset>/items.json"
        )
    geobox = plan.odc.geobox
    out = {}
    for band in bands:
        shape, dtype = (1, *plan[band].shape[1:]), plan[band].dtype
        parts = [
            dask.array.from_delayed(
                dask.delayed(_read_day_band, pure=True)(
                    by_day[day], band, geobox, signing, stac_cfg
                ),
                shape=shape,
                dtype=dtype,
            )
            for day in days
        ]
        data = dask.array.concatenate(parts, axis=0)
        out[band] = xr.DataArray(data, coords=plan[band].coords, dims=plan[band].dims)
        out[band].attrs = dict(plan[band].attrs)
    return xr.Dataset(out, coords=plan.coords, attrs=plan.attrs)


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
    # Unsigned here: this graph only plans; each read signs its own items (see _signed_cube).
    items = sorted(sign_item_dicts(raw_items, "none"), key=lambda i: (str(i.datetime), i.id))
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
    configure_gdal_http()
    plan = odc.stac.load(
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
    ds = _signed_cube(plan, raw_items, bands, signing, stac_cfg)
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
