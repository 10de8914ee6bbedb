"""Figures of reduction results (matplotlib, Agg, no pyplot state).

`plot(name, result, path, title_context)` picks the figure kind from the reduction name, writes
a PNG and returns the Figure (tests inspect titles and axis labels on it, not pixels).
Titles carry the dataset, variable, units and period; map axes are in the data's CRS
(projected x/y with units, or longitude/latitude).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from pcflow import reductions

STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
LINE = "#1f4e79"
BAND = "#9ecae1"
WARM, COOL = "#c0392b", "#2471a3"
DPI = 110
MAX_PANELS = 12
REGION_MASK = "region_mask"

Plotter = Callable[[xr.Dataset, dict[str, Any]], Figure]


# ----------------------------------------------------------------------------- labels


def _units(da: xr.DataArray) -> str:
    units = da.attrs.get("units")
    return f" [{units}]" if units not in (None, "") else ""


def _label(da: xr.DataArray) -> str:
    # Short: the panel title already carries the long name; long y labels overlap in stacks.
    return f"{da.name}{_units(da)}"


def _period(result: xr.Dataset) -> str:
    period = result.attrs.get("period")
    if period:
        return str(period).replace("/", " to ")
    if "time" in result.coords and result.sizes.get("time"):
        t = pd.to_datetime(result["time"].values)
        return f"{t[0]:%Y-%m-%d} to {t[-1]:%Y-%m-%d}"
    return "period unknown"


def _title(ctx: dict[str, Any], what: str, result: xr.Dataset) -> str:
    dataset = ctx.get("dataset", "")
    head = f"{dataset}: " if dataset else ""
    return f"{head}{what}, {_period(result)}{_notes(result)}"


def _notes(result: xr.Dataset) -> str:
    """What the numbers cover: the region (cells counted) and partial periods dropped/flagged."""
    notes = []
    if result.attrs.get("region"):
        notes.append(f"cells in {result.attrs['region']} ({result.attrs.get('region_cells')})")
    partial = result.attrs.get("incomplete_periods")
    if partial and partial != "none":
        notes.append(f"partial periods {partial}")
    return "".join(f"\n{n}" for n in notes)


def _crs_name(result: xr.Dataset, da: xr.DataArray) -> str:
    gm = da.attrs.get("grid_mapping")
    if gm and gm in result.variables:
        return str(result[gm].attrs.get("grid_mapping_name", gm)).replace("_", " ")
    if "spatial_ref" in result.variables:
        attrs = result["spatial_ref"].attrs
        if attrs.get("crs_wkt"):
            try:
                from pyproj import CRS

                crs = CRS.from_wkt(attrs["crs_wkt"])
                return f"{crs.name} (EPSG:{crs.to_epsg()})" if crs.to_epsg() else crs.name
            except Exception:
                return "projected"
    return ""


def _axis_coords(result: xr.Dataset, da: xr.DataArray) -> tuple[float, str, str]:
    """(scale, x label, y label): projected metres are shown in km to keep ticks readable."""
    ydim, xdim = reductions.spatial_dims(da)
    if (ydim, xdim) in reductions.GEOGRAPHIC_DIMS:
        return 1.0, "longitude [degrees_east]", "latitude [degrees_north]"
    units = result[xdim].attrs.get("units", "m") if xdim in result.coords else "m"
    scale, units = (1e-3, "km") if units in ("m", "metre", "meter", "metres") else (1.0, units)
    return scale, f"{xdim} [{units}]", f"{ydim} [{units}]"


def _vars(result: xr.Dataset, ndim: int | None = None) -> list[str]:
    names = [
        n
        for n, da in result.data_vars.items()
        if np.issubdtype(da.dtype, np.number)
        and da.ndim > 0
        and (ndim is None or da.ndim == ndim)
        and n != REGION_MASK
    ]
    if not names:
        raise ValueError("result has no variables to plot")
    return names


def _figure(nrows: int, ncols: int = 1, width: float = 8.0, height: float = 2.6) -> Figure:
    import matplotlib

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height * nrows), layout="constrained")
        fig.subplots(nrows, ncols, squeeze=False)
    return fig


# ----------------------------------------------------------------------------- series


def _doy_band(series: xr.DataArray) -> tuple[np.ndarray, np.ndarray] | None:
    """The day-of-year 10-90 % band of a daily series, on the series' own time axis."""
    if series.sizes.get("time", 0) < 2 * 365:
        return None
    lo = reductions.group_stat(series, "time.dayofyear", 0.1)
    hi = reductions.group_stat(series, "time.dayofyear", 0.9)
    doy = series["time"].dt.dayofyear
    return lo.sel(dayofyear=doy).values, hi.sel(dayofyear=doy).values


