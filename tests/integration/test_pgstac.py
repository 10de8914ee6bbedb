"""Discovery against the faithful STAC API: stac-fastapi-pgstac on PostgreSQL + PostGIS.

Proves that server-side `query` and `filter` (CQL2-JSON) return exactly the items a plain
Python reading of the loaded JSON says they should, and that pcflow's discovery gives the
same ids against pgstac (server-side filtering) as against `rustac serve` in memory (no
query/filter conformance, so discovery filters client-side with cql2).

Needs PostgreSQL + PostGIS (`bash scripts/install-system-deps.sh`) and the pgstac venv
(`bash scripts/setup-pgstac-venv.sh`); skipped without them unless PCFLOW_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from pystac_client import Client
from pystac_client.conformance import ConformanceClasses

from pcflow.sandbox.pgstac import PgstacServer, missing_requirements

pytestmark = [pytest.mark.integration, pytest.mark.pgstac]

PORT_BASE = 11100  # PostgreSQL 11100, stac-fastapi 11101, rustac 11102
COLLECTION = "sentinel-2-l2a"

# id suffix, datetime, eo:cloud_cover, s2:mgrs_tile. 20.0 and 19.99 sit on the `lt 20` edge.
_ROWS = [
    ("01", "2023-01-05T20:55:01Z", 3.5, "05QKB"),
    ("02", "2023-01-25T20:55:01Z", 12.0, "05QKB"),
    ("03", "2023-02-14T20:55:01Z", 19.99, "05QLB"),
    ("04", "2023-03-06T20:55:01Z", 20.0, "05QKB"),
    ("05", "2023-03-26T20:55:01Z", 45.2, "05QLB"),
    ("06", "2023-04-15T20:55:01Z", 80.0, "05QKB"),
    ("07", "2023-05-05T20:55:01Z", 0.0, "05QLB"),
    ("08", "2023-06-24T20:55:01Z", 33.3, "05QKB"),
]
_TILE_BBOX = {"05QKB": [-156.1, 19.0, -155.1, 20.0], "05QLB": [-155.2, 19.0, -154.2, 20.0]}


def _item(suffix: str, dt: str, cloud: float, tile: str) -> dict:
    w, s, e, n = _TILE_BBOX[tile]
    item_id = f"S2B_MSIL2A_{dt[:10].replace('-', '')}_T{tile}_{suffix}"
    asset = {"type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"]}
    href = f"https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/{tile}/{item_id}"
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
        ],
        "id": item_id,
        "collection": COLLECTION,
        "bbox": [w, s, e, n],
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
        },
        "properties": {
            "datetime": dt,
            "platform": "Sentinel-2B",
            "eo:cloud_cover": cloud,
            "s2:mgrs_tile": tile,
            "proj:epsg": 32605,
        },
        "links": [],
        "assets": {
            band: {**asset, "href": f"{href}/{band}.tif", "title": band}
            for band in ("B04", "B08", "SCL")
        },
    }


ITEMS = [_item(*row) for row in _ROWS]
COLLECTION_JSON = {
    "type": "Collection",
    "stac_version": "1.0.0",
    "id": COLLECTION,
    "description": "Sentinel-2 L2A-like test items (pcflow pgstac integration test)",
    "license": "proprietary",
    "extent": {
        "spatial": {"bbox": [[-156.1, 19.0, -154.2, 20.0]]},
        "temporal": {"interval": [["2023-01-01T00:00:00Z", "2023-12-31T23:59:59Z"]]},
    },
    "links": [],
}

# -- an independent reading of the JSON: plain Python, no cql2, no server ---------------------


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _ids(pred) -> list[str]:
    return sorted(i["id"] for i in ITEMS if pred(i))


def _in_bbox(item: dict, bbox: list[float]) -> bool:
    a = item["bbox"]
    return a[0] <= bbox[2] and bbox[0] <= a[2] and a[1] <= bbox[3] and bbox[1] <= a[3]


def _in_range(item: dict, start: str, end: str) -> bool:
    return _ts(start) <= _ts(item["properties"]["datetime"]) <= _ts(end)


def _cloud(item: dict) -> float:
    return item["properties"]["eo:cloud_cover"]


def _tile(item: dict) -> str:
    return item["properties"]["s2:mgrs_tile"]


# -- services --------------------------------------------------------------------------------


def _require_services() -> None:
    problems = missing_requirements()
    if not problems:
        return
    message = "pgstac stand-in unavailable: " + "; ".join(problems)
    if os.environ.get("PCFLOW_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def pgstac_api() -> str:
    _require_services()
    t0 = time.monotonic()
    server = PgstacServer(PORT_BASE)
    server.start()
    try:
        server.load_collections([COLLECTION_JSON])
        server.load_items(ITEMS)
        timing = ", ".join(f"{k}={v:.2f}s" for k, v in server.timings.items())
        print(f"\npgstac stand-in ready in {time.monotonic() - t0:.2f}s ({timing})")
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def rustac_api(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`rustac serve` in memory: the sandbox's fast default, lacking query/filter."""
    rustac = Path(sys.executable).parent / "rustac"
    if not rustac.exists():
        pytest.fail(f"{rustac} not found — install the locked env (envs/requirements.lock)")
    data = tmp_path_factory.mktemp("rustac")
    (data / "collection.json").write_text(json.dumps(COLLECTION_JSON))
    (data / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": ITEMS}))
    addr = f"127.0.0.1:{PORT_BASE + 2}"
    log = (data / "rustac.log").open("wb")
    proc = subprocess.Popen(
        [str(rustac), "serve", "--addr", addr, "collection.json", "items.json"],
        cwd=data,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{addr}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/collections/{COLLECTION}", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"rustac serve did not start: {(data / 'rustac.log').read_text()}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


# -- tests -----------------------------------------------------------------------------------


def test_test_data_is_discriminating() -> None:
    # Guards the tests below: each expected subset must be non-empty and not everything.
    for subset in (
        _ids(lambda i: _cloud(i) < 20),
        _ids(lambda i: _cloud(i) <= 40 and _tile(i) == "05QKB"),
    ):
        assert 0 < len(subset) < len(ITEMS)


def test_pgstac_advertises_query_and_filter(pgstac_api: str) -> None:
    client = Client.open(pgstac_api)
    assert client.conforms_to(ConformanceClasses.QUERY)
    assert client.conforms_to(ConformanceClasses.FILTER)
    assert client.conforms_to(ConformanceClasses.ITEM_SEARCH)


def test_all_items_loaded(pgstac_api: str) -> None:
    found = Client.open(pgstac_api).search(collections=[COLLECTION], max_items=100)
    assert sorted(i.id for i in found.items()) == _ids(lambda i: True)


def test_query_extension_server_side(pgstac_api: str) -> None:
    search = Client.open(pgstac_api).search(
        collections=[COLLECTION], query={"eo:cloud_cover": {"lt": 20}}
    )
    assert sorted(i.id for i in search.items()) == _ids(lambda i: _cloud(i) < 20)


@pytest.mark.parametrize(
    ("cql", "pred"),
    [
        (
            {
                "op": "and",
                "args": [
                    {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 40]},
                    {"op": "=", "args": [{"property": "s2:mgrs_tile"}, "05QKB"]},
                ],
            },
            lambda i: _cloud(i) <= 40 and _tile(i) == "05QKB",
        ),
        (
            {
                "op": "or",
                "args": [
                    {"op": ">", "args": [{"property": "eo:cloud_cover"}, 40]},
                    {"op": "in", "args": [{"property": "s2:mgrs_tile"}, ["05QLB"]]},
                ],
            },
            lambda i: _cloud(i) > 40 or _tile(i) == "05QLB",
        ),
    ],
    ids=["and-le-eq", "or-gt-in"],
)
def test_filter_cql2_json_server_side(pgstac_api: str, cql: dict, pred) -> None:
    search = Client.open(pgstac_api).search(
        collections=[COLLECTION], filter=cql, filter_lang="cql2-json"
    )
    assert sorted(i.id for i in search.items()) == _ids(pred)


def test_query_with_bbox_and_datetime(pgstac_api: str) -> None:
    bbox, start, end = [-156.0, 19.2, -155.5, 19.8], "2023-01-01T00:00:00Z", "2023-03-31T23:59:59Z"
    search = Client.open(pgstac_api).search(
        collections=[COLLECTION],
        bbox=bbox,
        datetime=f"{start}/{end}",
        query={"eo:cloud_cover": {"lt": 20}},
    )
    expected = _ids(lambda i: _in_bbox(i, bbox) and _in_range(i, start, end) and _cloud(i) < 20)
    assert expected  # the data is built so that this selection is not empty
    assert sorted(i.id for i in search.items()) == expected


_Q_LT_40 = {"eo:cloud_cover": {"lt": 40}}
_F_TILE_KB = {"op": "=", "args": [{"property": "s2:mgrs_tile"}, "05QKB"]}


@pytest.mark.parametrize(
    ("query", "cql", "pred"),
    [
        (_Q_LT_40, None, lambda i: _cloud(i) < 40),
        (None, _F_TILE_KB, lambda i: _tile(i) == "05QKB"),
        (_Q_LT_40, _F_TILE_KB, lambda i: _cloud(i) < 40 and _tile(i) == "05QKB"),
    ],
    ids=["query", "filter", "query+filter"],
)
def test_discovery_same_ids_server_side_and_client_side(
    pgstac_api: str, rustac_api: str, query: dict | None, cql: dict | None, pred
) -> None:
    from pcflow.discover import discover

    rustac = Client.open(rustac_api)
    # Otherwise this would not exercise the client-side path at all.
    assert not rustac.conforms_to(ConformanceClasses.QUERY)
    assert not rustac.conforms_to(ConformanceClasses.FILTER)

    ds = {
        "collection": COLLECTION,
        "kind": "cog",
        "assets": ["B04", "B08", "SCL"],
        "crs": "EPSG:32605",
        "resolution": 10,
        "signing": "none",
        "bbox": [-156.2, 18.9, -154.0, 20.1],
        "datetime": "2023-01-01/2023-05-31",
        **({"query": query} if query else {}),
        **({"filter": cql} if cql else {}),
    }
    start, end = "2023-01-01T00:00:00Z", "2023-05-31T23:59:59Z"
    expected = _ids(lambda i: _in_range(i, start, end) and pred(i))
    assert 0 < len(expected) < len(ITEMS)

    server_side = discover("s2", ds, pgstac_api)
    client_side = discover("s2", ds, rustac_api)
    assert sorted(server_side["item_ids"]) == expected
    assert sorted(client_side["item_ids"]) == expected
    assert server_side["item_ids"] == client_side["item_ids"]  # same order too (sorted by time)
