"""collection.json: a valid STAC Collection with MPC's asset conventions and no secrets."""

from __future__ import annotations

import json

import pystac

from pcflow.staging import stac_collection
from tests.stac_schemas import validate


def _manifest(**extra):
    return {
        "dataset": "daymet-hi",
        "href": "abfs://pcflow/demo/daymet-hi.zarr",
        "url": "az://pcflow/demo/daymet-hi.zarr",
        "target": {"account_name": "acct", "container": "pcflow", "prefix": "demo",
                   "region": "westeurope"},
        "xarray:open_kwargs": {"consolidated": True},
        "xarray:storage_options": {"account_name": "acct", **extra},
        "bbox": [-155.6, 19.5, -155.4, 19.7],
        "coords": {"time": {"first": "2019-01-01T12:00:00.000000000",
                            "last": "2020-12-30T12:00:00.000000000", "size": 730}},
        "variables": {"tmax": {"dims": ["time", "y", "x"], "shape": [730, 20, 20],
                               "chunks": [730, 20, 20], "attrs": {"units": "degrees C"}}},
        "source": {"collection": "daymet-daily-hi"},
        "provenance": {"git": {"commit": "abc"}},
        "checksum": "f" * 64,
        "chunking": {"chunk_mb": 100},
    }  # fmt: skip


def test_collection_validates_and_follows_mpc_conventions():
    doc = stac_collection(_manifest())
    col = pystac.Collection.from_dict(doc)
    validate(doc)  # offline, against vendored schemas (pystac's validate() fetches them)
    asset = col.assets["zarr-abfs"]
    assert asset.href == "abfs://pcflow/demo/daymet-hi.zarr"
    assert asset.media_type == "application/vnd+zarr"
    assert asset.extra_fields["xarray:open_kwargs"] == {"consolidated": True}
    assert asset.extra_fields["xarray:storage_options"] == {"account_name": "acct"}
    interval = col.extent.temporal.intervals[0]
    assert interval[0].year == 2019 and interval[1].year == 2020
    assert doc["pcflow:provenance"] == {"git": {"commit": "abc"}}


def test_collection_never_carries_credentials_or_local_hosts():
    secret = "c2VjcmV0LWtleQ=="
    doc = stac_collection(
        _manifest(account_key=secret, credential="sv=1&sig=abc", account_host="127.0.0.1:1/a")
    )
    text = json.dumps(doc)
    assert secret not in text and "sig=abc" not in text and "127.0.0.1" not in text
