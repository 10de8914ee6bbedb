"""Reductions to time series of the spatial mean: the series itself, its climatology (or the
climatology of the whole field) and its anomalies."""

from __future__ import annotations

import numpy as np
import xarray as xr

from pcflow.reductions import kernels
from pcflow.reductions.common import (
    FREQS,
    _append_cell_method,
    _carry_attrs,
    _check_choice,
    _drop_spatial_coords,
    area_weights,
    flox_pays,
    gridded_vars,
    group_stat,
    in_memory_grouping,
    spatial_dims,
)
from pcflow.reductions.periods import _completeness
from pcflow.reductions.progress import compute
from pcflow.reductions.registry import register


@register("spatial_mean")
def spatial_mean(ds: xr.Dataset) -> xr.Dataset:
    """Time series of the spatial mean of every gridded variable over (y, x), NaN-aware.

    Accumulates in float64 (float32 sums over ~10^6 cells lose digits); cos(lat) weights on
    lat/lon grids, a plain mean on projected grids. Float grids without weights go through one
    fused pass per chunk (`kernels.nanmean_last2`): the mean runs at the read+decode limit.
    """
    ydim, xdim = spatial_dims(ds)
    names = gridded_vars(ds)
    weights = area_weights(ds)
    out = {}
    for name in names:
        da = ds[name]
        if weights is None and da.dtype in kernels.FUSED_DTYPES:
            reduced = xr.apply_ufunc(
                kernels.nanmean_last2, da, input_core_dims=[[ydim, xdim]], dask="allowed"
            )
        elif weights is None:
            reduced = da.mean((ydim, xdim), skipna=True, dtype="float64")
        else:
            reduced = da.astype("float64").weighted(weights).mean((ydim, xdim), skipna=True)
        reduced.attrs = _append_cell_method(da.attrs, "area: mean")
        out[name] = _drop_spatial_coords(reduced, ydim, xdim)
    result = xr.Dataset(out)
    return _carry_attrs(
        result, ds, "spatial_mean", weighting="cos(lat)" if weights is not None else "none"
    )


def _series(ds: xr.Dataset) -> xr.Dataset:
    """Spatial mean series, or the Dataset itself when it is already a series (no grid)."""
    try:
        spatial_dims(ds)
    except ValueError:
        return ds
    return spatial_mean(ds)


def _group_key(freq: str) -> str:
    _check_choice("freq", freq, FREQS)
    return f"time.{freq}"


def _flox_options(da: xr.DataArray, freq: str) -> dict[str, str] | None:
    """How a field is grouped, chosen by measurement (bench/reduce.py, docs/compute.md).

    None: without flox (xarray's own grouping), when flox is off or missing, or the field is
    too small to repay flox's import and compile (common.flox_pays). Otherwise flox's options:
    numbagg's grouped kernels sum and count each chunk in one pass, and beat flox's own engine,
    NumPy's and xarray without flox on a local and an Azurite store once compiled. When every time
    chunk but the last spans a year, every chunk holds every month and day of year, so
    "map-reduce" (reduce each chunk, then add the partials) is the right method; otherwise
    flox chooses.
    """
    if not flox_pays(da, freq):
        return None
    options = {"engine": "numbagg"} if da.dtype in kernels.FUSED_DTYPES else {}
    time_chunks = da.chunksizes.get("time") if da.chunks else None
    if time_chunks and min(time_chunks[:-1] or time_chunks) >= 365:
        options["method"] = "map-reduce"
    return options