def plot_series(result: xr.Dataset, ctx: dict[str, Any]) -> Figure:
    """Spatial-mean time series per variable, over the day-of-year 10-90 % climatology band."""
    names = _vars(result, ndim=1)
    fig = _figure(len(names))
    for ax, name in zip(fig.axes, names, strict=True):
        da = result[name]
        t = da["time"].values
        band = _doy_band(da)
        if band is not None:
            ax.fill_between(
                t, band[0], band[1], color=BAND, alpha=0.6, lw=0, label="climatology 10-90 %"
            )
        ax.plot(t, da.values, color=LINE, lw=0.8, label="spatial mean")
        ax.set_ylabel(_label(da))
        ax.set_xlabel("time")
        ax.set_title(
            _title(ctx, f"{da.attrs.get('long_name', name)}{_units(da)}, spatial mean", result)
        )
        ax.legend(loc="upper right", fontsize=7, frameon=False)
    return fig


def plot_climatology(result: xr.Dataset, ctx: dict[str, Any]) -> Figure:
    """Climatology mean with p10-p90 and min-max bands per variable."""
    names = [
        n for n in _vars(result, ndim=1) if not n.endswith(("_std", "_min", "_max", "_p10", "_p90"))
    ]
    dim = next(iter(result[names[0]].dims))
    fig = _figure(len(names))
    for ax, name in zip(fig.axes, names, strict=True):
        x = result[dim].values
        if f"{name}_min" in result:
            ax.fill_between(
                x,
                result[f"{name}_min"],
                result[f"{name}_max"],
                color=BAND,
                alpha=0.3,
                lw=0,
                label="min-max",
            )
        if f"{name}_p10" in result:
            ax.fill_between(
                x,
                result[f"{name}_p10"],
                result[f"{name}_p90"],
                color=BAND,
                alpha=0.8,
                lw=0,
                label="10-90 %",
            )
        ax.plot(x, result[name].values, color=LINE, lw=1.2, label="mean")
        ax.set_xlabel("day of year" if dim == "dayofyear" else dim)
        if dim == "month":
            ax.set_xticks(range(1, 13))
        ax.set_ylabel(_label(result[name]))
        years = result.attrs.get("years")
        span = f" ({years} years)" if years else ""
        ax.set_title(
            _title(
                ctx,
                f"{result[name].attrs.get('long_name', name)}{_units(result[name])}{span}",
                result,
            )
        )
        ax.legend(loc="upper right", fontsize=7, frameon=False)
    return fig


