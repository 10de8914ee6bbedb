"""Deterministic demo data shaped like two MPC collections (NOT real data).

* `daymet-daily-hi`: a Zarr v2 store (consolidated, like MPC's) on Daymet Hawaii's REAL grid:
  Lambert conformal conic (standard parallels 25/60, origin 42.5 N 100 W, WGS84 ellipsoid, as
  in Daymet's CF grid mapping), 1 km cells, x -5802250..-5519250 (284 columns), y
  -39000..-622000 (584 rows), 2-D lat/lon from the projection, MPC's chunking (365 x 584 x 284,
  ≈ 242 MB decoded per chunk and variable), tmin/tmax/prcp float32 for 2019-2020 in Daymet's
  365-day years (Dec 31 dropped in leap years). Ocean cells are NaN, stored as `_FillValue`
  -9999; land is an APPROXIMATE outline of the eight main islands (hand-drawn polygons, a few
  km off the true coast). The catalog entry is MPC's collection JSON field for field
  (tests/fixtures/mpc/daymet-daily-hi.collection-template.json) with sandbox hrefs.
* `sentinel-2-l2a`: six Sentinel-2-L2A-like items near Hilo (UTM 5N, MGRS 05QKB) with COG
  assets B04/B08 (10 m, 128 x 128) and SCL (20 m, 64 x 64), June-August 2020.

Everything comes from fixed seeds, so tests can recompute the expected arrays with
`daymet_dataset()` (lazy: one year chunk is generated when it is read) and `s2_scenes()`
independently of what the sandbox uploaded.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

SEED = 20200605
REPO = Path(__file__).resolve().parents[4]

# -- Daymet-like Zarr ---------------------------------------------------------------------------

DAYMET_ACCOUNT = "daymeteuwest"
DAYMET_CONTAINER = "daymet-zarr"
DAYMET_PATH = "daily/hi.zarr"
DAYMET_COLLECTION = "daymet-daily-hi"
DAYMET_YEARS = (2019, 2020)
# MPC's daymet-daily-hi grid (cube:dimensions of its collection JSON): x -5802250..-5519250,
# y -39000..-622000 (north to south), step 1000 m; arrays are (time, y, x) = (n, 584, 284).
DAYMET_NY, DAYMET_NX = 584, 284
DAYMET_X0 = -5802250.0
DAYMET_Y0 = -39000.0
DAYMET_CHUNKS = (365, DAYMET_NY, DAYMET_NX)
DAYMET_FILL = np.float32(-9999.0)
DAYMET_ZARR_FORMAT = 2  # MPC's Daymet stores are Zarr v2 with consolidated metadata
# MPC's collection extent for Hawaii.
DAYMET_BBOX = [-160.3056, 17.9539, -154.772, 23.5186]
# MPC's collection JSON (planetary-computer-tasks), the template of the demo catalog entry.
MPC_DAYMET_TEMPLATE = REPO / "tests/fixtures/mpc/daymet-daily-hi.collection-template.json"
# Present in MPC's store, absent from the demo store: left out of the demo's cube:variables.
MPC_ONLY_VARIABLES = ("vp", "swe", "dayl", "srad", "time_bnds")

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


def daymet_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """MPC's chunks (one year x the whole grid), Daymet's -9999 fill value."""
    import numcodecs

    compressor = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    enc: dict[str, dict[str, Any]] = {
        name: {
            "chunks": DAYMET_CHUNKS,
            "compressors": (compressor,),
            "_FillValue": DAYMET_FILL,
        }
        for name in VARIABLE_ATTRS
        if name in ds
    }
    enc["yearday"] = {"chunks": (365,), "compressors": (compressor,)}
    enc["time"] = {
        "chunks": (365,),
        "units": "days since 1950-01-01 00:00:00",
        "calendar": "standard",
        "dtype": "float64",
    }
    for name in ("lat", "lon"):
        enc[name] = {"chunks": (DAYMET_NY, DAYMET_NX), "compressors": (compressor,)}
    return enc


def write_daymet_zarr(path: Path) -> Path:
    """Write the demo store to a local directory (same bytes every time), one chunk at a time
    (each 242 MB decoded), so memory stays at about one chunk per variable."""
    import dask

    ds = daymet_dataset()
    with dask.config.set(scheduler="synchronous"):
        ds.to_zarr(
            path,
            mode="w",
            zarr_format=DAYMET_ZARR_FORMAT,
            consolidated=True,
            encoding=daymet_encoding(ds),
        )
    return Path(path)


def mpc_daymet_template() -> dict[str, Any]:
    """MPC's own daymet-daily-hi collection JSON (the fixture copied from its public repo)."""
    return json.loads(MPC_DAYMET_TEMPLATE.read_text())


