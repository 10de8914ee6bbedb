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

The package: `daymet` (the dataset), `daymet_store` (its Zarr store and catalog entry),
`s2_scenes` (scene arrays and COGs), `s2_stac` (items and collection), `common` (the seed).
"""

from __future__ import annotations

from pcflow.sandbox.demo_data.common import SEED
from pcflow.sandbox.demo_data.daymet import (
    COORD_ATTRS,
    DAYMET_BBOX,
    DAYMET_CHUNKS,
    DAYMET_NX,
    DAYMET_NY,
    DAYMET_X0,
    DAYMET_Y0,
    DAYMET_YEARS,
    ISLANDS,
    LCC_ATTRS,
    PEAKS,
    VARIABLE_ATTRS,
    YEARDAY_LONG_NAME,
    daymet_crs,
    daymet_dataset,
    daymet_land,
    daymet_lonlat,
    daymet_time,
    daymet_xy,
    daymet_year,
)
from pcflow.sandbox.demo_data.daymet_store import (
    DAYMET_ACCOUNT,
    DAYMET_COLLECTION,
    DAYMET_CONTAINER,
    DAYMET_FILL,
    DAYMET_PATH,
    DAYMET_ZARR_FORMAT,
    MPC_DAYMET_TEMPLATE,
    MPC_ONLY_VARIABLES,
    daymet_collection,
    daymet_encoding,
    mpc_daymet_template,
    write_daymet_zarr,
)
from pcflow.sandbox.demo_data.s2_scenes import (
    S2_ACCOUNT,
    S2_ACQUISITIONS,
    S2_COLLECTION,
    S2_CONTAINER,
    S2_EPSG,
    S2_MGRS,
    S2_SIZE_10M,
    S2_SIZE_20M,
    S2_X0,
    S2_Y0,
    SCL_CIRRUS,
    SCL_CLOUD_HIGH,
    SCL_CLOUD_MEDIUM,
    SCL_NODATA,
    SCL_NOT_VEGETATED,
    SCL_SHADOW,
    SCL_VEGETATION,
    SCL_WATER,
    S2Scene,
    s2_scenes,
    s2_transform,
    write_cog,
)
from pcflow.sandbox.demo_data.s2_stac import S2_BANDS, s2_collection, s2_item

__all__ = [
    "COORD_ATTRS",
    "DAYMET_ACCOUNT",
    "DAYMET_BBOX",
    "DAYMET_CHUNKS",
    "DAYMET_COLLECTION",
    "DAYMET_CONTAINER",
    "DAYMET_FILL",
    "DAYMET_NX",
    "DAYMET_NY",
    "DAYMET_PATH",
    "DAYMET_X0",
    "DAYMET_Y0",
    "DAYMET_YEARS",
    "DAYMET_ZARR_FORMAT",
    "ISLANDS",
    "LCC_ATTRS",
    "MPC_DAYMET_TEMPLATE",
    "MPC_ONLY_VARIABLES",
    "PEAKS",
    "S2Scene",
    "S2_ACCOUNT",
    "S2_ACQUISITIONS",
    "S2_BANDS",
    "S2_COLLECTION",
    "S2_CONTAINER",
    "S2_EPSG",
    "S2_MGRS",
    "S2_SIZE_10M",
    "S2_SIZE_20M",
    "S2_X0",
    "S2_Y0",
    "SCL_CIRRUS",
    "SCL_CLOUD_HIGH",
    "SCL_CLOUD_MEDIUM",
    "SCL_NODATA",
    "SCL_NOT_VEGETATED",
    "SCL_SHADOW",
    "SCL_VEGETATION",
    "SCL_WATER",
    "SEED",
    "VARIABLE_ATTRS",
    "YEARDAY_LONG_NAME",
    "daymet_collection",
    "daymet_crs",
    "daymet_dataset",
    "daymet_encoding",
    "daymet_land",
    "daymet_lonlat",
    "daymet_time",
    "daymet_xy",
    "daymet_year",
    "mpc_daymet_template",
    "s2_collection",
    "s2_item",
    "s2_scenes",
    "s2_transform",
    "write_cog",
    "write_daymet_zarr",
]
