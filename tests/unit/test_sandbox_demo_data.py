"""The sandbox's demo data: deterministic, realistic ranges, MPC-like structure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pcflow.sandbox import demo_data, seed

FIXTURE = (
    Path(__file__).resolve().parents[1] / "fixtures/mpc/daymet-daily-hi.collection-template.json"
)


@pytest.fixture(scope="module")
def daymet() -> xr.Dataset:
    return demo_data.daymet_dataset()


@pytest.fixture(scope="module")
def mpc() -> dict:
    return json.loads(FIXTURE.read_text())


def test_daymet_is_deterministic(daymet):
    again = demo_data.daymet_dataset()
    for var in ("tmin", "tmax", "prcp"):  # one year chunk each: 242 MB decoded
        a = daymet[var].isel(time=slice(365, 370)).values
        b = again[var].isel(time=slice(365, 370)).values
        np.testing.assert_array_equal(a, b)
    for var in ("lat", "lon"):
        np.testing.assert_array_equal(daymet[var].values, again[var].values)


def test_daymet_grid_and_chunks_are_mpcs(daymet, mpc):
    """Grid, shapes and chunks as MPC's collection JSON says (checked against the fixture)."""
    dims = mpc["cube:dimensions"]
    x, y = daymet.x.values, daymet.y.values
    assert [x.min(), x.max()] == dims["x"]["extent"] and [y.min(), y.max()] == dims["y"]["extent"]
    assert np.all(np.diff(x) == dims["x"]["step"]) and np.all(np.diff(y) == dims["y"]["step"])
    real = mpc["cube:variables"]["tmax"]
    assert list(daymet.tmax.shape[1:]) == real["shape"][1:] == [584, 284]
    assert list(daymet.tmax.data.chunksize) == real["chunks"] == [365, 584, 284]
    assert daymet.tmax.dims == tuple(real["dimensions"])
    assert daymet.tmax.dtype == np.float32 and 365 * 584 * 284 * 4 / 1e6 > 242  # MB per chunk
    # The CRS from the store's CF attrs is the PROJJSON CRS MPC publishes.
    import pyproj

    published = pyproj.CRS.from_json_dict(dims["x"]["reference_system"])
    assert pyproj.CRS.from_cf(daymet["lambert_conformal_conic"].attrs).equals(published)
    grid_mapping = mpc["cube:variables"]["lambert_conformal_conic"]["attrs"]
    assert daymet["lambert_conformal_conic"].attrs == grid_mapping


def test_daymet_calendar_and_attrs(daymet):
    assert dict(daymet.sizes) == {"time": 2 * 365, "y": 584, "x": 284}
    times = daymet.indexes["time"]
    assert str(times[0]) == "2019-01-01 12:00:00" and str(times[-1]) == "2020-12-30 12:00:00"
    assert "2020-12-31" not in {t.strftime("%Y-%m-%d") for t in times}  # Daymet drops it
    for var in ("tmin", "tmax", "prcp"):
        assert daymet[var].attrs["grid_mapping"] == "lambert_conformal_conic"
        assert {"units", "long_name", "cell_methods"} <= set(daymet[var].attrs)


def test_daymet_lat_lon_come_from_the_projection(daymet):
    """2-D lat/lon equal an independent inverse projection of the x/y cell centres."""
    import pyproj

    crs = pyproj.CRS.from_proj4(
        "+proj=lcc +lat_1=25 +lat_2=60 +lat_0=42.5 +lon_0=-100 +x_0=0 +y_0=0 +ellps=WGS84"
    )
    to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    j, i = np.array([0, 100, 583, 300]), np.array([0, 50, 283, 200])
    lon, lat = to_lonlat.transform(daymet.x.values[i], daymet.y.values[j])
    np.testing.assert_allclose(daymet.lon.values[j, i], lon, atol=1e-4)
    np.testing.assert_allclose(daymet.lat.values[j, i], lat, atol=1e-4)
    # The real grid spans Hawaii: MPC's published bbox holds every cell centre.
    w, s, e, n = demo_data.DAYMET_BBOX
    assert w <= daymet.lon.min() and daymet.lon.max() <= e
    assert s <= daymet.lat.min() and daymet.lat.max() <= n


def test_daymet_ocean_is_nan_and_land_is_the_islands(daymet):
    year = daymet.tmax.isel(time=slice(0, 365)).values
    land = np.isfinite(year[0])
    assert (np.isfinite(year) == land).all()  # the same cells every day
    assert 0.05 < land.mean() < 0.2  # Hawaii's land is ~10 % of its Daymet grid
    lon, lat = daymet.lon.values, daymet.lat.values

    def cell(x, y):
        return np.unravel_index(np.argmin((lon - x) ** 2 + (lat - y) ** 2), lon.shape)

    assert land[cell(-155.5, 19.6)] and land[cell(-157.95, 21.45)]  # Mauna Loa, Oahu
    assert not land[cell(-156.5, 19.6)] and not land[cell(-158.5, 20.5)]  # open ocean


