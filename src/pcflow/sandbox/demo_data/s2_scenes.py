"""The demo Sentinel-2 L2A acquisitions near Hilo: seeded SCL classes and B04/B08
reflectances per scene, named and laid out as on MPC, and the COGs written from them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcflow.sandbox.demo_data.common import SEED

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
