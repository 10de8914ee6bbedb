"""Small synthetic datasets shaped like the MPC's Daymet Zarr and Sentinel-2 L2A cubes.

Deterministic (seeded); used by tests and bench/reduce.py. Not the sandbox's demo data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from pcflow.sandbox.demo_data import LCC_ATTRS

# Daymet's Lambert conformal conic (its CF grid mapping, as the sandbox store has it) and a
# cell of its Hawaii grid on the Big Island's east coast: rotated ~38 degrees against lon/lat.
LCC = LCC_ATTRS
X0, Y0 = -5571250.0, -525000.0


def daymet_like(years=(2018, 2019, 2020), ny=12, nx=9, chunk_days=365, seed=0) -> xr.Dataset:
    """Daymet-shaped: 365-day years (Dec 31 dropped in leap years), (time, y, x) float32 on
    Daymet's rotated Lambert conformal grid (1 km, 2-D lat/lon from pyproj, CF grid mapping),
    ocean cells NaN (a diagonal coast in grid space), CF attrs, one-year time chunks."""
    import pyproj

    t = pd.date_range(f"{years[0]}-01-01", f"{years[-1]}-12-31", freq="D")
    t = t[~((t.month == 12) & (t.day == 31) & t.is_leap_year)]
    rng = np.random.default_rng(seed)
    doy = t.day_of_year.to_numpy()
    season = 5 * np.sin(2 * np.pi * doy / 365.0)
    tmax = (20 + season)[:, None, None] + rng.normal(0, 2, (t.size, ny, nx))
    x = X0 + 1000.0 * np.arange(nx)
    y = Y0 - 1000.0 * np.arange(ny)
    to_lonlat = pyproj.Transformer.from_crs(pyproj.CRS.from_cf(LCC), 4326, always_xy=True)
    lon, lat = to_lonlat.transform(*np.meshgrid(x, y))
    # Ocean: the north-west corner cut by a diagonal (plus the old 3 x 2 corner).
    row, col = np.mgrid[0:ny, 0:nx]
    ocean = (row / ny + col / nx < 0.45) | ((row < 3) & (col < 2))
    tmax[:, ocean] = np.nan
    prcp = rng.gamma(0.6, 5, (t.size, ny, nx))
    prcp[:, ocean] = np.nan
    grid = {"grid_mapping": "lambert_conformal_conic"}
    ds = xr.Dataset(
        {
            "tmax": (
                ("time", "y", "x"),
                tmax.astype("float32"),
                {
                    "units": "degrees C",
                    "long_name": "daily maximum temperature",
                    "cell_methods": "area: mean time: maximum",
                    **grid,
                },
            ),
            "prcp": (
                ("time", "y", "x"),
                prcp.astype("float32"),
                {
                    "units": "mm/day",
                    "long_name": "daily total precipitation",
                    "cell_methods": "area: mean time: sum",
                    **grid,
                },
            ),
            "lambert_conformal_conic": ((), np.int16(0), dict(LCC)),
            "yearday": (("time",), doy.astype("int16")),
        },
        coords={
            "time": t,
            "y": ("y", y, {"units": "m"}),
            "x": ("x", x, {"units": "m"}),
            "lat": (("y", "x"), lat.astype("float32"), {"units": "degrees_north"}),
            "lon": (("y", "x"), lon.astype("float32"), {"units": "degrees_east"}),
        },
        attrs={"provenance": '{"git": "abc"}'},
    )
    return ds.chunk({"time": chunk_days, "y": -1, "x": -1})


def s2_cube(seed=3) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    t = pd.to_datetime(["2021-06-01", "2021-06-11", "2021-06-21", "2021-07-03", "2021-07-13"])
    shape = (t.size, 6, 5)
    red = rng.integers(200, 2000, shape).astype("uint16")
    nir = rng.integers(1500, 5000, shape).astype("uint16")
    scl = rng.choice(
        [4, 5, 6, 3, 8, 9, 10, 0], size=shape, p=[0.4, 0.2, 0.1, 0.06, 0.06, 0.06, 0.06, 0.06]
    )
    red[0, 0, 0] = 0  # nodata reflectance
    return xr.Dataset(
        {
            "B04": (("time", "y", "x"), red),
            "B08": (("time", "y", "x"), nir),
            "SCL": (("time", "y", "x"), scl.astype("uint8")),
        },
        coords={"time": t, "y": 4e6 - np.arange(6) * 10.0, "x": 5e5 + np.arange(5) * 10.0},
    ).chunk({"time": 1})