def test_daymet_values_are_plausible(daymet):
    tmin, tmax, prcp = (daymet[v].isel(time=slice(0, 365)).values for v in ("tmin", "tmax", "prcp"))
    land = np.isfinite(tmax)
    assert (tmin[land] < tmax[land]).all()
    assert -20 < np.nanmin(tmin) and np.nanmax(tmax) < 40
    assert np.nanmin(prcp) == 0.0 and 0.2 < (prcp[land] == 0).mean() < 0.8
    month = daymet.time.dt.month.values[:365]
    aug, feb = np.nanmean(tmax[month == 8]), np.nanmean(tmax[month == 2])
    assert aug > feb + 2  # a seasonal cycle
    # High cells are colder (lapse rate): Mauna Kea's summit vs Hilo.
    lon, lat = daymet.lon.values, daymet.lat.values
    summit = np.unravel_index(np.argmin((lon + 155.47) ** 2 + (lat - 19.82) ** 2), lon.shape)
    hilo = np.unravel_index(np.argmin((lon + 155.09) ** 2 + (lat - 19.72) ** 2), lon.shape)
    assert tmax[:, summit[0], summit[1]].mean() < tmax[:, hilo[0], hilo[1]].mean() - 10


def test_daymet_zarr_is_v2_consolidated_year_chunked_with_fill_value(tmp_path, daymet):
    root = demo_data.write_daymet_zarr(tmp_path / "a.zarr")
    zmeta = json.loads((root / ".zmetadata").read_text())["metadata"]
    assert zmeta["tmax/.zarray"]["chunks"] == [365, 584, 284]
    assert zmeta["tmax/.zarray"]["zarr_format"] == 2
    assert zmeta["tmax/.zarray"]["fill_value"] == -9999.0
    assert {"tmin/0.0.0", "tmin/1.0.0"} <= {p.relative_to(root).as_posix() for p in root.rglob("*")}
    raw = xr.open_zarr(root, consolidated=True, mask_and_scale=False)
    ocean = ~np.isfinite(daymet.tmax.isel(time=0).values)
    assert (raw.tmax.isel(time=0).values[ocean] == -9999.0).all()  # stored as the fill value
    reopened = xr.open_zarr(root, consolidated=True)
    np.testing.assert_array_equal(
        reopened.prcp.isel(time=slice(360, 370)).values,
        daymet.prcp.isel(time=slice(360, 370)).values,
    )


def test_daymet_collection_is_mpcs_field_for_field(mpc):
    col = demo_data.daymet_collection("https://127.0.0.1:10000")
    assert set(col) == set(mpc)  # every top-level field MPC has, nothing else
    for key in (
        "stac_extensions",
        "msft:group_id",
        "msft:container",
        "msft:storage_account",
        "msft:region",
        "storage:schemes",
        "links",
        "license",
        "sci:doi",
    ):
        assert col[key] == mpc[key], key  # fmt: skip
    for dim in ("x", "y"):
        assert col["cube:dimensions"][dim] == mpc["cube:dimensions"][dim]
    for name, var in col["cube:variables"].items():
        real = mpc["cube:variables"][name]
        assert {k: v for k, v in var.items() if k != "shape"} == {
            k: v for k, v in real.items() if k != "shape"
        }, name
    assert set(mpc["cube:variables"]) - set(col["cube:variables"]) == {
        "vp", "swe", "dayl", "srad", "time_bnds"
    }  # fmt: skip
    assert col["cube:variables"]["tmax"]["shape"] == [730, 584, 284]
    abfs = col["assets"]["zarr-abfs"]
    assert abfs == mpc["assets"]["zarr-abfs"]  # the same href, account and open kwargs
    assert "account_host" not in json.dumps(col)
    assert col["extent"]["temporal"]["interval"] == [
        ["2019-01-01T12:00:00Z", "2020-12-30T12:00:00Z"]
    ]
    assert col["extent"]["spatial"] == mpc["extent"]["spatial"]
    https = col["assets"]["zarr-https"]["href"]
    assert https == "https://127.0.0.1:10000/daymeteuwest/daymet-zarr/daily/hi.zarr"
    assert "windows.net" not in json.dumps(col["assets"])