def daymet_collection(blob_url: str) -> dict[str, Any]:
    """MPC's `daymet-daily-hi` collection, field for field, describing the demo store:
    time extent and shapes of the demo years, sandbox hrefs, no variables the store lacks."""
    col = copy.deepcopy(mpc_daymet_template())
    time = daymet_time()
    nt = time.size
    start = time[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    end = time[-1].strftime("%Y-%m-%dT%H:%M:%SZ")
    col["title"] = "Daymet Daily Hawaii (pcflow sandbox demo)"
    col["description"] = (
        "SYNTHETIC stand-in for MPC's Daymet daily Hawaii collection, made by "
        "pcflow.sandbox.demo_data: MPC's grid, chunking, fill value and metadata; seeded "
        f"values for {DAYMET_YEARS[0]}-{DAYMET_YEARS[-1]} on approximate island outlines."
    )
    col["extent"]["temporal"]["interval"] = [[start, end]]
    col["cube:dimensions"]["time"]["extent"] = [start, end]
    for name in MPC_ONLY_VARIABLES:
        col["cube:variables"].pop(name, None)
    for var in col["cube:variables"].values():
        if (var.get("dimensions") or [None])[0] == "time":
            var["shape"][0] = nt
    col["providers"] = [{"name": "pcflow sandbox", "roles": ["host", "processor"], "url": blob_url}]
    assets = col["assets"]
    assets.pop("thumbnail", None)  # an internet URL: nothing in the sandbox may reach out
    assets["zarr-https"]["href"] = f"{blob_url}/{DAYMET_ACCOUNT}/{DAYMET_CONTAINER}/{DAYMET_PATH}"
    return col


# -- Sentinel-2-L2A-like COG items --------------------------------------------------------------

S2_ACCOUNT = "sentinel2l2a01"
S2_CONTAINER = "sentinel2-l2"
S2_COLLECTION = "sentinel-2-l2a"
S2_EPSG = 32605
S2_MGRS = "05QKB"
S2_SIZE_10M = 128
S2_SIZE_20M = 64
# Upper-left corner of the 10 m grid near Hilo (UTM 5N), on the 05QKB tile's 20 m lattice.
S2_X0 = 281360.0
S2_Y0 = 2182460.0
# (acquisition time UTC, platform, target cloud fraction): S2A/S2B alternate every 15 days.
S2_ACQUISITIONS: tuple[tuple[str, str, float], ...] = (
    ("2020-06-05T21:10:39", "Sentinel-2B", 0.04),
    ("2020-06-20T21:10:41", "Sentinel-2A", 0.55),
    ("2020-07-05T21:10:39", "Sentinel-2B", 0.18),
    ("2020-07-20T21:10:41", "Sentinel-2A", 0.80),
    ("2020-08-04T21:10:39", "Sentinel-2B", 0.30),
    ("2020-08-19T21:10:41", "Sentinel-2A", 0.08),
)
SCL_NODATA, SCL_SHADOW, SCL_VEGETATION, SCL_NOT_VEGETATED, SCL_WATER = 0, 3, 4, 5, 6
SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS = 8, 9, 10

S2_BANDS: dict[str, dict[str, Any]] = {
    "B04": {
        "title": "Band 4 - Red - 10m",
        "gsd": 10.0,
        "eo:bands": [
            {
                "name": "B04",
                "common_name": "red",
                "description": "Band 4 - Red",
                "center_wavelength": 0.665,
                "full_width_half_max": 0.038,
            }
        ],
    },
    "B08": {
        "title": "Band 8 - NIR - 10m",
        "gsd": 10.0,
        "eo:bands": [
            {
                "name": "B08",
                "common_name": "nir",
                "description": "Band 8 - NIR",
                "center_wavelength": 0.842,
                "full_width_half_max": 0.145,
            }
        ],
    },
    "SCL": {"title": "Scene classfication map (SCL)", "gsd": 20.0},
}


@dataclass(frozen=True)
class S2Scene:
    """One demo acquisition: arrays and the names MPC would give it."""

    id: str
    datetime: dt.datetime
    platform: str
    arrays: dict[str, np.ndarray]  # B04, B08 (128x128 uint16), SCL (64x64 uint8)
    index: int = 0  # position in S2_ACQUISITIONS

    @property
    def has_raster_bands(self) -> bool:
        """MPC's S2 items have come with and without `raster:bands` (tests/fixtures/mpc):
        the sandbox serves both, alternating."""
        return self.index % 2 == 0

    @property
    def date_path(self) -> str:
        return self.datetime.strftime("%Y/%m/%d")

    def blob_path(self, band: str) -> str:
        """Path inside the container, laid out like MPC's sentinel2-l2 container."""
        stamp = self.datetime.strftime("%Y%m%dT%H%M%S")
        res = "R20m" if band == "SCL" else "R10m"
        suffix = "20m" if band == "SCL" else "10m"
        return (
            f"{S2_MGRS[:2]}/{S2_MGRS[2]}/{S2_MGRS[3:]}/{self.date_path}/{self.id}.SAFE/"
            f"GRANULE/L2A_T{S2_MGRS}_{stamp}/IMG_DATA/{res}/T{S2_MGRS}_{stamp}_{band}_{suffix}.tif"
        )


def _s2_scene(index: int, when: str, platform: str, cloud_target: float) -> S2Scene:
    rng = np.random.default_rng([SEED, index])
    n = S2_SIZE_20M
    r, c = np.mgrid[0:n, 0:n].astype("float64")
    # Coast: Hilo Bay's water in the north-east corner, land elsewhere.
    water = (c - r) > n * 0.55
    # A few bare (lava) pixels in a band; vegetation elsewhere on land.
    bare = (~water) & (np.abs(r + 0.5 * c - 0.9 * n) < 3)
    scl = np.full((n, n), SCL_VEGETATION, dtype="uint8")
    scl[bare] = SCL_NOT_VEGETATED
    scl[water] = SCL_WATER
    # Clouds: a smooth random field thresholded at the quantile giving the target cover.
    noise = rng.normal(size=(n + 8, n + 8))
    kernel = np.ones(9) / 9.0
    field = np.apply_along_axis(lambda v: np.convolve(v, kernel, "valid"), 0, noise)
    field = np.apply_along_axis(lambda v: np.convolve(v, kernel, "valid"), 1, field)
    cut = np.quantile(field, 1.0 - cloud_target)
    cloud = field >= cut
    thick = field >= np.quantile(field, 1.0 - cloud_target * 0.5)
    scl[cloud] = SCL_CLOUD_MEDIUM
    scl[thick] = SCL_CLOUD_HIGH
    cirrus = (~cloud) & (field >= cut - 0.02)
    scl[cirrus] = SCL_CIRRUS
    # Shadows: clouds shifted south-west (the sun is north-east at that hour and latitude).
    shadow = np.roll(np.roll(cloud, 3, axis=0), -3, axis=1) & ~cloud & ~cirrus & ~water
    scl[shadow] = SCL_SHADOW
    # Some acquisitions clip the swath edge: a nodata strip on the west side.
    nodata_cols = 4 * (index % 3 == 1)
    if nodata_cols:
        scl[:, :nodata_cols] = SCL_NODATA

    # 10 m reflectances (x10000) from the 20 m classes, with seasonal greenness and noise.
    cls = np.kron(scl, np.ones((2, 2), dtype="uint8"))
    day = dt.datetime.fromisoformat(when).timetuple().tm_yday
    green = 1.0 + 0.15 * np.sin(2 * np.pi * (day - 150) / 365.0)
    shape = cls.shape
    red = np.select(
        [cls == SCL_VEGETATION, cls == SCL_NOT_VEGETATED, cls == SCL_WATER, cls == SCL_SHADOW],
        [600.0 / green, 1400.0, 350.0, 250.0],
        default=6500.0,  # clouds and cirrus: bright
    )
    nir = np.select(
        [cls == SCL_VEGETATION, cls == SCL_NOT_VEGETATED, cls == SCL_WATER, cls == SCL_SHADOW],
        [3800.0 * green, 1900.0, 180.0, 700.0],
        default=6800.0,
    )
    red = red + rng.normal(0, 60, shape)
    nir = nir + rng.normal(0, 120, shape)
    valid = cls != SCL_NODATA
    b04 = np.where(valid, np.clip(np.round(red), 1, 20000), 0).astype("uint16")
    b08 = np.where(valid, np.clip(np.round(nir), 1, 20000), 0).astype("uint16")

    t = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC)
    prod = (t + dt.timedelta(days=1)).strftime("%Y%m%dT%H%M%S")
    letter = "A" if platform.endswith("A") else "B"
    item_id = f"S2{letter}_MSIL2A_{t.strftime('%Y%m%dT%H%M%S')}_R057_T{S2_MGRS}_{prod}"
    return S2Scene(item_id, t, platform, {"B04": b04, "B08": b08, "SCL": scl}, index)