def plot_anomaly(result: xr.Dataset, ctx: dict[str, Any]) -> Figure:
    """Anomaly bars (monthly) or a heat strip (daily) per variable."""
    names = _vars(result, ndim=1)
    daily = result.attrs.get("anomaly_freq") == "dayofyear" or result.sizes.get("time", 0) > 400
    fig = _figure(len(names), height=2.0 if daily else 2.6)
    for ax, name in zip(fig.axes, names, strict=True):
        da = result[name]
        values = da.values
        t = pd.to_datetime(da["time"].values)
        if daily:
            lim = float(np.nanmax(np.abs(values))) or 1.0
            import matplotlib.dates as mdates

            x0, x1 = mdates.date2num(t[0]), mdates.date2num(t[-1])
            im = ax.imshow(
                values[None, :],
                aspect="auto",
                cmap="BrBG" if reductions.is_precipitation(da) else "RdBu_r",
                vmin=-lim,
                vmax=lim,
                extent=(x0, x1, 0, 1),
                interpolation="nearest",
            )
            ax.xaxis_date()
            ax.set_yticks([])
            ax.grid(False)
            fig.colorbar(im, ax=ax, label=f"{name}{_units(da)}", pad=0.01)
        else:
            wet, dry = "#1b7837", "#8c510a"  # precipitation: green above, brown below
            pos, neg = (wet, dry) if reductions.is_precipitation(da) else (WARM, COOL)
            colors = np.where(values >= 0, pos, neg)
            ax.bar(t, values, width=25, color=colors)
            ax.axhline(0, color="black", lw=0.6)
            ax.set_ylabel(_label(da))
        ax.set_xlabel("time")
        ax.set_title(_title(ctx, f"{da.attrs.get('long_name', name)}{_units(da)}", result))
    return fig


# ----------------------------------------------------------------------------- maps


def _panels(da: xr.DataArray) -> tuple[str | None, list[Any]]:
    """The dimension to facet over and its (at most MAX_PANELS) values."""
    ydim, xdim = reductions.spatial_dims(da)
    extra = [d for d in da.dims if d not in (ydim, xdim)]
    if not extra:
        return None, [None]
    dim = extra[0]
    values = list(da[dim].values)
    if len(values) > MAX_PANELS:
        idx = np.linspace(0, len(values) - 1, MAX_PANELS).round().astype(int)
        values = [values[i] for i in idx]
    return dim, values


def _panel_label(dim: str | None, value: Any) -> str:
    if dim is None:
        return ""
    if np.issubdtype(np.asarray(value).dtype, np.datetime64):
        ts = pd.Timestamp(value)
        return f"{ts:%Y}" if ts.month == 1 and ts.day == 1 else f"{ts:%Y-%m}"
    if dim == "month":
        return pd.Timestamp(2001, int(value), 1).strftime("%b")
    return f"{dim} {value}" if dim == "dayofyear" else str(value)


