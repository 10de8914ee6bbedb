"""Reductions to maps per period: per calendar year (`annual`) and climatological seasons
(`seasonal`), with sums for precipitation and incomplete periods dropped or flagged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pcflow.reductions.common import (
    STATS,
    _append_cell_method,
    _carry_attrs,
    _check_choice,
    flox_pays,
    gridded_vars,
    is_precipitation,
    summed_units,
)
from pcflow.reductions.periods import _completeness
from pcflow.reductions.registry import register


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
        with xr.set_options(use_flox=flox_pays(da, "year")):
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
        over_years = {"min": "min", "max": "max"}.get(s, "mean")
        with xr.set_options(use_flox=flox_pays(da, "season")):
            per_season = _aggregate(da, s, da.resample(time="QS-DEC")).sel(time=labels.values)
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