def s2_scenes() -> list[S2Scene]:
    """The demo Sentinel-2 acquisitions with their pixel arrays (deterministic)."""
    return [_s2_scene(i, *acq) for i, acq in enumerate(S2_ACQUISITIONS)]


def s2_transform(band: str) -> list[float]:
    res = 20.0 if band == "SCL" else 10.0
    return [res, 0.0, S2_X0, 0.0, -res, S2_Y0]


def write_cog(path: Path, array: np.ndarray, band: str) -> Path:
    """A Cloud-Optimized GeoTIFF (GDAL COG driver), nodata 0, like MPC's S2 assets."""
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    res = 20.0 if band == "SCL" else 10.0
    profile = {
        "driver": "COG",
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": array.dtype.name,
        "crs": CRS.from_epsg(S2_EPSG),
        "transform": Affine(res, 0.0, S2_X0, 0.0, -res, S2_Y0),
        "nodata": 0,
        "compress": "DEFLATE",
        "blocksize": 32,
        "overview_resampling": "nearest" if band == "SCL" else "average",
    }
    with rasterio.Env(GDAL_NUM_THREADS="1"):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(array, 1)
    return Path(path)


def _footprint() -> tuple[list[float], dict[str, Any]]:
    import pyproj

    to_lonlat = pyproj.Transformer.from_crs(S2_EPSG, 4326, always_xy=True)
    size = S2_SIZE_10M * 10.0
    corners = [
        (S2_X0, S2_Y0),
        (S2_X0, S2_Y0 - size),
        (S2_X0 + size, S2_Y0 - size),
        (S2_X0 + size, S2_Y0),
        (S2_X0, S2_Y0),
    ]
    ring = [[round(v, 7) for v in to_lonlat.transform(x, y)] for x, y in corners]
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    return [min(lons), min(lats), max(lons), max(lats)], {"type": "Polygon", "coordinates": [ring]}