def test_s2_scenes_are_deterministic_and_cloud_cover_matches_scl():
    scenes = demo_data.s2_scenes()
    again = demo_data.s2_scenes()
    assert [s.id for s in scenes] == [s.id for s in again]
    assert len({s.id for s in scenes}) == len(scenes) == 6
    covers = []
    for s, t in zip(scenes, again, strict=True):
        for band in ("B04", "B08", "SCL"):
            np.testing.assert_array_equal(s.arrays[band], t.arrays[band])
        assert s.arrays["B04"].shape == (128, 128) and s.arrays["B04"].dtype == np.uint16
        assert s.arrays["SCL"].shape == (64, 64)
        scl = s.arrays["SCL"]
        valid = scl != 0
        expected = 100 * np.isin(scl[valid], [8, 9, 10]).mean()
        item = demo_data.s2_item(s, "https://127.0.0.1:10000")
        assert item["properties"]["eo:cloud_cover"] == pytest.approx(expected, abs=1e-5)
        covers.append(expected)
        # nodata pixels are 0 in the reflectance bands exactly where SCL is 0
        np.testing.assert_array_equal(s.arrays["B04"] == 0, np.kron(scl == 0, np.ones((2, 2))))
    assert min(covers) < 20 and max(covers) > 60  # useful for cloud-cover filters
    all_classes = set(np.unique(np.concatenate([s.arrays["SCL"].ravel() for s in scenes])))
    assert {0, 3, 4, 6, 8, 9, 10} <= all_classes
    months = {s.datetime.month for s in scenes}
    assert months == {6, 7, 8}


def test_s2_vegetation_has_high_ndvi_water_low():
    s = demo_data.s2_scenes()[0]
    scl10 = np.kron(s.arrays["SCL"], np.ones((2, 2), dtype="uint8"))
    red = s.arrays["B04"].astype(float)
    nir = s.arrays["B08"].astype(float)
    ndvi = (nir - red) / np.where(nir + red == 0, 1, nir + red)
    assert ndvi[scl10 == 4].mean() > 0.6
    assert ndvi[scl10 == 6].mean() < 0


def test_s2_item_is_mpc_like():
    scene = demo_data.s2_scenes()[1]
    item = demo_data.s2_item(scene, "https://127.0.0.1:10000")
    props = item["properties"]
    assert props["proj:epsg"] == 32605 and props["s2:mgrs_tile"] == "05QKB"
    assert props["platform"] in ("Sentinel-2A", "Sentinel-2B")
    b04 = item["assets"]["B04"]
    assert b04["proj:shape"] == [128, 128] and b04["proj:transform"][0] == 10.0
    assert item["assets"]["SCL"]["proj:transform"][0] == 20.0
    assert b04["eo:bands"][0]["common_name"] == "red"
    assert b04["href"].startswith("https://127.0.0.1:10000/sentinel2l2a01/sentinel2-l2/05/Q/KB/")
    west, south, east, north = item["bbox"]
    assert -155.1 < west < east < -155.0 and 19.7 < south < north < 19.75


def test_cog_round_trip_is_tiled_with_overviews_and_nodata(tmp_path):
    import rasterio

    scene = demo_data.s2_scenes()[0]
    path = demo_data.write_cog(tmp_path / "b04.tif", scene.arrays["B04"], "B04")
    with rasterio.open(path) as src:
        np.testing.assert_array_equal(src.read(1), scene.arrays["B04"])
        assert src.crs.to_epsg() == 32605 and src.nodata == 0
        assert src.profile["tiled"] and src.overviews(1)
        assert list(src.transform)[:6] == demo_data.s2_transform("B04")
    again = demo_data.write_cog(tmp_path / "again.tif", scene.arrays["B04"], "B04")
    assert path.read_bytes() == again.read_bytes()


def test_stac_files_list_collections_before_items(tmp_path):
    files = seed.write_stac_files(tmp_path, azurite_port=12345)
    assert files == seed.stac_files(tmp_path)
    items = json.loads(files[-1].read_text())["features"]
    assert all(
        a["href"].startswith("https://127.0.0.1:12345/")
        for i in items
        for a in i["assets"].values()
    )
    assert [json.loads(f.read_text())["id"] for f in files[:2]] == list(seed.STAC_COLLECTIONS)


def test_generator_hash_tracks_the_generator_source():
    assert seed.generator_hash() == seed.generator_hash()
    assert len(seed.generator_hash()) == 64


@pytest.mark.parametrize("module", ["daymet", "daymet_store", "s2_scenes", "s2_stac", "common"])
def test_generator_hash_changes_with_every_generator_module(module, monkeypatch):
    # The generators live in demo_data's submodules: an edit to any of them must re-seed.
    import importlib

    path = Path(importlib.import_module(f"pcflow.sandbox.demo_data.{module}").__file__)
    before = seed.generator_hash()
    real = Path.read_bytes
    monkeypatch.setattr(
        Path, "read_bytes", lambda self: real(self) + (b"# edit" if self == path else b"")
    )
    assert seed.generator_hash() != before