@register("climatology")
def climatology(ds: xr.Dataset, freq: str = "dayofyear", field: bool = False) -> xr.Dataset:
    """Climatology by day of year or month (grouped with flox when installed).

    field=False: of the spatial-mean series, with the spread across years for a band:
    `{var}` (mean), `{var}_std`, `{var}_min`, `{var}_max`, `{var}_p10`, `{var}_p90`.
    field=True: the mean per group of the whole field ({freq}, y, x), e.g. 12 monthly maps.
    """
    key = _group_key(freq)
    if field:
        names = gridded_vars(ds)
        out = {}
        for name in names:
            options = _flox_options(ds[name], freq)
            with xr.set_options(use_flox=options is not None):
                grouped = ds[name].groupby(key)
                clim = grouped.mean("time", skipna=True, **(options or {}))
            clim.attrs = _append_cell_method(ds[name].attrs, f"time: mean within years ({freq})")
            clim.attrs["grid_mapping"] = ds[name].attrs.get("grid_mapping", "")
            out[name] = clim
        result = xr.Dataset(out)
        for gm in {ds[n].attrs.get("grid_mapping") for n in names} - {None, ""}:
            if gm in ds:
                result[gm] = ds[gm]
        return _carry_attrs(result, ds, "climatology", climatology_freq=freq, field="true")

    # The series is small: compute it once, then group in memory.
    series = compute(_series(ds))
    kinds = {"": "mean", "_std": "std", "_min": "min", "_max": "max", "_p10": 0.1, "_p90": 0.9}
    stats = {suffix: series.map(group_stat, key=key, stat=kind) for suffix, kind in kinds.items()}
    out = {}
    for name in series.data_vars:
        src_attrs = series[name].attrs
        for suffix, stat in stats.items():
            da = stat[name]
            label = {
                "": "mean",
                "_std": "standard deviation",
                "_min": "minimum",
                "_max": "maximum",
                "_p10": "10th percentile",
                "_p90": "90th percentile",
            }[suffix]
            method = {
                "": "mean",
                "_std": "standard_deviation",
                "_min": "minimum",
                "_max": "maximum",
                "_p10": "percentile",
                "_p90": "percentile",
            }[suffix]
            da.attrs = _append_cell_method(src_attrs, f"time: {method} over years ({freq})")
            da.attrs["long_name"] = f"{src_attrs.get('long_name', name)} climatology, {label}"
            out[f"{name}{suffix}"] = da
    result = xr.Dataset(out)
    result.attrs["years"] = int(np.unique(series["time"].dt.year).size)
    return _carry_attrs(
        result, ds, "climatology", climatology_freq=freq, years=result.attrs["years"]
    )


@register("anomaly")
def anomaly(ds: xr.Dataset, freq: str = "month", incomplete: str = "drop") -> xr.Dataset:
    """Anomalies of the spatial-mean series against its own climatology.

    freq="month": monthly means minus the monthly climatology (one value per month: bars).
    freq="dayofyear": daily values minus the day-of-year climatology (a heat strip).
    Partial months at the ends are dropped or flagged like annual's years (`incomplete`).
    """
    key = _group_key(freq)
    series = compute(_series(ds))
    with in_memory_grouping():
        return _anomaly_of_series(ds, series, key, freq, incomplete)


def _anomaly_of_series(
    ds: xr.Dataset, series: xr.Dataset, key: str, freq: str, incomplete: str
) -> xr.Dataset:
    """anomaly() on the computed series (in memory)."""
    note = None
    if freq == "month":
        keep, _, note = _completeness(ds, "month", incomplete)
        # Monthly means first; resample drops attrs, so copy them back.
        monthly = series.resample(time="MS").mean()
        if keep is not None:
            monthly = monthly.sel(time=keep)
        for name in series.data_vars:
            monthly[name].attrs = _append_cell_method(
                series[name].attrs, "time: mean within months"
            )
        series = monthly
    clim = series.map(group_stat, key=key, stat="mean")
    anom = series - clim.sel({freq: series[key]})
    anom = anom.drop_vars([c for c in anom.coords if c not in ("time",)])
    for name in series.data_vars:
        attrs = _append_cell_method(series[name].attrs, f"time: anomaly ({freq} climatology)")
        attrs["long_name"] = f"{series[name].attrs.get('long_name', name)} anomaly"
        anom[name].attrs = attrs
    return _carry_attrs(
        anom, ds, "anomaly", anomaly_freq=freq, incomplete=incomplete, incomplete_periods=note
    )
