"""Discovery against the sandbox's real STAC API (rustac, which lacks query/filter)."""

import json

import pystac_client
import pytest

from pcflow.discover import DiscoveryError, discover, sign_asset_dict, sign_item_dicts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(sandbox):
    return sandbox.env()["PCFLOW_STAC_API"]


@pytest.fixture(scope="module")
def s2_items(api):
    """All S2-like items, read straight from the API (the independent reference)."""
    client = pystac_client.Client.open(api)
    return [i.to_dict() for i in client.search(collections=["sentinel-2-l2a"]).items()]


def daymet_cfg(**over):
    cfg = {
        "collection": "daymet-daily-hi",
        "kind": "zarr",
        "asset": "zarr-abfs",
        "signing": "planetary-computer",
        "bbox": [-156.1, 19.1, -154.8, 20.3],
        "datetime": "2019-01-01/2020-12-31",
        "variables": ["tmin", "tmax", "prcp"],
    }
    return {**cfg, **over}


def s2_cfg(items, **over):
    west = min(i["bbox"][0] for i in items)
    south = min(i["bbox"][1] for i in items)
    east = max(i["bbox"][2] for i in items)
    north = max(i["bbox"][3] for i in items)
    cfg = {
        "collection": "sentinel-2-l2a",
        "kind": "cog",
        "signing": "planetary-computer",
        "bbox": [west, south, east, north],
        "datetime": "2020-01-01/2020-12-31",
        "assets": ["B04", "B08", "SCL"],
        "crs": "EPSG:32605",
        "resolution": 10,
    }
    return {**cfg, **over}


def test_zarr_collection_asset_is_recorded_unsigned(api):
    doc = discover("daymet-hi", daymet_cfg(), api)
    assert doc["kind"] == "zarr" and doc["items"] == []
    asset = doc["asset"]
    assert asset["href"].startswith("abfs://")
    assert asset["xarray:storage_options"] == {"account_name": "daymeteuwest"}
    assert "credential" not in json.dumps(doc)
    # Signing happens just in time and yields a real SAS token from the local endpoint.
    signed = sign_asset_dict(asset, "planetary-computer")
    assert "sig=" in signed["xarray:storage_options"]["credential"]
    assert "credential" not in asset["xarray:storage_options"]  # the record stays unsigned


def test_query_is_applied_client_side_when_api_lacks_it(api, s2_items):
    threshold = sorted(i["properties"]["eo:cloud_cover"] for i in s2_items)[len(s2_items) // 2]
    expected = sorted(i["id"] for i in s2_items if i["properties"]["eo:cloud_cover"] < threshold)
    assert 0 < len(expected) < len(s2_items)  # the filter must actually remove some items
    doc = discover("s2", s2_cfg(s2_items, query={"eo:cloud_cover": {"lt": threshold}}), api)
    assert sorted(doc["item_ids"]) == expected
    assert set(doc["item_updated"]) == set(expected)
    for item in doc["items"]:
        assert "?" not in item["assets"]["B04"]["href"]  # unsigned
    assert len(sign_item_dicts(doc["items"], "planetary-computer")) == len(expected)


def test_cql2_filter_is_applied_client_side(api, s2_items):
    first = sorted(s2_items, key=lambda i: i["properties"]["datetime"])[0]
    cql = {"op": "=", "args": [{"property": "id"}, first["id"]]}
    doc = discover("s2", s2_cfg(s2_items, filter=cql), api)
    assert doc["item_ids"] == [first["id"]]


@pytest.mark.parametrize(
    ("cfg", "words"),
    [
        (
            daymet_cfg(collection="daymet-daily-xx"),
            "datasets.d.collection 'daymet-daily-xx' is not in",
        ),
        (daymet_cfg(asset="zarr-gcs"), "datasets.d.asset 'zarr-gcs' is not an asset"),
        (
            daymet_cfg(bbox=[10.0, 45.0, 11.0, 46.0]),
            "datasets.d.bbox [10.0, 45.0, 11.0, 46.0] lies outside",
        ),
        (
            daymet_cfg(datetime="1990-01-01/1990-12-31"),
            "datasets.d.datetime 1990-01-01/1990-12-31 does not",
        ),
        (daymet_cfg(variables=["tmin", "snow"]), "datasets.d.variables ['snow'] are not in"),
    ],
)
def test_bad_dataset_fails_with_one_clear_line(api, cfg, words):
    with pytest.raises(DiscoveryError) as info:
        discover("d", cfg, api)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_zero_matches_names_the_query(api, s2_items):
    with pytest.raises(DiscoveryError, match=r"no items match .*eo:cloud_cover"):
        discover("s2", s2_cfg(s2_items, query={"eo:cloud_cover": {"lt": -1}}), api)
