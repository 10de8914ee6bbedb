"""Staging Sentinel-2-like COG items into a cloud-masked (time, y, x) Zarr cube."""

from __future__ import annotations

import copy
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from pcflow import staging
from pcflow.estimate import estimate_cog
from pcflow.sandbox import demo_data
from pcflow.staging import cog_source
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


SAS_LIFE_S = 4  # token lifetime of the short-lived SAS endpoint below
PRIVATE = "sentinel2-private"  # the demo COGs copied into a container readable only with a SAS


@pytest.fixture
def private_s2(sandbox, monkeypatch):
    """The demo S2 items, their COGs in a private container, signed through a second instance
    of the sandbox SAS endpoint (`/api/sas/v1/sign`, real Azurite SAS) whose tokens live
    SAS_LIFE_S seconds. (The sandbox's own S2 container is public: planetary_computer.sign
    only signs *.blob.core.windows.net, so nothing there would ever expire.)"""
    import requests
    from azure.storage.blob import BlobServiceClient

    from pcflow import discover
    from pcflow.sandbox import accounts
    from pcflow.sandbox.services import http_ready

    keys = accounts.load_account_keys(sandbox.state_dir)
    account = demo_data.S2_ACCOUNT
    ca = sandbox.env().get("SSL_CERT_FILE") or sandbox.env().get("REQUESTS_CA_BUNDLE")
    client = BlobServiceClient(
        accounts.blob_endpoint(sandbox.base_port, account),
        credential={"account_name": account, "account_key": keys[account]},
        connection_verify=ca,
    )
    doc = items_doc(S2_CFG, "s2-expiry")
    container = client.get_container_client(PRIVATE)
    if not container.exists():
        container.create_container()  # private: no public access
    public = client.get_container_client(demo_data.S2_CONTAINER)
    for item in doc["items"]:
        for asset in item["assets"].values():
            if f"/{account}/{demo_data.S2_CONTAINER}/" not in asset["href"]:
                continue
            name = asset["href"].split(f"/{demo_data.S2_CONTAINER}/", 1)[1]
            data = public.get_blob_client(name).download_blob().readall()
            container.get_blob_client(name).upload_blob(data, overwrite=True)
            asset["href"] = asset["href"].replace(f"/{demo_data.S2_CONTAINER}/", f"/{PRIVATE}/")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "pcflow.sandbox.sas_app", "--port", str(port),
            "--state-dir", str(sandbox.state_dir), "--expiry-seconds", str(SAS_LIFE_S),
            "--blob-port", str(sandbox.base_port),
            "--container", f"{account}/{PRIVATE}"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    signed_at: list[float] = []

    def sign_via_endpoint(items, signing):
        # Stand-in for planetary_computer.sign on MPC: every href gets a fresh SAS now.
        out = discover.sign_item_dicts.__wrapped__(items, "none")
        if signing == "none":
            return out
        for item in out:
            for asset in item.assets.values():
                r = requests.get(
                    f"http://127.0.0.1:{port}/api/sas/v1/sign",
                    params={"href": asset.href.split("?")[0]},
                    timeout=10,
                )
                r.raise_for_status()
                asset.href = r.json()["href"]
        signed_at.append(time.monotonic())
        return out

    try:
        deadline = time.monotonic() + 60
        while not http_ready(f"http://127.0.0.1:{port}/healthz"):
            assert proc.poll() is None and time.monotonic() < deadline, "sas_app did not start"
            time.sleep(0.2)
        # Unsigned reads of the private copy are refused: only a valid SAS opens it.
        href = next(a["href"] for i in doc["items"] for a in i["assets"].values())
        assert requests.get(href, timeout=10, verify=ca).status_code in (403, 404)
        monkeypatch.setattr(discover, "sign_item_dicts", _wrapping(sign_via_endpoint))
        yield doc, signed_at
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wrapping(fn):
    from pcflow import discover

    fn.__wrapped__ = discover.sign_item_dicts
    return fn


def _reference_b04(ds, scene):
    cols = ((ds.x.values - demo_data.S2_X0 - 5) / 10).astype(int)
    rows = ((demo_data.S2_Y0 - ds.y.values - 5) / 10).astype(int)
    return scene.arrays["B04"][np.ix_(rows, cols)]


def test_a_load_longer_than_the_token_life_re_signs(private_s2):
    doc, signed_at = private_s2
    cfg = {**S2_CFG, "assets": ["B04"]}
    cube = cog_source.load(doc, "s2-expiry", cfg, "planetary-computer", log())
    built = time.monotonic()
    time.sleep(SAS_LIFE_S + 2)  # the load outlives any token that existed when it was planned
    values = cube["B04"].isel(time=slice(0, 2)).compute().values
    assert signed_at and min(signed_at) > built + SAS_LIFE_S  # signed at read time, afresh
    scenes = sorted(demo_data.s2_scenes(), key=lambda s: s.datetime)
    for t in range(2):
        np.testing.assert_array_equal(values[t], _reference_b04(cube, scenes[t]))


def test_signing_once_at_load_time_fails_when_the_token_expires(private_s2):
    # What cog_source did before: sign every item when the graph is built, read later.
    import odc.stac

    from pcflow import discover

    doc, _ = private_s2
    items = discover.sign_item_dicts(doc["items"], "planetary-computer")
    cube = odc.stac.load(items, bands=["B04"], crs=S2_CFG["crs"], resolution=10,
                         bbox=S2_CFG["bbox"], chunks={}, groupby="solar_day",
                         fail_on_error=True)  # fmt: skip
    time.sleep(SAS_LIFE_S + 2)
    with pytest.raises(Exception, match="403|AuthenticationFailed|Authorization|HTTP"):
        cube["B04"].isel(time=0).compute()