def _percent(mask: np.ndarray, valid: np.ndarray) -> float:
    return round(100.0 * float((mask & valid).sum()) / max(int(valid.sum()), 1), 6)


def _raster_bands(band: str) -> list[dict[str, Any]]:
    # What the COGs hold (write_cog): uint16 reflectance x10000 / uint8 SCL, nodata 0.
    dtype = "uint8" if band == "SCL" else "uint16"
    return [{"nodata": 0, "data_type": dtype, "spatial_resolution": S2_BANDS[band]["gsd"]}]


def s2_item(scene: S2Scene, blob_url: str) -> dict[str, Any]:
    """A STAC item shaped like MPC's sentinel-2-l2a items (tests/fixtures/mpc; hrefs absolute,
    on the sandbox's Azurite): `proj:epsg`, projection v1.0.0; `raster:bands` only on the
    scenes with `has_raster_bands` (real MPC S2 items carry none)."""
    bbox, geometry = _footprint()
    scl = scene.arrays["SCL"]
    valid = scl != SCL_NODATA
    cloud = np.isin(scl, [SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS])
    size = S2_SIZE_10M * 10.0
    assets: dict[str, Any] = {}
    for band, meta in S2_BANDS.items():
        shape = list(scene.arrays[band].shape)
        assets[band] = {
            "href": f"{blob_url}/{S2_ACCOUNT}/{S2_CONTAINER}/{scene.blob_path(band)}",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "proj:bbox": [S2_X0, S2_Y0 - size, S2_X0 + size, S2_Y0],
            "proj:shape": shape,
            "proj:transform": s2_transform(band),
            **({"raster:bands": _raster_bands(band)} if scene.has_raster_bands else {}),
            **meta,
        }
    stamp = scene.datetime.strftime("%Y%m%dT%H%M%S")
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
            *(
                ["https://stac-extensions.github.io/raster/v1.1.0/schema.json"]
                if scene.has_raster_bands
                else []
            ),
        ],
        "id": scene.id,
        "collection": S2_COLLECTION,
        "bbox": bbox,
        "geometry": geometry,
        "links": [],
        "properties": {
            "datetime": scene.datetime.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "platform": scene.platform,
            "constellation": "Sentinel 2",
            "instruments": ["msi"],
            "proj:epsg": S2_EPSG,
            "eo:cloud_cover": _percent(cloud, valid),
            "s2:mgrs_tile": S2_MGRS,
            "s2:product_type": "S2MSI2A",
            "s2:processing_baseline": "02.12",
            "s2:product_uri": f"{scene.id}.SAFE",
            "s2:granule_id": f"L2A_T{S2_MGRS}_{stamp}",
            "s2:nodata_pixel_percentage": round(100.0 * float((~valid).mean()), 6),
            "s2:high_proba_clouds_percentage": _percent(scl == SCL_CLOUD_HIGH, valid),
            "s2:medium_proba_clouds_percentage": _percent(scl == SCL_CLOUD_MEDIUM, valid),
            "s2:thin_cirrus_percentage": _percent(scl == SCL_CIRRUS, valid),
            "s2:cloud_shadow_percentage": _percent(scl == SCL_SHADOW, valid),
            "s2:vegetation_percentage": _percent(scl == SCL_VEGETATION, valid),
            "s2:not_vegetated_percentage": _percent(scl == SCL_NOT_VEGETATED, valid),
            "s2:water_percentage": _percent(scl == SCL_WATER, valid),
            "sat:orbit_state": "descending",
            "sat:relative_orbit": 57,
        },
        "assets": assets,
    }


