"""Reductions of a staged dataset to small xarray Datasets (written by the caller as NetCDF).

Every reduction takes the lazily opened Dataset (chunks as stored: no rechunking unless an
operation needs whole groups in one chunk), returns a small computed Dataset with CF attributes
(units, long_name, cell_methods) and passes `attrs["provenance"]` through.

`run(name, ds, **params)` dispatches by name. Names may carry their main parameter so that a
plain list in the config is enough: `annual_max`, `seasonal_sum`, `climatology_month`,
`anomaly_dayofyear`.

The package: `common` (grid dims, CF attributes), `progress` (compute with progress lines),
`periods` (calendars, incomplete periods), `registry` (names -> functions), `series`
(spatial_mean, climatology, anomaly), `maps` (annual, seasonal), `ndvi` (ndvi_monthly),
`masking` (regions); `run` here ties them together.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import xarray as xr

from pcflow import region as regionmod
from pcflow.reductions import direct
from pcflow.reductions.common import (
    FREQS,
    GEOGRAPHIC_DIMS,
    PRECIP_NAMES,
    SPATIAL_DIMS,
    STATS,
    area_weights,
    gridded_vars,
    group_stat,
    in_memory_grouping,
    is_precipitation,
    spatial_dims,
    summed_units,
)
from pcflow.reductions.maps import annual, seasonal
from pcflow.reductions.masking import _attach_region, apply_region
from pcflow.reductions.ndvi import SCL_MASKED, ndvi_monthly
from pcflow.reductions.periods import INCOMPLETE, PERIOD_FREQ, period_days
from pcflow.reductions.progress import compute
from pcflow.reductions.registry import REGISTRY, Reduction, available, register, resolve
from pcflow.reductions.series import anomaly, climatology, spatial_mean

__all__ = [
    "FREQS",
    "GEOGRAPHIC_DIMS",
    "INCOMPLETE",
    "PERIOD_FREQ",
    "PRECIP_NAMES",
    "REGISTRY",
    "SCL_MASKED",
    "SPATIAL_DIMS",
    "STATS",
    "Reduction",
    "annual",
    "anomaly",
    "apply_region",
    "area_weights",
    "available",
    "climatology",
    "compute",
    "gridded_vars",
    "group_stat",
    "in_memory_grouping",
    "is_precipitation",
    "ndvi_monthly",
    "period_days",
    "register",
    "resolve",
    "run",
    "seasonal",
    "spatial_dims",
    "spatial_mean",
    "summed_units",
]

log = logging.getLogger("pcflow.reductions")

# Reductions that take `incomplete` (periods: years, seasons, months).
_TAKES_INCOMPLETE = {"annual", "seasonal", "anomaly"}


def run(
    name: str,
    ds: xr.Dataset,
    region: regionmod.Region | None = None,
    incomplete: str | None = None,
    region_crs: Any = None,
    **params: Any,
) -> xr.Dataset:
    """Run a reduction by name and return the computed result with provenance passed through.

    region: only cells whose centres lie in it count (the mask is stored as `region_mask`).
    incomplete: "drop" or "flag" partial years/seasons/months (reductions with periods).
    """
    fn, encoded = resolve(name)
    merged = {**encoded, **params}
    if incomplete is not None and fn.__name__ in _TAKES_INCOMPLETE:
        merged["incomplete"] = incomplete
    ydims = [d for pair in SPATIAL_DIMS for d in pair if d in ds.dims]
    log.info(
        "reduction %s%s on %s (chunks %s)%s",
        name,
        f" {merged}" if merged else "",
        dict(ds.sizes),
        {d: ds.chunksizes.get(d, ())[:1] for d in ["time", *ydims]} if ds.chunks else "none",
        f", {region.label}" if region else "",
    )
    start = time.monotonic()
    ds = direct.read_stored(ds)  # stored chunks decoded and masked in one pass per chunk
    mask = None
    if region is not None:
        ds, mask = apply_region(ds, region, region_crs)
        log.info("region: %d of %d cells have their centre in the %s", int(mask.sum()),
                 mask.size, region.label)  # fmt: skip
    result = compute(fn(ds, **merged))
    if mask is not None:
        result = _attach_region(result, mask)
    if "provenance" in ds.attrs:
        result.attrs["provenance"] = ds.attrs["provenance"]
    result.attrs["pcflow_reduction"] = name
    log.info("reduction %s done in %.1fs: %s", name, time.monotonic() - start, dict(result.sizes))
    return result
