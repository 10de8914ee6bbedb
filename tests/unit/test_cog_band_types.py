"""Band dtype/nodata for COG staging and the plan, on real MPC item and collection JSON."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from pcflow.estimate import estimate_cog
from pcflow.sandbox import demo_data
from pcflow.staging.band_types import band_types
from pcflow.staging.retry import StagingError

MPC = Path(__file__).parents[1] / "fixtures" / "mpc"


def _load(name: str) -> dict:
    return json.loads((MPC / name).read_text())


S2_ITEMS = [
    _load("sentinel-2-l2a.item.S2A_MSIL2A_20150704T101006.json"),
    _load("sentinel-2-l2a.item.S2B_MSIL2A_20240419T095549.json"),
]
S2_COLLECTION = _load("sentinel-2-l2a.collection.json")
LANDSAT = _load("landsat-c2-l2.item.raster-bands.json")


def test_real_mpc_s2_declares_no_band_types_so_staging_names_asset_and_fix():
    # Real MPC S2 items and collection carry no raster:bands (the fixtures prove it) ...
    assert not any("raster:bands" in a for i in S2_ITEMS for a in i["assets"].values())
    assert not any("raster:bands" in a for a in S2_COLLECTION["item_assets"].values())
    # ... so there is no dtype to trust: one line naming the asset and the config fix.
    with pytest.raises(StagingError) as err:
        band_types("s2", ["B04", "SCL"], S2_ITEMS, S2_COLLECTION["item_assets"])
    msg = str(err.value)
    assert "\n" not in msg and "'B04'" in msg
    assert "datasets.s2.raster_bands.B04" in msg


def test_config_declares_what_mpc_s2_does_not():
    types = band_types(
        "s2",
        ["B04", "SCL"],
        S2_ITEMS,
        S2_COLLECTION["item_assets"],
        {"B04": {"data_type": "uint16", "nodata": 0}, "SCL": {"data_type": "uint8", "nodata": 0}},
    )
    assert (types["B04"].dtype, types["B04"].nodata) == ("uint16", 0)
    assert types["SCL"].dtype == "uint8" and "raster_bands" in types["SCL"].source


def test_item_raster_bands_on_a_real_mpc_item():
    types = band_types("ls", ["red", "qa_pixel"], [LANDSAT])
    rb = LANDSAT["assets"]["red"]["raster:bands"][0]
    assert (types["red"].dtype, types["red"].nodata) == (rb["data_type"], rb["nodata"])
    assert types["red"].source == "item raster:bands"
    assert types["qa_pixel"].dtype == LANDSAT["assets"]["qa_pixel"]["raster:bands"][0]["data_type"]


def test_collection_item_assets_fill_in_for_items_without_raster_bands():
    item_assets = copy.deepcopy(S2_COLLECTION["item_assets"])
    item_assets["B04"]["raster:bands"] = [{"data_type": "uint16", "nodata": 0}]
    types = band_types("s2", ["B04"], S2_ITEMS, item_assets)
    assert types["B04"].dtype == "uint16" and "item_assets" in types["B04"].source


def test_items_that_disagree_are_refused():
    a, b = copy.deepcopy(LANDSAT), copy.deepcopy(LANDSAT)
    b["assets"]["red"]["raster:bands"][0]["data_type"] = "float32"
    with pytest.raises(StagingError, match="different raster:bands types"):
        band_types("ls", ["red"], [a, b])


def test_sandbox_s2_items_have_real_mpc_shape_with_and_without_raster_bands():
    scenes = demo_data.s2_scenes()
    items = [demo_data.s2_item(s, "https://127.0.0.1:1") for s in scenes]
    with_rb = [i for i in items if "raster:bands" in i["assets"]["B04"]]
    assert 0 < len(with_rb) < len(items)  # both kinds are served
    real = S2_ITEMS[0]
    for item in items:
        # Same projection fields and extension versions as MPC serves (proj:epsg, proj v1.0.0).
        assert item["properties"]["proj:epsg"] == 32605 and "proj:code" not in item["properties"]
        assert set(real["stac_extensions"]) <= set(item["stac_extensions"])
        for band in ("B04", "SCL"):
            extra = set(item["assets"][band]) - set(real["assets"][band])
            assert extra <= {"raster:bands"}, extra
    # The sandbox's declared types are what its COGs hold.
    coll = demo_data.s2_collection()
    types = band_types("s2", ["B04", "SCL"], items, coll["item_assets"])
    assert types["B04"].dtype == scenes[0].arrays["B04"].dtype.name
    assert types["SCL"].dtype == scenes[0].arrays["SCL"].dtype.name


def _s2_ds(**over):
    items = [demo_data.s2_item(s, "https://127.0.0.1:1") for s in demo_data.s2_scenes()]
    ds = {
        "name": "s2",
        "collection": "sentinel-2-l2a",
        "kind": "cog",
        "bbox": items[0]["bbox"],
        "datetime": "2020-06-01/2020-08-31",
        "assets": ["B04", "B08", "SCL"],
        "crs": "EPSG:32605",
        "resolution": 10,
        **over,
    }
    return ds, items


def test_plan_bytes_use_each_bands_declared_dtype():
    ds, items = _s2_ds()
    stripped = copy.deepcopy(items)
    for i in stripped:
        for a in i["assets"].values():
            a.pop("raster:bands", None)
    est = estimate_cog(ds, stripped, {}, demo_data.s2_collection()["item_assets"])
    nx, ny, dates = est["window"]["x"], est["window"]["y"], est["window"]["dates"]
    # Independent: B04 and B08 are uint16 (2 bytes), SCL uint8 (1 byte), as the COGs hold.
    assert est["bytes_write"] == nx * ny * dates * (2 + 2 + 1)
    assert est["dtypes"] == {"B04": "uint16", "B08": "uint16", "SCL": "uint8"}
    read_scl = sum(math.prod(i["assets"]["SCL"]["proj:shape"]) for i in items)
    assert (
        est["bytes_read"]
        <= sum(math.prod(i["assets"][b]["proj:shape"]) * 2 for i in items for b in ("B04", "B08"))
        + read_scl
    )


def test_plan_says_unknown_when_no_band_types_are_declared():
    ds, _ = _s2_ds(bbox=S2_ITEMS[0]["bbox"])
    est = estimate_cog(ds, S2_ITEMS, {}, S2_COLLECTION["item_assets"])
    assert "raster_bands" in est["note"]
