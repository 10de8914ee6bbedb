"""The Sentinel-2 reduction: cloud-masked NDVI median composites per month."""

from __future__ import annotations

import numpy as np
import xarray as xr

from pcflow.reductions.common import _carry_attrs, spatial_dims
from pcflow.reductions.registry import register

# Sentinel-2 L2A scene classes masked before compositing: 3 cloud shadow, 8/9 cloud medium/high
# probability, 10 thin cirrus. 0 is nodata.
SCL_MASKED = (3, 8, 9, 10)


def _bands(ds: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """(red, nir, scl) from a Dataset of B04/B08/SCL or one variable with a `band` dim."""
    if all(b in ds.data_vars for b in ("B04", "B08", "SCL")):
        return ds["B04"], ds["B08"], ds["SCL"]
    for da in ds.data_vars.values():
        if "band" in da.dims:
            bands = [str(b) for b in da["band"].values]
            if all(b in bands for b in ("B04", "B08", "SCL")):
                return da.sel(band="B04"), da.sel(band="B08"), da.sel(band="SCL")
    raise ValueError("ndvi needs bands B04, B08 and SCL (as variables or along a `band` dim)")


@register("ndvi_monthly")
def ndvi_monthly(ds: xr.Dataset, boa_offset: float = 0.0, scale: float = 1.0) -> xr.Dataset:
    """Cloud-masked NDVI median composite per month from a Sentinel-2 L2A cube.

    Pixels with SCL in {3, 8, 9, 10} (cloud shadow, clouds, cirrus), SCL 0 or reflectance 0
    (nodata) are masked. `boa_offset` (e.g. -1000 for processing baseline >= 04.00 DNs) is added
    to B04/B08 before the ratio.
    """
    red, nir, scl = _bands(ds)
    ydim, xdim = spatial_dims(red)
    clear = ~scl.isin(SCL_MASKED) & (scl != 0) & (red != 0) & (nir != 0)
    r = (red.astype("float32") + boa_offset) * scale
    n = (nir.astype("float32") + boa_offset) * scale
    ndvi = ((n - r) / (n + r)).where(clear)
    ndvi = ndvi.where(np.isfinite(ndvi))
    # A median needs each month whole in one chunk: rechunk along time to month groups only.
    if ndvi.chunks is not None:
        from xarray.groupers import TimeResampler

        ndvi = ndvi.chunk(time=TimeResampler("MS"))
    comp = ndvi.resample(time="MS").median("time", skipna=True)
    comp = comp.drop_vars([c for c in comp.coords if c == "band"])
    comp.attrs = {
        "long_name": "NDVI monthly median composite (cloud-masked)",
        "units": "1",
        "cell_methods": "time: median within months",
        "standard_name": "normalized_difference_vegetation_index",
        "masked_scl_classes": list(SCL_MASKED),
    }
    valid = ndvi.notnull().resample(time="MS").sum("time").astype("int16")
    valid.attrs = {"long_name": "clear observations per month", "units": "1"}
    result = xr.Dataset({"ndvi": comp, "clear_count": valid})
    if "spatial_ref" in ds.coords or "spatial_ref" in ds.variables:
        result = result.assign_coords(spatial_ref=ds["spatial_ref"])
    for dim in (ydim, xdim):
        if dim in ds.coords:
            result[dim].attrs = dict(ds[dim].attrs)
    return _carry_attrs(result, ds, "ndvi_monthly")