def s2_collection() -> dict[str, Any]:
    """STAC collection like MPC's `sentinel-2-l2a` (global extent, westeurope storage)."""
    return {
        "type": "Collection",
        "id": S2_COLLECTION,
        "stac_version": "1.0.0",
        "title": "Sentinel-2 Level-2A (pcflow sandbox demo)",
        "description": (
            "SYNTHETIC stand-in for MPC's Sentinel-2 Level-2A collection, made by "
            "pcflow.sandbox.demo_data: six small COG scenes near Hilo, Hawaii (June-August 2020)."
        ),
        "links": [],
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
            "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "license": "proprietary",
        "keywords": [
            "Sentinel",
            "Copernicus",
            "ESA",
            "Satellite",
            "Global",
            "Imagery",
            "Reflectance",
        ],
        "providers": [{"name": "pcflow sandbox", "roles": ["host", "processor"]}],
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [["2015-06-27T10:25:31Z", None]]},
        },
        "summaries": {
            "platform": ["Sentinel-2A", "Sentinel-2B"],
            "constellation": ["Sentinel 2"],
            "instruments": ["msi"],
            "gsd": [10, 20, 60],
            "eo:bands": [S2_BANDS["B04"]["eo:bands"][0], S2_BANDS["B08"]["eo:bands"][0]],
        },
        # Unlike MPC's sentinel-2-l2a (whose item_assets carry no raster:bands; its real JSON is
        # tests/fixtures/mpc/sentinel-2-l2a.collection.json), the demo declares band types here,
        # as MPC's landsat-c2-l2 does, so the demo's items without raster:bands can be staged.
        "item_assets": {
            band: {
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                **meta,
                "raster:bands": _raster_bands(band),
            }
            for band, meta in S2_BANDS.items()
        },
        "msft:container": S2_CONTAINER,
        "msft:storage_account": S2_ACCOUNT,
        "msft:short_description": "Sentinel-2 L2A surface reflectance (demo)",
        "msft:region": "westeurope",
    }
