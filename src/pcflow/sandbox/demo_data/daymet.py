"""The demo Daymet Hawaii dataset: Daymet's real grid and projection, approximate island
outlines and seeded weather, as a lazy xarray Dataset (one year chunk generated when read)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pcflow.sandbox.demo_data.common import SEED

DAYMET_YEARS = (2019, 2020)
# MPC's daymet-daily-hi grid (cube:dimensions of its collection JSON): x -5802250..-5519250,
# y -39000..-622000 (north to south), step 1000 m; arrays are (time, y, x) = (n, 584, 284).
DAYMET_NY, DAYMET_NX = 584, 284
DAYMET_X0 = -5802250.0
DAYMET_Y0 = -39000.0
DAYMET_CHUNKS = (365, DAYMET_NY, DAYMET_NX)
# MPC's collection extent for Hawaii.
DAYMET_BBOX = [-160.3056, 17.9539, -154.772, 23.5186]

LCC_ATTRS: dict[str, Any] = {
    "grid_mapping_name": "lambert_conformal_conic",
    "longitude_of_central_meridian": -100.0,
    "latitude_of_projection_origin": 42.5,
    "false_easting": 0.0,
    "false_northing": 0.0,
    "standard_parallel": [25.0, 60.0],
    "semi_major_axis": 6378137.0,
    "inverse_flattening": 298.257223563,
}

VARIABLE_ATTRS: dict[str, dict[str, str]] = {
    "tmax": {
        "units": "degrees C",
        "long_name": "daily maximum temperature",
        "cell_methods": "area: mean time: maximum",
    },
    "tmin": {
        "units": "degrees C",
        "long_name": "daily minimum temperature",
        "cell_methods": "area: mean time: minimum",
    },
    "prcp": {
        "units": "mm/day",
        "long_name": "daily total precipitation",
        "cell_methods": "area: mean time: sum",
    },
}
COORD_ATTRS: dict[str, dict[str, str]] = {
    "lat": {
        "units": "degrees_north",
        "long_name": "latitude coordinate",
        "standard_name": "latitude",
    },
    "lon": {
        "units": "degrees_east",
        "long_name": "longitude coordinate",
        "standard_name": "longitude",
    },
}
YEARDAY_LONG_NAME = "day of year (DOY) starting with day 1 on January 1st"

# APPROXIMATE outlines (lon, lat) of the main Hawaiian islands, drawn by hand from a map to
# within a few km: good enough for a land/ocean mask with realistic shapes, not a coastline.
ISLANDS: dict[str, list[tuple[float, float]]] = {
    "Hawaii": [(-155.88, 20.27), (-155.73, 20.20), (-155.08, 19.86), (-154.81, 19.51),
               (-154.98, 19.34), (-155.30, 19.26), (-155.62, 18.92), (-155.68, 18.97),
               (-155.91, 19.12), (-155.92, 19.48), (-156.06, 19.73), (-155.83, 20.02)],
    "Maui": [(-156.70, 20.93), (-156.47, 21.02), (-156.23, 20.90), (-155.98, 20.72),
             (-156.05, 20.65), (-156.42, 20.58), (-156.45, 20.73), (-156.62, 20.80)],
    "Kahoolawe": [(-156.70, 20.58), (-156.55, 20.60), (-156.54, 20.52), (-156.68, 20.50)],
    "Lanai": [(-157.06, 20.93), (-156.92, 20.93), (-156.80, 20.82), (-156.95, 20.73),
              (-157.06, 20.80)],
    "Molokai": [(-157.31, 21.10), (-157.25, 21.22), (-156.90, 21.17), (-156.71, 21.16),
                (-156.73, 21.06), (-157.02, 21.05)],
    "Oahu": [(-158.28, 21.58), (-158.10, 21.71), (-157.98, 21.71), (-157.65, 21.32),
             (-157.70, 21.26), (-158.10, 21.29), (-158.23, 21.46)],
    "Kauai": [(-159.78, 22.06), (-159.55, 22.23), (-159.30, 22.22), (-159.29, 21.88),
              (-159.45, 21.87), (-159.70, 21.96)],
    "Niihau": [(-160.25, 21.90), (-160.05, 22.02), (-160.05, 21.78), (-160.20, 21.78)],
}  # fmt: skip
# Summits (lon, lat, height m, radius km) for a plausible elevation field (lapse rate, rain).
PEAKS = (
    (-155.47, 19.82, 4200.0, 28.0),  # Mauna Kea
    (-155.60, 19.47, 4100.0, 35.0),  # Mauna Loa
    (-155.87, 19.69, 2500.0, 15.0),  # Hualalai
    (-156.25, 20.71, 3000.0, 16.0),  # Haleakala
    (-156.59, 20.87, 1700.0, 7.0),  # West Maui
    (-157.80, 21.38, 900.0, 10.0),  # Ko'olau
    (-159.50, 22.06, 1500.0, 12.0),  # Wai'ale'ale
)


def daymet_time() -> pd.DatetimeIndex:
    """Daymet days: 365 per year at 12:00 (Dec 31 dropped in leap years)."""
    days = [pd.date_range(f"{y}-01-01T12:00", periods=365, freq="D") for y in DAYMET_YEARS]
    return days[0].append(days[1:])


def daymet_crs():
    import pyproj

    return pyproj.CRS.from_cf(LCC_ATTRS)


def daymet_xy() -> tuple[np.ndarray, np.ndarray]:
    x = DAYMET_X0 + 1000.0 * np.arange(DAYMET_NX)
    y = DAYMET_Y0 - 1000.0 * np.arange(DAYMET_NY)  # north to south, like Daymet
    return x, y


@functools.lru_cache(maxsize=1)
def daymet_lonlat() -> tuple[np.ndarray, np.ndarray]:
    """2-D (lon, lat) of the cell centres, float32 like Daymet's, from the projection."""
    import pyproj

    x, y = daymet_xy()
    xx, yy = np.meshgrid(x, y)
    to_lonlat = pyproj.Transformer.from_crs(daymet_crs(), "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(xx, yy)
    lon.flags.writeable = lat.flags.writeable = False
    return lon.astype("float32"), lat.astype("float32")


@functools.lru_cache(maxsize=1)
def daymet_land() -> np.ndarray:
    """(y, x) bool: cells whose centre lies on one of the (approximate) islands."""
    import shapely

    lon, lat = daymet_lonlat()
    land = np.zeros(lon.shape, dtype=bool)
    for outline in ISLANDS.values():
        land |= shapely.contains_xy(shapely.Polygon(outline), lon, lat)
    land = land.reshape(lon.shape)
    land.flags.writeable = False
    return land


def _land_fields() -> dict[str, np.ndarray]:
    """Per land cell: elevation (m) and windwardness (0 lee .. 1 windward, trade winds from NE)."""
    lon, lat = daymet_lonlat()
    land = daymet_land()
    lo, la = lon[land].astype("float64"), lat[land].astype("float64")
    km_x = (
        (lo[:, None] - np.array([p[0] for p in PEAKS])) * 111.32 * np.cos(np.deg2rad(la))[:, None]
    )
    km_y = (la[:, None] - np.array([p[1] for p in PEAKS])) * 110.57
    dist2 = km_x**2 + km_y**2
    heights = np.array([p[2] for p in PEAKS]) * np.exp(
        -dist2 / np.array([p[3] for p in PEAKS]) ** 2
    )
    nearest = np.argmin(dist2, axis=1)
    elevation = 20.0 + heights.max(axis=1)
    # Direction from the nearest summit: north-east slopes face the trade winds.
    dx, dy = km_x[np.arange(lo.size), nearest], km_y[np.arange(lo.size), nearest]
    windward = 0.5 * (1.0 + (dx + dy) / np.sqrt(2.0) / np.maximum(np.hypot(dx, dy), 1e-6))
    return {"elevation": elevation, "windward": windward}


@functools.lru_cache(maxsize=2)
def _year_land_values(year: int) -> dict[str, np.ndarray]:
    """tmin/tmax/prcp of one year at the land cells: (365, n_land) float32, seeded per year."""
    rng = np.random.default_rng([SEED, year])
    fields = _land_fields()
    elevation, windward = fields["elevation"], fields["windward"]
    n = elevation.size
    doy = np.arange(1, 366, dtype="float64")
    season = np.sin(2 * np.pi * (doy - 120.0) / 365.0)  # warmest around late summer
    weather = rng.normal(0.0, 0.9, 365)  # day-to-day anomaly shared by the islands
    f32 = "float32"  # float32 draws: twice as fast, and the data are float32 anyway
    lapse = -6.5 * elevation / 1000.0
    tmax = (
        28.0
        + 2.5 * season[:, None]
        + weather[:, None]
        + lapse[None]
        + 0.4 * rng.standard_normal((365, n), dtype=f32)
    )
    dtr = 8.0 + 1.0 * season[:, None] + 0.5 * rng.standard_normal((365, n), dtype=f32)
    tmin = tmax - np.clip(dtr, 2.0, None)
    wet_season = 0.5 * (1.0 + np.cos(2 * np.pi * (doy - 15.0) / 365.0))  # wetter in winter
    p_rain = np.clip(0.15 + 0.45 * windward[None] + 0.2 * wet_season[:, None], 0, 0.95)
    rains = rng.random((365, n), dtype=f32) < p_rain
    # Exponential amounts (a gamma with shape 1): skewed like daily rain, and fast to draw.
    amount = (3.0 + 14.0 * windward[None]) * rng.standard_exponential((365, n), dtype=f32)
    prcp = np.where(rains, amount, 0.0)

    def data(values: np.ndarray) -> np.ndarray:
        # Daymet-like precision (2 decimals) keeps the store small and compressible.
        out = np.round(values, 2).astype("float32")
        out.flags.writeable = False
        return out

    return {"tmax": data(tmax), "tmin": data(tmin), "prcp": data(np.maximum(prcp, 0.0))}


def daymet_year(name: str, year: int) -> np.ndarray:
    """One variable's year chunk (365, y, x) float32: values on land, NaN over the ocean."""
    out = np.full(DAYMET_CHUNKS, np.nan, dtype="float32")
    out[:, daymet_land()] = _year_land_values(year)[name]
    return out


def _lazy_variable(name: str) -> Any:
    import dask
    import dask.array as da

    years = [
        da.from_delayed(
            dask.delayed(daymet_year, pure=True)(name, year), DAYMET_CHUNKS, dtype="float32"
        )
        for year in DAYMET_YEARS
    ]
    return da.concatenate(years, axis=0)


def daymet_dataset() -> xr.Dataset:
    """The demo Daymet dataset, lazily (Dask, one chunk per year): exactly what the sandbox
    stores. Reading a window generates only the year chunks it touches."""
    time = daymet_time()
    x, y = daymet_xy()
    lon, lat = daymet_lonlat()
    dims = ("time", "y", "x")
    grid = {"grid_mapping": "lambert_conformal_conic"}
    data_vars: dict[str, Any] = {
        name: (dims, _lazy_variable(name), {**VARIABLE_ATTRS[name], **grid})
        for name in ("tmax", "tmin", "prcp")
    }
    data_vars["yearday"] = (
        ("time",),
        np.asarray(time.day_of_year, dtype="int16"),
        {"long_name": YEARDAY_LONG_NAME},
    )
    data_vars["lambert_conformal_conic"] = ((), np.int16(-32767), dict(LCC_ATTRS))
    ds = xr.Dataset(
        data_vars,
        coords={
            "time": (
                "time",
                time.values,
                {"standard_name": "time", "long_name": "24-hour day based on local time"},
            ),
            "y": (
                "y",
                y,
                {
                    "units": "m",
                    "long_name": "y coordinate of projection",
                    "standard_name": "projection_y_coordinate",
                },
            ),
            "x": (
                "x",
                x,
                {
                    "units": "m",
                    "long_name": "x coordinate of projection",
                    "standard_name": "projection_x_coordinate",
                },
            ),
            "lat": (("y", "x"), np.array(lat), dict(COORD_ATTRS["lat"])),
            "lon": (("y", "x"), np.array(lon), dict(COORD_ATTRS["lon"])),
        },
        attrs={
            "title": "pcflow sandbox demo data shaped like Daymet V4 daily Hawaii",
            "comment": "SYNTHETIC demo data made by pcflow.sandbox.demo_data (not real Daymet)",
            "Conventions": "CF-1.6",
            "source": "pcflow.sandbox.demo_data (seeded synthetic weather)",
            "start_year": DAYMET_YEARS[0],
        },
    )
    return ds
