"""Region masking: cells whose centres lie outside the region are NaN in the input and in the
result's maps; the mask travels with the result as `region_mask`."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from pcflow import region as regionmod
from pcflow.reductions.common import spatial_dims


def apply_region(
    ds: xr.Dataset, region: regionmod.Region, crs: Any = None
) -> tuple[xr.Dataset, xr.DataArray]:
    """The dataset with every float gridded variable NaN outside the region, and the mask
    (`crs`: the grid's CRS if the data carry no lat/lon or grid mapping)."""
    ydim, xdim = spatial_dims(ds)
    mask = regionmod.mask(ds, region, ydim, xdim, crs)
    if not mask.any():
        raise ValueError(
            f"no cell centre of the staged data lies in the {region.label}; "
            "check the dataset's region against its bbox"
        )
    masked = ds.copy()
    for name, da in ds.data_vars.items():
        if ydim in da.dims and xdim in da.dims and np.issubdtype(da.dtype, np.floating):
            masked[name] = da.where(mask.values if da.dims[-2:] == (ydim, xdim) else mask)
            masked[name].attrs = da.attrs
            masked[name].encoding = da.encoding
    return masked, mask


def _attach_region(result: xr.Dataset, mask: xr.DataArray) -> xr.Dataset:
    """Cells outside the region NaN in the result's maps; the mask travels as `region_mask`."""
    ydim, xdim = mask.dims
    for name, da in result.data_vars.items():
        if ydim in da.dims and xdim in da.dims and da.sizes[ydim] == mask.sizes[ydim]:
            attrs = da.attrs
            result[name] = da.where(mask.values if da.dims[-2:] == (ydim, xdim) else mask)
            result[name].attrs = attrs
    result[regionmod.MASK_NAME] = mask.astype("int8")
    result[regionmod.MASK_NAME].attrs = mask.attrs
    result.attrs["region"] = mask.attrs["region"]
    result.attrs["region_cells"] = int(mask.sum())
    return result
