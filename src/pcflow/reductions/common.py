"""What every reduction shares: the grid's dimensions and area weights, CF attributes carried
and appended to, precipitation units, and the check of a parameter's choices."""

from __future__ import annotations

import importlib.util
import math
import re
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

# Spatial dimension pairs we recognise, projected first.
SPATIAL_DIMS = (("y", "x"), ("lat", "lon"), ("latitude", "longitude"))
GEOGRAPHIC_DIMS = {("lat", "lon"), ("latitude", "longitude")}
FREQS = ("dayofyear", "month")
STATS = ("mean", "min", "max", "sum")
PRECIP_NAMES = {"prcp", "pr", "precip", "precipitation", "tp", "ppt"}


def spatial_dims(obj: xr.Dataset | xr.DataArray) -> tuple[str, str]:
    """The (row, column) dimension names of a gridded object."""
    for pair in SPATIAL_DIMS:
        if all(d in obj.dims for d in pair):
            return pair
    raise ValueError(
        f"dataset dims {tuple(obj.dims)} have no spatial pair; expected one of {SPATIAL_DIMS}"
    )


def gridded_vars(ds: xr.Dataset, need_time: bool = True) -> list[str]:
    """Data variables on the grid (skips grid-mapping scalars and per-time helpers like yearday)."""
    ydim, xdim = spatial_dims(ds)
    names = [
        name
        for name, da in ds.data_vars.items()
        if ydim in da.dims
        and xdim in da.dims
        and (not need_time or "time" in da.dims)
        and np.issubdtype(da.dtype, np.number)
    ]
    if not names:
        raise ValueError(f"dataset has no numeric (time, {ydim}, {xdim}) variables to reduce")
    return names


def area_weights(ds: xr.Dataset) -> xr.DataArray | None:
    """cos(latitude) weights on lat/lon grids; None (plain mean) on projected grids.

    Daymet's 1 km Lambert conformal conic grid is close to equal-area, so every cell counts
    the same; on a regular lat/lon grid a cell's area shrinks with cos(lat).
    """
    ydim, xdim = spatial_dims(ds)
    if (ydim, xdim) in GEOGRAPHIC_DIMS and ydim in ds.coords:
        return np.cos(np.deg2rad(ds[ydim])).astype("float64").rename("area_weight")
    return None


def _append_cell_method(attrs: dict[str, Any], method: str) -> dict[str, Any]:
    out = {k: v for k, v in attrs.items() if k not in {"grid_mapping", "coordinates"}}
    previous = str(attrs.get("cell_methods", "")).strip()
    out["cell_methods"] = f"{previous} {method}".strip()
    return out


def _carry_attrs(
    result: xr.Dataset, source: xr.Dataset, reduction: str, **extra: Any
) -> xr.Dataset:
    attrs = {k: v for k, v in source.attrs.items() if k in {"provenance", "title", "source"}}
    attrs.update({"pcflow_reduction": reduction, "Conventions": "CF-1.8"})
    if "time" in source.coords and source.sizes.get("time", 0):
        t0, t1 = source["time"].values[[0, -1]]
        attrs["period"] = f"{_day(t0)}/{_day(t1)}"
    attrs.update({k: v for k, v in extra.items() if v is not None})
    result.attrs = attrs
    return result


def _day(value: Any) -> str:
    return str(np.datetime_as_string(np.datetime64(value, "D"))) if value is not None else ""


def is_precipitation(da: xr.DataArray) -> bool:
    name = str(da.name or "").lower()
    std = str(da.attrs.get("standard_name", "")).lower()
    return name in PRECIP_NAMES or "precipitation" in std


def summed_units(units: str) -> str:
    """Units of a time sum of a daily rate: "mm/day" -> "mm"."""
    return re.sub(r"\s*(/\s*day|/\s*d|\s+d-1|\s+day-1)$", "", units.strip()) or units


def _check_choice(field: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{field}={value!r} is not supported; use one of {', '.join(choices)}")


def _drop_spatial_coords(da: xr.DataArray, ydim: str, xdim: str) -> xr.DataArray:
    drop = [
        c for c, v in da.coords.items() if ydim in v.dims or xdim in v.dims or c in (ydim, xdim)
    ]
    return da.drop_vars(drop)


# flox groups a Dask field in one pass per chunk (numbagg's kernels for float fields), but a new
# process pays for it first: importing flox builds numpy_groupies' numba wrappers (~2 s) and
# numbagg JIT-compiles each kernel (1-4 s more). Every reduce job is a new process, so with few
# groups xarray's own grouping wins until the field is large. Per period, the field size from
# which flox pays, from first and second calls in fresh processes on 1.5 GiB (bench/reduce.py
# --maps, docs/compute.md): warm, flox saves ~0.7 s/GiB for months and seasons against 3-4 s
# of import and compile; for years its gain is within run-to-run noise, so never; by day of
# year (366 groups) xarray's own grouping is slower at any size.
FLOX_MIN_BYTES = {"dayofyear": 0, "month": 4 * 2**30, "season": 4 * 2**30, "year": math.inf}


def flox_pays(da: xr.DataArray, period: str) -> bool:
    """Whether to group `da` by `period` with flox: enabled, installed and the field large
    enough (FLOX_MIN_BYTES) to repay flox's import and JIT compile in a fresh process."""
    if not xr.get_options()["use_flox"] or importlib.util.find_spec("flox") is None:
        return False
    return da.nbytes >= FLOX_MIN_BYTES[period]


def group_stat(series: xr.DataArray, key: str, stat: str | float) -> xr.DataArray:
    """`series.groupby(key).<stat>("time")` of a 1-D in-memory series, in one pandas call.

    stat: "mean", "std" (ddof=0, as xarray), "min", "max", or a quantile q in [0, 1] (linear,
    as xarray). NaN is skipped; an all-NaN group gives NaN. xarray without flox reduces each of
    366 day-of-year groups separately (~7 s for a 20-year series climatology); pandas' grouped
    kernels do all groups at once in milliseconds, without numba's compile.
    """
    labels = series[key]
    values = pd.Series(np.asarray(series.values), index=pd.Index(labels.values, name=labels.name))
    grouped = values.groupby(level=0, sort=True)
    if isinstance(stat, float):
        out = grouped.quantile(stat)
    elif stat == "std":
        out = grouped.std(ddof=0)
    else:
        out = grouped.agg(stat)
    # Scalar coordinates stay, as in xarray (whose quantile drops them, so this does too).
    scalars = (
        {} if isinstance(stat, float) else {k: v for k, v in series.coords.items() if v.ndim == 0}
    )
    return xr.DataArray(
        out.to_numpy(),
        dims=labels.name,
        coords={labels.name: out.index.to_numpy(), **scalars},
        name=series.name,
    )


def in_memory_grouping() -> Any:
    """xarray options for small in-memory data: NumPy's group-bys and quantiles, not numba's.

    flox and numbagg JIT-compile their kernels in every new process (numbagg's cache is off
    by default): ~7 s for grouped std/min/max and ~20 s for one quantile here, against
    milliseconds of NumPy on a spatial-mean series or a map. Dask-backed fields keep flox.
    """
    return xr.set_options(use_flox=False, use_numbagg=False)
