"""Deterministic demo data shaped like two MPC collections (NOT real data).

* `daymet-daily-hi`: a small Daymet-Hawaii-like Zarr v2 store (consolidated, like MPC's):
  tmin/tmax/prcp float32 (time, y, x) on Daymet's Lambert conformal grid at 1 km, 64 x 48
  cells over the Big Island, 2018-01-01..2020-12-30 with Daymet's 365-day years (Dec 31
  dropped in leap years), one-year time chunks, CF attributes, 2-D lat/lon.
* `sentinel-2-l2a`: six Sentinel-2-L2A-like items near Hilo (UTM 5N, MGRS 05QKB) with COG
  assets B04/B08 (10 m, 128 x 128) and SCL (20 m, 64 x 64), June-August 2020.

Everything comes from fixed seeds, so tests can recompute the expected arrays with
`daymet_dataset()` and `s2_scenes()` independently of what the sandbox uploaded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

SEED = 20200605

# -- Daymet-like Zarr ---------------------------------------------------------------------------

DAYMET_ACCOUNT = "daymeteuwest"
DAYMET_CONTAINER = "daymet-zarr"
DAYMET_PATH = "daily/hi.zarr"
DAYMET_COLLECTION = "daymet-daily-hi"
DAYMET_YEARS = (2018, 2019, 2020)
DAYMET_NY, DAYMET_NX = 64, 48
# Cell centres on MPC's Daymet Hawaii grid (x from -5802250 step 1000; y from -39000 step
# -1000), picked so the 64 x 48 km window sits over the Big Island's interior (all land).
DAYMET_X0 = -5597250.0
DAYMET_Y0 = -532000.0
DAYMET_ZARR_FORMAT = 2  # MPC's Daymet stores are Zarr v2 with consolidated metadata
# MPC's collection extent for Hawaii (the real grid); the demo grid is a small part of it.
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


def daymet_dataset() -> xr.Dataset:
    """The demo Daymet dataset in memory (exactly what the sandbox stores)."""
    import pyproj

    rng = np.random.default_rng(SEED)
    time = daymet_time()
    x, y = daymet_xy()
    xx, yy = np.meshgrid(x, y)
    to_lonlat = pyproj.Transformer.from_crs(daymet_crs(), "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(xx, yy)

    nt = time.size
    doy = np.asarray(time.day_of_year, dtype="float64")
    # A volcano-like elevation field (m): summit inside the window, lower towards the edges.
    cx, cy = x[DAYMET_NX // 3], y[DAYMET_NY // 2]
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (18_000.0**2)
    elevation = 300.0 + 3200.0 * np.exp(-r2)
    # Windward (east) side is wetter: 0 on the west edge, 1 on the east edge.
    windward = (xx - x[0]) / (x[-1] - x[0])

    season = np.sin(2 * np.pi * (doy - 120.0) / 365.0)  # warmest around late summer
    weather = rng.normal(0.0, 0.9, nt)  # day-to-day anomaly shared by the whole island
    lapse = -6.5 * elevation / 1000.0
    tmax = (
        27.0
        + 2.5 * season[:, None, None]
        + weather[:, None, None]
        + lapse[None]
        + rng.normal(0.0, 0.4, (nt, DAYMET_NY, DAYMET_NX))
    )
    dtr = 8.0 + 1.0 * season[:, None, None] + rng.normal(0.0, 0.5, (nt, DAYMET_NY, DAYMET_NX))
    tmin = tmax - np.clip(dtr, 2.0, None)

    wet_season = 0.5 * (1.0 + np.cos(2 * np.pi * (doy - 15.0) / 365.0))  # wetter in winter
    p_rain = np.clip(0.25 + 0.35 * windward[None] + 0.2 * wet_season[:, None, None], 0, 0.95)
    rains = rng.random((nt, DAYMET_NY, DAYMET_NX)) < p_rain
    amount = rng.gamma(0.7, 4.0 + 10.0 * windward[None], (nt, DAYMET_NY, DAYMET_NX))
    prcp = np.where(rains, amount, 0.0)

    def data(values: np.ndarray) -> np.ndarray:
        # Daymet-like precision (2 decimals) keeps the store small and compressible.
        return np.round(values, 2).astype("float32")

    dims = ("time", "y", "x")
    grid = {"grid_mapping": "lambert_conformal_conic"}
    ds = xr.Dataset(
        {
            "tmax": (dims, data(tmax), {**VARIABLE_ATTRS["tmax"], **grid}),
            "tmin": (dims, data(tmin), {**VARIABLE_ATTRS["tmin"], **grid}),
            "prcp": (dims, data(np.maximum(prcp, 0.0)), {**VARIABLE_ATTRS["prcp"], **grid}),
            "yearday": (
                ("time",),
                np.asarray(time.day_of_year, dtype="int16"),
                {"long_name": YEARDAY_LONG_NAME},
            ),
            "lambert_conformal_conic": ((), np.int16(-32767), dict(LCC_ATTRS)),
        },
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
            "lat": (("y", "x"), lat, dict(COORD_ATTRS["lat"])),
            "lon": (("y", "x"), lon, dict(COORD_ATTRS["lon"])),
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
    """One-year time chunks, full spatial chunks, Daymet's -9999 fill value."""
    import numcodecs

    compressor = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    enc: dict[str, dict[str, Any]] = {
        name: {
            "chunks": (365, DAYMET_NY, DAYMET_NX),
            "compressors": (compressor,),
            "_FillValue": np.float32(-9999.0),
        }
        for name in VARIABLE_ATTRS
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
    """Write the demo store to a local directory (same bytes every time)."""
    ds = daymet_dataset()
    ds.to_zarr(
        path,
        mode="w",
        zarr_format=DAYMET_ZARR_FORMAT,
        consolidated=True,
        encoding=daymet_encoding(ds),
    )
    return Path(path)


def daymet_collection(blob_url: str) -> dict[str, Any]:
    """STAC collection like MPC's `daymet-daily-hi` (blob_url: https://127.0.0.1:P)."""
    x, y = daymet_xy()
    time = daymet_time()
    nt = time.size
    start = time[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    end = time[-1].strftime("%Y-%m-%dT%H:%M:%SZ")
    projjson = daymet_crs().to_json_dict()
    chunks = {name: [365, DAYMET_NY, DAYMET_NX] for name in VARIABLE_ATTRS}
    cube_variables: dict[str, Any] = {}
    # Built from the constants (not by generating the data) so STAC start-up stays fast.
    for name in ("tmax", "tmin", "prcp"):
        attrs = {**VARIABLE_ATTRS[name], "grid_mapping": "lambert_conformal_conic"}
        cube_variables[name] = {
            "type": "data",
            "unit": attrs["units"],
            "attrs": attrs,
            "shape": [nt, DAYMET_NY, DAYMET_NX],
            "chunks": chunks[name],
            "dimensions": ["time", "y", "x"],
            "description": attrs["long_name"],
        }
    for name, attrs in COORD_ATTRS.items():
        cube_variables[name] = {
            "type": "auxiliary",
            "unit": attrs["units"],
            "attrs": dict(attrs),
            "shape": [DAYMET_NY, DAYMET_NX],
            "chunks": [DAYMET_NY, DAYMET_NX],
            "dimensions": ["y", "x"],
            "description": attrs["long_name"],
        }
    cube_variables["yearday"] = {
        "type": "data",
        "attrs": {"long_name": YEARDAY_LONG_NAME},
        "shape": [nt],
        "chunks": [365],
        "dimensions": ["time"],
        "description": YEARDAY_LONG_NAME,
    }
    cube_variables["lambert_conformal_conic"] = {
        "type": "data",
        "attrs": dict(LCC_ATTRS),
        "shape": [],
        "dimensions": [],
    }
    zarr_desc = "the daily Hawaii Daymet-like demo Zarr Group on the sandbox's Azure Blob Storage"
    return {
        "type": "Collection",
        "id": DAYMET_COLLECTION,
        "stac_version": "1.0.0",
        "title": "Daymet Daily Hawaii (pcflow sandbox demo)",
        "description": (
            "SYNTHETIC stand-in for MPC's Daymet daily Hawaii collection, made by "
            "pcflow.sandbox.demo_data: same structure (Zarr v2, consolidated, Lambert conformal "
            "grid, one-year chunks), small grid, seeded values."
        ),
        "links": [],
        "stac_extensions": [
            "https://stac-extensions.github.io/datacube/v2.0.0/schema.json",
            "https://stac-extensions.github.io/storage/v2.0.0/schema.json",
        ],
        "license": "proprietary",
        "keywords": ["Daymet", "Hawaii", "Temperature", "Precipitation", "Weather"],
        "providers": [{"name": "pcflow sandbox", "roles": ["host", "processor"], "url": blob_url}],
        "extent": {
            "spatial": {"bbox": [DAYMET_BBOX]},
            "temporal": {"interval": [[start, end]]},
        },
        "msft:group_id": "daymet",
        "msft:container": DAYMET_CONTAINER,
        "msft:storage_account": DAYMET_ACCOUNT,
        "msft:short_description": "Daily surface weather data on a 1-km grid for Hawaii (demo)",
        "msft:region": "westeurope",
        "cube:dimensions": {
            "time": {
                "type": "temporal",
                "extent": [start, end],
                "description": "24-hour day based on local time",
            },
            "x": {
                "type": "spatial",
                "axis": "x",
                "extent": [float(x[0]), float(x[-1])],
                "step": 1000.0,
                "description": "x coordinate of projection",
                "reference_system": projjson,
            },
            "y": {
                "type": "spatial",
                "axis": "y",
                "extent": [float(y[-1]), float(y[0])],
                "step": -1000.0,
                "description": "y coordinate of projection",
                "reference_system": projjson,
            },
        },
        "cube:variables": cube_variables,
        "assets": {
            "zarr-abfs": {
                "href": f"abfs://{DAYMET_CONTAINER}/{DAYMET_PATH}",
                "type": "application/vnd+zarr",
                "title": "Daily Hawaii Daymet Azure Blob File System Zarr root",
                "description": f"Azure Blob File System of {zarr_desc} for use with adlfs.",
                "xarray:open_kwargs": {"consolidated": True},
                "xarray:storage_options": {"account_name": DAYMET_ACCOUNT},
                "roles": ["data", "zarr", "abfs"],
            },
            "zarr-https": {
                "href": f"{blob_url}/{DAYMET_ACCOUNT}/{DAYMET_CONTAINER}/{DAYMET_PATH}",
                "type": "application/vnd+zarr",
                "title": "Daily Hawaii Daymet HTTPS Zarr root",
                "description": f"HTTPS URI of {zarr_desc}.",
                "xarray:open_kwargs": {"consolidated": True},
                "roles": ["data", "zarr", "https"],
            },
        },
        "storage:schemes": {
            "azure": {
                "type": "ms-azure",
                "platform": "https://{account}.blob.core.windows.net",
                "account": DAYMET_ACCOUNT,
                "container": DAYMET_CONTAINER,
                "region": "westeurope",
            }
        },
    }


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