def plot_maps(
    result: xr.Dataset, ctx: dict[str, Any], cmap: str = "viridis", vlim: tuple | None = None
) -> Figure:
    """Small multiples of each gridded variable over its extra dim (year, season, month)."""
    names = [n for n in _vars(result) if result[n].ndim >= 2 and n != "clear_count"]
    layout = [(n, *_panels(result[n])) for n in names]
    ncols = min(4, max(len(v) for _, _, v in layout))
    nrows = sum(int(np.ceil(len(v) / ncols)) for _, _, v in layout)
    fig = _figure(nrows, ncols, width=2.6 * ncols + 1.2, height=2.7)
    axes = fig.axes
    row = 0
    for name, dim, values in layout:
        da = result[name]
        ydim, xdim = reductions.spatial_dims(da)
        scale, xlabel, ylabel = _axis_coords(result, da)
        lo, hi = vlim or (float(da.quantile(0.02)), float(da.quantile(0.98)))
        rows = int(np.ceil(len(values) / ncols))
        used = []
        for i, value in enumerate(values):
            ax = axes[(row + i // ncols) * ncols + i % ncols]
            panel = da if dim is None else da.sel({dim: value})
            mesh = ax.pcolormesh(
                panel[xdim].values * scale,
                panel[ydim].values * scale,
                panel.transpose(ydim, xdim).values,
                cmap=cmap,
                vmin=lo,
                vmax=hi,
                shading="auto",
            )
            _outline_region(ax, result, panel, xdim, ydim, scale)
            ax.set_aspect("equal")
            label = f"{name} {_panel_label(dim, value)}{_partial(result, dim, value)}"
            ax.set_title(label.strip(), fontsize=8)
            ax.set_xlabel(xlabel, fontsize=7)
            ax.set_ylabel(ylabel, fontsize=7)
            ax.tick_params(labelsize=6)
            ax.grid(False)
            used.append(ax)
        for j in range(len(values), rows * ncols):
            axes[(row + j // ncols) * ncols + j % ncols].set_visible(False)
        cbar_label = f"{name}: {da.attrs.get('long_name', name)}"
        fig.colorbar(mesh, ax=used, label=f"{_wrap(cbar_label)}{_units(da)}", shrink=0.9)
        row += rows
    kind = _kind(str(result.attrs.get("pcflow_reduction", "")))
    crs = _crs_name(result, result[names[0]])
    on = f" on {crs}" if crs else ""
    # wrap: a long title (dataset, reduction, CRS, period) must not run off a narrow figure
    fig.suptitle(_title(ctx, f"{kind} of {', '.join(names)}{on}", result), wrap=True)
    return fig


def _outline_region(
    ax: Any, result: xr.Dataset, panel: xr.DataArray, xdim: str, ydim: str, scale: float
) -> None:
    """Draw the region's outline (the edge of the region mask) over a map panel."""
    if REGION_MASK not in result or result[REGION_MASK].ndim != 2:
        return
    mask = result[REGION_MASK].transpose(ydim, xdim)
    if mask.min() == mask.max():
        return  # all in (or all out): no edge to draw
    ax.contour(
        mask[xdim].values * scale,
        mask[ydim].values * scale,
        mask.values.astype(float),
        levels=[0.5],
        colors="black",
        linewidths=0.8,
    )


def _partial(result: xr.Dataset, dim: str | None, value: Any) -> str:
    """' (partial: 318 d)' for a flagged incomplete period's panel."""
    if dim != "time" or "complete" not in result.coords:
        return ""
    if bool(result["complete"].sel(time=value)):
        return ""
    return f" (partial: {int(result['days'].sel(time=value))} d)"


MAP_KINDS = {
    "annual": "annual aggregates",
    "seasonal": "seasonal aggregates",
    "climatology": "climatology",
    "ndvi": "NDVI monthly median composite",
}


def _kind(reduction: str) -> str:
    for prefix, kind in MAP_KINDS.items():
        if reduction.startswith(prefix):
            detail = reduction.removeprefix(prefix).strip("_").replace("_", " ")
            return f"{kind} ({detail})" if detail and prefix != "ndvi" else kind
    return "maps"


def _wrap(text: str, width: int = 32) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def plot_ndvi(result: xr.Dataset, ctx: dict[str, Any]) -> Figure:
    return plot_maps(result, ctx, cmap="RdYlGn", vlim=(-0.2, 1.0))


# ----------------------------------------------------------------------------- dispatch

PLOTTERS: dict[Callable, Plotter] = {
    reductions.spatial_mean: plot_series,
    reductions.anomaly: plot_anomaly,
    reductions.annual: plot_maps,
    reductions.seasonal: plot_maps,
    reductions.ndvi_monthly: plot_ndvi,
}


def plotter_for(name: str, result: xr.Dataset) -> Plotter:
    fn, params = reductions.resolve(name)
    if fn is reductions.climatology:
        return (
            plot_maps
            if params.get("field") or result.attrs.get("field") == "true"
            else plot_climatology
        )
    return PLOTTERS[fn]


def plot(name: str, result: xr.Dataset, path: Path, title_context: dict[str, Any]) -> Figure:
    """Plot a reduction result to a PNG at path; returns the Figure."""
    import matplotlib

    # Results are small and in memory: NumPy's group-bys and quantiles, no JIT compile.
    with matplotlib.rc_context(STYLE), reductions.in_memory_grouping():
        fig = plotter_for(name, result)(result, dict(title_context))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return fig
