"""Talking to a real STAC API (rustac): items kept as served, retries on page 2, guards.

The sandbox's rustac answers through HTTPFaultProxy (429/503/hangs injected per page); one
test serves the real MPC item and collection JSON of tests/fixtures/mpc from its own rustac.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pystac_client
import pytest

from pcflow.discover import DiscoveryError, discover
from pcflow.sandbox.services import http_ready, rustac_bin
from pcflow.testing.httpfaultproxy import HTTPFaultProxy

pytestmark = pytest.mark.integration

MPC = Path(__file__).parents[1] / "fixtures" / "mpc"
FAST = {"backoff_s": 0.1, "timeout_s": 10}  # quick retries; Retry-After (1 s) still honoured


@pytest.fixture(scope="module")
def api(sandbox):
    return sandbox.env()["PCFLOW_STAC_API"]


def s2_cfg(**over):
    cfg = {
        "collection": "sentinel-2-l2a",
        "kind": "cog",
        "bbox": [-155.2, 19.6, -155.0, 19.8],
        "datetime": "2020-01-01/2020-12-31",
        "assets": ["B04", "B08", "SCL"],
        "crs": "EPSG:32605",
        "resolution": 10,
    }
    return {**cfg, **over}


def _reference_ids(api):
    """Independent reference: every matching item id, read in one page with plain pystac-client."""
    client = pystac_client.Client.open(api)
    search = client.search(collections=["sentinel-2-l2a"], limit=100)
    return sorted(i["id"] for i in search.items_as_dicts())


def test_429_then_503_on_page_two_is_retried_and_every_item_arrives(api):
    # Before: no retry on 429/5xx for POSTed pages (urllib3 retries neither POST nor statuses
    # by default) and no page size; the same faults with pystac-client's defaults raise.
    expected = _reference_ids(api)
    assert len(expected) > 2  # page size 2 makes a page 2 and a page 3
    with HTTPFaultProxy(api, faults={2: [429, 503]}) as proxy:
        doc = discover("s2", s2_cfg(), proxy.url, {**FAST, "page_size": 2})
    assert sorted(doc["item_ids"]) == expected
    page2 = [status for method, _, page, status in proxy.log if page == 2]
    assert page2 == [429, 503, 200]
    assert all(m == "POST" for m, path, _, _ in proxy.log if path.startswith("/search"))


def test_the_same_faults_break_pystac_client_defaults(api):
    # What discover did before (Client.open with default StacApiIO): page 2's 429 ends the run.
    with HTTPFaultProxy(api, faults={2: [429, 503]}) as proxy:
        client = pystac_client.Client.open(proxy.url)
        search = client.search(collections=["sentinel-2-l2a"], limit=2)
        with pytest.raises(pystac_client.exceptions.APIError):
            list(search.items_as_dicts())


def test_retries_exhausted_is_one_line_naming_the_fix(api):
    with HTTPFaultProxy(api, faults={2: [503] * 20}) as proxy:
        with pytest.raises(DiscoveryError) as err:
            discover("s2", s2_cfg(), proxy.url, {**FAST, "page_size": 2, "retries": 2})
    msg = str(err.value)
    assert "\n" not in msg and "503" in msg and "stac.retries" in msg
    assert [s for _, _, page, s in proxy.log if page == 2] == [503, 503, 503]


def test_max_items_stops_a_runaway_query(api):
    n = len(_reference_ids(api))
    with pytest.raises(DiscoveryError, match=rf"more than stac.max_items={n - 1} items"):
        discover("s2", s2_cfg(), api, {"page_size": 2, "max_items": n - 1})
    doc = discover("s2", s2_cfg(), api, {"page_size": 2, "max_items": n})  # exactly n: fine
    assert len(doc["items"]) == n


def test_a_hung_api_times_out_in_bounded_time(api):
    with HTTPFaultProxy(api, hang_s={1: 30}) as proxy:
        start = time.monotonic()
        with pytest.raises(DiscoveryError, match="unreachable"):
            discover("s2", s2_cfg(), proxy.url, {"timeout_s": 1, "retries": 1, "backoff_s": 0.1})
        assert time.monotonic() - start < 20  # 2 attempts x 1 s + backoff, generous


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mpc_api(tmp_path_factory):
    """rustac serving MPC's own sentinel-2-l2a collection and an item exactly as MPC served it."""
    root = tmp_path_factory.mktemp("mpc-stac")
    collection = json.loads((MPC / "sentinel-2-l2a.collection.json").read_text())
    item = json.loads((MPC / "sentinel-2-l2a.item.S2A_MSIL2A_20150704T101006.json").read_text())
    (root / "collection.json").write_text(json.dumps(collection))
    (root / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    port = _free_port()
    proc = subprocess.Popen(
        [str(rustac_bin()), "serve", "--addr", f"127.0.0.1:{port}",
         str(root / "collection.json"), str(root / "items.json")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not http_ready(f"{url}/collections/sentinel-2-l2a"):
            assert proc.poll() is None and time.monotonic() < deadline, "rustac did not start"
            time.sleep(0.2)
        yield url, item
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_items_json_keeps_a_real_mpc_item_exactly_as_served(mpc_api):
    # Before: items went through pystac (to_dict), which upgrades them on read:
    # proj:epsg -> proj:code, projection v1.0.0 -> v2.0.0, eo v1.0.0 -> v1.1.0, STAC 1.1.0.
    url, item = mpc_api
    served = pystac_client.Client.open(url).search(collections=["sentinel-2-l2a"])
    served = next(iter(served.items_as_dicts()))
    west, south, east, north = item["bbox"]
    cfg = s2_cfg(bbox=[west, south, east, north], datetime="2015-07-01/2015-07-10", assets=["B04"])
    doc = discover("s2-real", cfg, url)
    kept = doc["items"][0]
    assert kept == served  # byte-for-byte the server's JSON
    assert kept["properties"]["proj:epsg"] == item["properties"]["proj:epsg"] == 32635
    assert "proj:code" not in kept["properties"]
    assert kept["stac_extensions"] == item["stac_extensions"]
    assert kept["stac_version"] == item["stac_version"] == "1.0.0"
    for key in ("assets", "geometry", "bbox"):
        assert kept[key] == item[key], key
    # rustac itself re-renders datetimes ('.027000Z' -> '.027Z'); everything else is MPC's.
    props = {k: v for k, v in kept["properties"].items() if k != "datetime"}
    assert props == {k: v for k, v in item["properties"].items() if k != "datetime"}
    assert kept["properties"]["datetime"].rstrip("0Z") == item["properties"]["datetime"].rstrip(
        "0Z"
    )
    # pcflow's own fields sit beside the items, not inside them.
    assert doc["item_ids"] == [item["id"]]
    assert doc["collection_item_assets"]["B04"]["title"] == "Band 4 - Red - 10m"
