"""Reductions of a staged dataset to small xarray Datasets (written by the caller as NetCDF).

Every reduction takes the lazily opened Dataset (chunks as stored: no rechunking unless an
operation needs whole groups in one chunk), returns a small computed Dataset with CF attributes
(units, long_name, cell_methods) and passes `attrs["provenance"]` through.

`run(name, ds, **params)` dispatches by name. Names may carry their main parameter so that a
plain list in the config is enough: `annual_max`, `seasonal_sum`, `climatology_month`,
`anomaly_dayofyear`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pcflow import region as regionmod

log = logging.getLogger("pcflow.reductions")

Reduction = Callable[..., xr.Dataset]
REGISTRY: dict[str, Reduction] = {}

# Spatial dimension pairs we recognise, projected first.
SPATIAL_DIMS = (("y", "x"), ("lat", "lon"), ("latitude", "longitude"))
GEOGRAPHIC_DIMS = {("lat", "lon"), ("latitude", "longitude")}
FREQS = ("dayofyear", "month")
STATS = ("mean", "min", "max", "sum")
# Sentinel-2 L2A scene classes masked before compositing: 3 cloud shadow, 8/9 cloud medium/high
# probability, 10 thin cirrus. 0 is nodata.
SCL_MASKED = (3, 8, 9, 10)
PRECIP_NAMES = {"prcp", "pr", "precip", "precipitation", "tp", "ppt"}


def register(name: str) -> Callable[[Reduction], Reduction]:
    def deco(fn: Reduction) -> Reduction:
        REGISTRY[name] = fn
        return fn

    return deco


# ----------------------------------------------------------------------------- helpers


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


# ----------------------------------------------------------------------------- compute


PROGRESS_INTERVAL = 10.0  # seconds between progress lines in the rule log


def compute(result: xr.Dataset, interval: float | None = None) -> xr.Dataset:
    """Compute a lazy result, logging progress (task counts) while a distributed client runs it."""
    interval = PROGRESS_INTERVAL if interval is None else interval
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        return result.compute()
    if not any(v.chunks for v in result.variables.values()):
        return result.compute()  # already in memory: client.compute would hand back no future
    future = client.compute(result)
    stop = threading.Event()

    def task_states(dask_scheduler: Any = None) -> dict[str, int]:
        # Runs on the scheduler. A closure, so cloudpickle ships it by value: a Gateway
        # scheduler image need not have pcflow installed.
        states = [ts.state for ts in dask_scheduler.tasks.values()]
        done = ("memory", "erred", "forgotten", "released")
        return {
            "total": len(states),
            "done": sum(s in done for s in states),
            "processing": sum(s == "processing" for s in states),
            "workers": len(dask_scheduler.workers),
        }

    def report() -> None:
        start = time.monotonic()
        while not stop.wait(interval):
            try:
                counts = client.run_on_scheduler(task_states)
            except Exception as err:  # progress is best effort; never fail the reduction
                log.debug("progress unavailable: %s", err)
                continue
            log.info(
                "progress after %.0fs: %d/%d tasks done, %d running, %d workers",
                time.monotonic() - start,
                counts["done"],
                counts["total"],
                counts["processing"],
                counts["workers"],
            )

    thread = threading.Thread(target=report, name="pcflow-progress", daemon=True)
    thread.start()
    try:
        return future.result()
    finally:
        stop.set()
        future.release()


# ----------------------------------------------------------------------------- reductions


@register("spatial_mean")
def spatial_mean(ds: xr.Dataset) -> xr.Dataset:
    """Time series of the spatial mean of every gridded variable over (y, x), NaN-aware.

    Accumulates in float64 (float32 sums over ~10^6 cells lose digits); cos(lat) weights on
    lat/lon grids, a plain mean on projected grids.
    """
    ydim, xdim = spatial_dims(ds)
    names = gridded_vars(ds)
    weights = area_weights(ds)
    out = {}
    for name in names:
        da = ds[name]
        if weights is None:
            # dtype= accumulates in float64 without a float64 copy of each chunk.
            reduced = da.mean((ydim, xdim), skipna=True, dtype="float64")
        else:
            reduced = da.astype("float64").weighted(weights).mean((ydim, xdim), skipna=True)
        reduced.attrs = _append_cell_method(da.attrs, "area: mean")
        out[name] = _drop_spatial_coords(reduced, ydim, xdim)
    result = xr.Dataset(out)
    return _carry_attrs(
        result, ds, "spatial_mean", weighting="cos(lat)" if weights is not None else "none"
    )


def _drop_spatial_coords(da: xr.DataArray, ydim: str, xdim: str) -> xr.DataArray:
    drop = [
        c for c, v in da.coords.items() if ydim in v.dims or xdim in v.dims or c in (ydim, xdim)
    ]
    return da.drop_vars(drop)


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
            clim = ds[name].groupby(key).mean("time", skipna=True)
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
    grouped = series.groupby(key)
    stats = {
        "": grouped.mean("time"),
        "_std": grouped.std("time"),
        "_min": grouped.min("time"),
        "_max": grouped.max("time"),
        "_p10": grouped.quantile(0.1, dim="time").drop_vars("quantile"),
        "_p90": grouped.quantile(0.9, dim="time").drop_vars("quantile"),
    }
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
    clim = series.groupby(key).mean("time")
    anom = series.groupby(key) - clim
    anom = anom.drop_vars([c for c in anom.coords if c not in ("time",)])
    for name in series.data_vars:
        attrs = _append_cell_method(series[name].attrs, f"time: anomaly ({freq} climatology)")
        attrs["long_name"] = f"{series[name].attrs.get('long_name', name)} anomaly"
        anom[name].attrs = attrs
    return _carry_attrs(
        anom, ds, "anomaly", anomaly_freq=freq, incomplete=incomplete, incomplete_periods=note
    )


def _aggregate(da: xr.DataArray, stat: str, grouped: Any) -> xr.DataArray:
    if stat == "sum":
        # min_count=1: a cell with no data in the period (ocean) stays NaN; a plain sum
        # turns all-NaN into 0 and draws the ocean as dry land.
        return grouped.sum("time", skipna=True, min_count=1)
    return getattr(grouped, stat)("time", skipna=True)


def _resolve_stat(da: xr.DataArray, stat: str) -> str:
    if stat == "auto":
        return "sum" if is_precipitation(da) else "mean"
    _check_choice("stat", stat, STATS)
    return stat


def _aggregate_attrs(da: xr.DataArray, stat: str, period: str) -> dict[str, Any]:
    method = {"mean": "mean", "min": "minimum", "max": "maximum", "sum": "sum"}[stat]
    attrs = _append_cell_method(da.attrs, f"time: {method} within {period}")
    if stat == "sum" and "units" in da.attrs:
        attrs["units"] = summed_units(str(da.attrs["units"]))
    attrs["long_name"] = f"{period} {method} of {da.attrs.get('long_name', da.name)}"
    if da.attrs.get("grid_mapping"):
        attrs["grid_mapping"] = da.attrs["grid_mapping"]
    return attrs


def _with_grid_mapping(result: xr.Dataset, ds: xr.Dataset, names: list[str]) -> xr.Dataset:
    for gm in {ds[n].attrs.get("grid_mapping") for n in names} - {None, ""}:
        if gm in ds.variables:
            result[gm] = ds[gm].compute()
    return result


INCOMPLETE = ("drop", "flag")
PERIOD_FREQ = {"year": "YS", "season": "QS-DEC", "month": "MS"}


def period_days(time: Any, freq: str) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """(period starts, days with data, days expected) per period of a daily time axis.

    Expected days are the calendar days of the period, except that Dec 31 of a leap year is
    never required (Daymet's 365-day years drop it). A period the data do not cover from its
    first to its last day is incomplete.
    """
    t = pd.DatetimeIndex(time)
    days = t.normalize().unique()
    counts = pd.Series(1, index=days).resample(freq).count()
    starts = pd.DatetimeIndex(counts.index)
    have = counts.to_numpy()
    ends = starts + pd.tseries.frequencies.to_offset(freq)
    every_day = pd.date_range(starts[0], ends[-1], inclusive="left")
    dropped = every_day[(every_day.month == 12) & (every_day.day == 31) & every_day.is_leap_year]
    dropped = dropped[~dropped.isin(days)]  # Daymet's 365-day years
    expected = np.array(
        [
            (e - s).days - int(((dropped >= s) & (dropped < e)).sum())
            for s, e in zip(starts, ends, strict=True)
        ]
    )
    return starts, have, expected


def _completeness(
    ds: xr.Dataset, what: str, incomplete: str
) -> tuple[np.ndarray | None, xr.Dataset, str]:
    """Which periods (by their start, resample labels) to keep, the flag coords, a note.

    incomplete="drop": only complete periods are kept; "flag": all are kept and marked.
    """
    _check_choice("incomplete", incomplete, INCOMPLETE)
    starts, have, expected = period_days(ds["time"].values, PERIOD_FREQ[what])
    complete = have >= expected
    partial = [
        f"{_period_label(s, what)} ({h} of {e} days)"
        for s, h, e, c in zip(starts, have, expected, complete, strict=True)
        if not c
    ]
    flags = xr.Dataset(
        {
            "complete": ("time", complete, {"long_name": f"whole {what} of data"}),
            "days": ("time", have.astype("int16"), {"long_name": f"days of data in the {what}"}),
        },
        coords={"time": starts.values},
    )
    if not partial:
        note = "none"
    elif incomplete == "drop":
        note = f"dropped: {', '.join(partial)}"
    else:
        note = f"flagged (kept): {', '.join(partial)}"
    keep = starts.values[complete] if incomplete == "drop" else None
    if keep is not None and keep.size == 0:
        raise ValueError(
            f"no complete {what} in the data ({', '.join(partial)}); widen datetime or set "
            "reductions_incomplete: flag"
        )
    return keep, flags, note


def _period_label(start: pd.Timestamp, what: str) -> str:
    if what == "year":
        return f"{start:%Y}"
    if what == "month":
        return f"{start:%Y-%m}"
    season = {12: "DJF", 3: "MAM", 6: "JJA", 9: "SON"}[start.month]
    return f"{season} {start.year + (start.month == 12)}"


@register("annual")
def annual(ds: xr.Dataset, stat: str = "auto", incomplete: str = "drop") -> xr.Dataset:
    """Maps per calendar year: mean/min/max, or sum (precipitation totals; stat="auto").

    A year the data do not cover from Jan 1 to Dec 31 (Dec 31 of leap years excepted, as
    Daymet drops it) is dropped (incomplete="drop") or kept and flagged ("flag": coords
    `complete` and `days`, attr `incomplete_periods`).
    """
    names = gridded_vars(ds)
    keep, flags, note = _completeness(ds, "year", incomplete)
    out = {}
    for name in names:
        da = ds[name]
        s = _resolve_stat(da, stat)
        agg = _aggregate(da, s, da.resample(time="YS"))
        if keep is not None:
            agg = agg.sel(time=keep)
        agg.attrs = _aggregate_attrs(da, s, "year")
        out[name] = agg
    result = _with_grid_mapping(xr.Dataset(out), ds, names)
    result = result.assign_coords(
        complete=flags["complete"].sel(time=result["time"]),
        days=flags["days"].sel(time=result["time"]),
    )
    return _carry_attrs(
        result, ds, "annual", stat=stat, incomplete=incomplete, incomplete_periods=note
    )


@register("seasonal")
def seasonal(ds: xr.Dataset, stat: str = "auto", incomplete: str = "drop") -> xr.Dataset:
    """Climatological season maps (DJF, MAM, JJA, SON) over all years.

    Each season of each year is aggregated first (sum: the season's total), then averaged over
    years (min/max: the extreme over years). Seasons the data do not cover whole (the partial
    DJF at the ends of a record) are dropped (incomplete="drop") or kept ("flag"; coord
    `partial_seasons` counts them per season, attr `incomplete_periods` names them).
    """
    names = gridded_vars(ds)
    keep, flags, note = _completeness(ds, "season", incomplete)
    labels = pd.DatetimeIndex(flags["time"].values if keep is None else keep)
    partial = pd.DatetimeIndex(flags["time"].values[~flags["complete"].values])
    out = {}
    for name in names:
        da = ds[name]
        s = _resolve_stat(da, stat)
        per_season = _aggregate(da, s, da.resample(time="QS-DEC")).sel(time=labels.values)
        over_years = {"min": "min", "max": "max"}.get(s, "mean")
        agg = getattr(per_season.groupby("time.season"), over_years)("time")
        agg = agg.reindex(season=[x for x in ("DJF", "MAM", "JJA", "SON") if x in agg.season])
        agg.attrs = _aggregate_attrs(da, s, "season")
        out[name] = agg
    result = _with_grid_mapping(xr.Dataset(out), ds, names)
    season_of = {12: "DJF", 3: "MAM", 6: "JJA", 9: "SON"}
    kept_partial = [season_of[t.month] for t in partial if keep is None]
    result = result.assign_coords(
        partial_seasons=(
            "season",
            np.array([kept_partial.count(str(v)) for v in result["season"].values], "int16"),
            {"long_name": "incomplete seasons included in the average"},
        )
    )
    return _carry_attrs(
        result, ds, "seasonal", stat=stat, incomplete=incomplete, incomplete_periods=note
    )


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


# ----------------------------------------------------------------------------- dispatch

_SUFFIXED = {
    "annual": ("stat", STATS),
    "seasonal": ("stat", STATS),
    "climatology": ("freq", FREQS),
    "anomaly": ("freq", FREQS),
}
_ALIASES = {"ndvi": "ndvi_monthly", "ndvi_composite": "ndvi_monthly"}


def resolve(name: str) -> tuple[Reduction, dict[str, Any]]:
    """The function for a reduction name and the parameters encoded in it (`annual_max`)."""
    name = _ALIASES.get(name, name)
    if name in REGISTRY:
        return REGISTRY[name], {}
    base, _, suffix = name.partition("_")
    if base in _SUFFIXED:
        param, choices = _SUFFIXED[base]
        if suffix in choices:
            return REGISTRY[base], {param: suffix}
        if base == "climatology" and suffix.endswith("_field"):
            freq = suffix.removesuffix("_field")
            if freq in choices:
                return REGISTRY[base], {param: freq, "field": True}
    raise ValueError(f"reduction {name!r} is unknown; use one of: {', '.join(available())}")


def available() -> list[str]:
    names = [n for n in REGISTRY if n not in _SUFFIXED]
    for base, (_, choices) in _SUFFIXED.items():
        names += [base] + [f"{base}_{c}" for c in choices]
    names += [f"climatology_{f}_field" for f in FREQS]
    return sorted(set(names))


# Reductions that take `incomplete` (periods: years, seasons, months).
_TAKES_INCOMPLETE = {"annual", "seasonal", "anomaly"}


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
