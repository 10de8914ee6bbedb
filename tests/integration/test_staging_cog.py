"""Staging Sentinel-2-like COG items into a cloud-masked (time, y, x) Zarr cube."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from pcflow import staging
from pcflow.estimate import estimate_cog
from pcflow.sandbox import demo_data
from pcflow.staging.cog_source import SCL_MASKED
from pcflow.staging.retry import StagingError
from tests.integration.staging_helpers import PROVENANCE, items_doc, log, store_objects, target

pytestmark = pytest.mark.integration

S2_CFG = {
    "collection": "sentinel-2-l2a",
    "kind": "cog",
    "signing": "planetary-computer",
    "bbox": [-155.084, 19.716, -155.076, 19.724],  # inside the demo scenes' footprint
    "datetime": "2020-06-01/2020-08-31",
    "assets": ["B04", "B08", "SCL"],
    "crs": "EPSG:32605",
    "resolution": 10,
}


def test_cog_items_become_a_masked_cube(sandbox):
    doc = items_doc(S2_CFG, "s2-hilo")
    tgt = target()
    manifest = staging.stage(doc, "s2-hilo", S2_CFG, tgt, {}, PROVENANCE, log())
    ds = staging.open_staged(manifest, tgt)
    scenes = sorted(demo_data.s2_scenes(), key=lambda s: s.datetime)
    assert ds.sizes["time"] == len(scenes)
    assert [str(t)[:10] for t in ds.time.values] == [
        s.datetime.strftime("%Y-%m-%d") for s in scenes
    ]
    # Independent reference: the generator's pixels at the staged pixel centres.
    cols = ((ds.x.values - demo_data.S2_X0 - 5) / 10).astype(int)
    rows = ((demo_data.S2_Y0 - ds.y.values - 5) / 10).astype(int)
    assert cols.min() >= 0 and rows.min() >= 0 and ds.sizes["x"] > 20 and ds.sizes["y"] > 20
    masked_any = 0
    for t, scene in enumerate(scenes):
        scl = scene.arrays["SCL"][np.ix_(rows // 2, cols // 2)]
        for band in ("B04", "B08"):
            raw = scene.arrays[band][np.ix_(rows, cols)].astype("float64")
            bad = np.isin(scl, SCL_MASKED) | (raw == 0)
            want = np.where(bad, np.nan, raw)
            np.testing.assert_array_equal(ds[band].isel(time=t).values, want)
            masked_any += int(bad.sum())
        np.testing.assert_array_equal(
            np.nan_to_num(ds["SCL"].isel(time=t).values, nan=0).astype("uint8"), scl
        )
    assert masked_any > 0  # the demo has clouds: the mask did something
    assert manifest["variables"]["B04"]["chunks"][0] == len(scenes)  # time-contiguous
    again = staging.stage(doc, "s2-hilo", S2_CFG, tgt, {}, PROVENANCE, log())
    assert again["run"].get("objects_written", 0) == 0
    assert again["checksum"] == manifest["checksum"]


def _without_raster_bands(doc):
    """items.json as MPC serves S2 today: no raster:bands anywhere (tests/fixtures/mpc)."""
    doc = copy.deepcopy(doc)
    for item in doc["items"]:
        for asset in item["assets"].values():
            asset.pop("raster:bands", None)
    return doc


def test_items_without_raster_bands_keep_dtype_nodata_and_mask(sandbox):
    # Before: such items loaded as float32 with no nodata, the SCL mask did nothing, no
    # _FillValue was written and the cube was twice the planned size.
    doc = _without_raster_bands(items_doc(S2_CFG, "s2-bare"))
    assert doc["collection_item_assets"]["B04"]["raster:bands"][0]["data_type"] == "uint16"
    tgt = target()
    manifest = staging.stage(doc, "s2-bare", S2_CFG, tgt, {}, PROVENANCE, log())
    ds = staging.open_staged(manifest, tgt)
    scenes = sorted(demo_data.s2_scenes(), key=lambda s: s.datetime)
    for band, dtype in (("B04", "uint16"), ("B08", "uint16"), ("SCL", "uint8")):
        assert np.dtype(manifest["variables"][band]["dtype"]) == np.dtype(dtype)
        assert ds[band].encoding["_FillValue"] == 0 and ds[band].encoding["dtype"] == dtype
    # The mask did its work: masked pixels read back as NaN, exactly where SCL says so.
    cols = ((ds.x.values - demo_data.S2_X0 - 5) / 10).astype(int)
    rows = ((demo_data.S2_Y0 - ds.y.values - 5) / 10).astype(int)
    scl = scenes[0].arrays["SCL"][np.ix_(rows // 2, cols // 2)]
    raw = scenes[0].arrays["B04"][np.ix_(rows, cols)]
    want = np.where(np.isin(scl, SCL_MASKED) | (raw == 0), np.nan, raw.astype("float64"))
    np.testing.assert_array_equal(ds["B04"].isel(time=0).values, want)
    assert np.isnan(want).any()
    # The plan's byte estimate used the same dtypes: the cube is the planned size.
    est = estimate_cog(
        {**S2_CFG, "name": "s2-bare"}, doc["items"], {}, doc["collection_item_assets"]
    )
    per_cell = sum(np.dtype(t).itemsize for t in est["dtypes"].values())
    staged = sum(np.dtype(manifest["variables"][b]["dtype"]).itemsize for b in est["dtypes"])
    assert staged == per_cell == 5


def test_no_declared_band_type_is_one_line_before_anything_is_written(sandbox):
    doc = _without_raster_bands(items_doc(S2_CFG, "s2-bare"))
    doc["collection_item_assets"] = None  # like MPC's own sentinel-2-l2a collection
    tgt = target()
    with pytest.raises(StagingError) as err:
        staging.stage(doc, "s2-bare", S2_CFG, tgt, {}, PROVENANCE, log())
    assert "\n" not in str(err.value) and "datasets.s2-bare.raster_bands.B04" in str(err.value)
    assert store_objects(tgt, "s2-bare", state=True) == {}
    # The fix the message names works.
    fixed = {
        **S2_CFG,
        "raster_bands": {b: {"data_type": "uint16", "nodata": 0} for b in ("B04", "B08")}
        | {"SCL": {"data_type": "uint8", "nodata": 0}},
    }
    manifest = staging.stage(doc, "s2-bare", fixed, tgt, {}, PROVENANCE, log())
    assert np.dtype(manifest["variables"]["B04"]["dtype"]) == np.uint16
