"""Staging Sentinel-2-like COG items into a cloud-masked (time, y, x) Zarr cube."""

from __future__ import annotations

import numpy as np
import pytest

from pcflow import staging
from pcflow.sandbox import demo_data
from pcflow.staging.cog_source import SCL_MASKED
from tests.integration.staging_helpers import PROVENANCE, items_doc, log, target

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
