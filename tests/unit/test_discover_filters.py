"""Client-side STAC filtering (for APIs without query/filter) and signing without storing tokens."""

import pytest

from pcflow.discover import DiscoveryError, client_side_filter, open_client, query_to_cql2

ITEMS = [
    {"type": "Feature", "id": f"i{n}", "properties": {"eo:cloud_cover": cc, "platform": plat}}
    for n, (cc, plat) in enumerate([(5, "sentinel-2a"), (35, "sentinel-2b"), (80, "sentinel-2a")])
]


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ({"eo:cloud_cover": {"lt": 40}}, ["i0", "i1"]),
        ({"eo:cloud_cover": {"gte": 35, "lte": 80}}, ["i1", "i2"]),
        ({"platform": {"eq": "sentinel-2a"}}, ["i0", "i2"]),
        ({"platform": {"in": ["sentinel-2b"]}}, ["i1"]),
        ({"eo:cloud_cover": {"lt": 40}, "platform": {"neq": "sentinel-2b"}}, ["i0"]),
    ],
)
def test_query_extension_filters_locally(query, ids):
    assert [i["id"] for i in client_side_filter(ITEMS, query, None)] == ids


def test_cql2_filter_locally():
    cql = {
        "op": "and",
        "args": [
            {"op": ">", "args": [{"property": "eo:cloud_cover"}, 10]},
            {"op": "=", "args": [{"property": "platform"}, "sentinel-2a"]},
        ],
    }
    assert [i["id"] for i in client_side_filter(ITEMS, None, cql)] == ["i2"]


def test_unknown_query_operator_is_a_clear_error():
    with pytest.raises(DiscoveryError, match="operator 'like'"):
        query_to_cql2({"platform": {"like": "s2"}})


def test_unreachable_api_is_one_clear_line():
    # Port 9 on loopback: nothing listens there, so the connection is refused at once.
    # One retry, short backoff: the message is under test here, not the default retry budget
    # (which spends ~30 s on a refused port).
    with pytest.raises(DiscoveryError) as info:
        open_client("http://127.0.0.1:9/api/stac/v1", {"retries": 1, "backoff_s": 0.1})
    assert "unreachable" in str(info.value) and "PCFLOW_STAC_API" in str(info.value)
    assert "\n" not in str(info.value)
