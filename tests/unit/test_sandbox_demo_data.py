"""The sandbox's demo data: deterministic, realistic ranges, MPC-like structure."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pcflow.sandbox import demo_data, seed


@pytest.fixture(scope="module")
def daymet() -> xr.Dataset:
    return demo_data.daymet_dataset()


def test_daymet_is_deterministic(daymet):
    again = demo_data.daymet_dataset()
    for var in ("tmin", "tmax", "prcp", "lat", "lon"):
        np.testing.assert_array_equal(daymet[var].values, again[var].values)


def test_daymet_shape_calendar_and_types(daymet):
    assert dict(daymet.sizes) == {"time": 3 * 365, "y": 64, "x": 48}
    times = daymet.indexes["time"]
    assert str(times[0]) == "2018-01-01 12:00:00" and str(times[-1]) == "2020-12-30 12:00:00"
    assert "2020-12-31" not in {t.strftime("%Y-%m-%d") for t in times}  # Daymet drops it
    for var in ("tmin", "tmax", "prcp"):
        assert daymet[var].dims == ("time", "y", "x") and daymet[var].dtype == np.float32
        assert daymet[var].attrs["grid_mapping"] == "lambert_conformal_conic"
        assert {"units", "long_name", "cell_methods"} <= set(daymet[var].attrs)
    assert np.all(np.diff(daymet.x.values) == 1000.0)
    assert np.all(np.diff(daymet.y.values) == -1000.0)


def test_daymet_values_are_plausible(daymet):
    tmin, tmax, prcp = (daymet[v].values for v in ("tmin", "tmax", "prcp"))
    assert np.isfinite(tmin).all() and np.isfinite(prcp).all()
    assert (tmin < tmax).all()
    assert -15 < tmin.min() and tmax.max() < 40
    assert prcp.min() == 0.0 and 0.2 < (prcp == 0).mean() < 0.8 and prcp.max() < 400
    # Seasonal cycle: August warmer than February at sea-level-ish cells.
    month = daymet.time.dt.month
    assert daymet.tmax.where(month == 8).mean() > daymet.tmax.where(month == 2).mean() + 2
    # Windward (east) side wetter than the west.
    assert prcp[:, :, -8:].mean() > 1.5 * prcp[:, :, :8].mean()


def test_daymet_grid_lies_over_the_big_island(daymet):
    import pyproj

    crs = pyproj.CRS.from_cf(daymet["lambert_conformal_conic"].attrs)
    to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(daymet.x.values.mean(), daymet.y.values.mean())
    assert -156.1 < lon < -154.8 and 19.0 < lat < 20.3
    np.testing.assert_allclose(daymet.lon.values.mean(), lon, atol=0.05)
    assert daymet["lambert_conformal_conic"].attrs["standard_parallel"] == [25.0, 60.0]


def test_daymet_zarr_is_v2_consolidated_year_chunked_and_byte_stable(tmp_path):
    def digest(root: Path) -> dict[str, str]:
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    a = demo_data.write_daymet_zarr(tmp_path / "a.zarr")
    b = demo_data.write_daymet_zarr(tmp_path / "b.zarr")
    assert digest(a) == digest(b)
    zmeta = json.loads((a / ".zmetadata").read_text())["metadata"]
    assert zmeta["tmax/.zarray"]["chunks"] == [365, 64, 48]
    assert zmeta["tmax/.zarray"]["zarr_format"] == 2
    assert zmeta["tmax/.zarray"]["fill_value"] == -9999.0
    assert {"tmin/0.0.0", "tmin/2.0.0"} <= set(digest(a))
    reopened = xr.open_zarr(a, consolidated=True)
    np.testing.assert_array_equal(reopened.prcp.values, demo_data.daymet_dataset().prcp.values)


def test_daymet_collection_mirrors_mpc():
    col = demo_data.daymet_collection("https://127.0.0.1:10000")
    abfs = col["assets"]["zarr-abfs"]
    assert abfs["href"] == "abfs://daymet-zarr/daily/hi.zarr"
    assert abfs["roles"] == ["data", "zarr", "abfs"]
    assert abfs["xarray:storage_options"] == {"account_name": "daymeteuwest"}
    assert abfs["xarray:open_kwargs"] == {"consolidated": True}
    assert "account_host" not in json.dumps(col)
    assert col["msft:region"] == "westeurope"
    assert col["cube:variables"]["tmax"]["shape"] == [1095, 64, 48]
    assert col["extent"]["temporal"]["interval"] == [
        ["2018-01-01T12:00:00Z", "2020-12-30T12:00:00Z"]
    ]
    https = col["assets"]["zarr-https"]["href"]
    assert https == "https://127.0.0.1:10000/daymeteuwest/daymet-zarr/daily/hi.zarr"


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
