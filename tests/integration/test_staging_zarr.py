"""Staging Daymet-like Zarr from the sandbox's source account into the target account."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from pcflow import staging, storage
from pcflow.discover import sign_asset_dict
from pcflow.sandbox import demo_data
from pcflow.staging.staged import IncompleteStoreError
from pcflow.staging.writer import STATE
from pcflow.testing.faultproxy import FaultProxy
from tests.integration.staging_helpers import (
    DAYMET_CFG,
    DAYMET_SUBSET,
    PROVENANCE,
    TEST_MEMORY_MB,
    items_doc,
    log,
    store_objects,
    target,
)
from tests.stac_schemas import validate

pytestmark = pytest.mark.integration

SMALL_CHUNKS = {"chunk_mb": 0.2, "region_mb": 0.2, "concurrency": 4, "memory_mb": TEST_MEMORY_MB}


@pytest.fixture(scope="module")
def daymet_items(sandbox):
    return items_doc(DAYMET_CFG)


@pytest.fixture(scope="module")
def aligned(daymet_items, tmp_path_factory):
    """One aligned staging run shared by several tests (plus its collection.json)."""
    tgt = target()
    manifest = staging.stage(daymet_items, "daymet-hi", DAYMET_CFG, tgt, {}, PROVENANCE, log())
    path = tmp_path_factory.mktemp("aligned") / "collection.json"
    path.write_text(json.dumps(staging.stac_collection(manifest)))
    return tgt, manifest, path


def test_aligned_subset_is_copied_byte_for_byte(aligned):
    tgt, manifest, _ = aligned
    modes = {n: v["mode"] for n, v in manifest["chunking"]["per_variable"].items()}
    assert modes["tmax"] == modes["tmin"] == modes["prcp"] == "copy"
    # Same bytes as the source chunk objects: years 2019 and 2020 are source chunks 0 and 1.
    signed = sign_asset_dict(manifest_source_asset(), "planetary-computer")
    sfs = storage.filesystem(storage.source_storage_options(signed["xarray:storage_options"]))
    objs = store_objects(tgt, "daymet-hi")

    for var in ("tmax", "prcp"):
        for tgt_i, src_i in ((0, 0), (1, 1)):
            raw = sfs.cat_file(f"daymet-zarr/daily/hi.zarr/{var}/{src_i}.0.0")
            assert objs[f"{var}/{tgt_i}.0.0"] == hashlib.md5(raw, usedforsecurity=False).hexdigest()
    assert manifest["run"]["regions_written"] == manifest["run"]["regions_total"] > 0


def manifest_source_asset():
    return {
        "href": "abfs://daymet-zarr/daily/hi.zarr",
        "xarray:storage_options": {"account_name": "daymeteuwest"},
    }


def test_reopens_the_mpc_way_from_collection_in_a_fresh_process(aligned):
    tgt, manifest, path = aligned
    # Valid for core STAC and every extension it declares (schemas vendored, offline).
    with open(path) as f:
        doc = json.load(f)
    assert len(validate(doc)) == 1 + len(doc["stac_extensions"]) >= 3
    assert doc["cube:dimensions"]["x"]["reference_system"]["type"] == "ProjectedCRS"
    code = f"""
import json, os, sys, numpy as np, pystac, xarray as xr
from pcflow import storage
col = pystac.Collection.from_file({str(path)!r})
asset = col.assets["zarr-abfs"]
opts = storage.with_account_host(asset.extra_fields["xarray:storage_options"])
opts["account_key"] = os.environ["PCFLOW_TARGET_ACCOUNT_KEY"]
ds = xr.open_zarr(asset.href, **asset.extra_fields["xarray:open_kwargs"], storage_options=opts)
out = {{v: [float(ds[v].sum()), int(ds[v].count())] for v in ["tmin", "tmax", "prcp"]}}
out["attrs"] = ds.attrs["pcflow_provenance"]
out["time"] = [str(ds.time.values[0]), int(ds.sizes["time"])]
print(json.dumps(out))
"""
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    ref = demo_data.daymet_dataset().sel(time=slice("2019-01-01", "2020-12-31"))
    for v in ("tmin", "tmax", "prcp"):
        assert got[v][1] == int(ref[v].count()) < ref[v].size  # the ocean is NaN
        assert got[v][0] == pytest.approx(float(ref[v].astype("float64").sum()), rel=1e-6)
    assert json.loads(got["attrs"]) == PROVENANCE
    assert got["time"] == ["2019-01-01T12:00:00.000000000", 730]


def test_rerun_of_a_finished_store_writes_nothing(aligned, daymet_items):
    tgt, manifest, _ = aligned
    before = store_objects(tgt, "daymet-hi", state=True)
    again = staging.stage(daymet_items, "daymet-hi", DAYMET_CFG, tgt, {}, PROVENANCE, log())
    assert again["run"].get("objects_written", 0) == 0
    assert again["run"]["regions_skipped"] == again["run"]["regions_total"]
    assert again["checksum"] == manifest["checksum"]
    assert store_objects(tgt, "daymet-hi", state=True) == before


def test_subset_needing_reencoding_matches_the_source(sandbox, daymet_items):
    tgt = target()
    cfg = {**DAYMET_CFG, **DAYMET_SUBSET}
    manifest = staging.stage(daymet_items, "daymet-hi", cfg, tgt, {}, PROVENANCE, log())
    assert manifest["chunking"]["per_variable"]["tmax"]["mode"] == "encode"
    ds = staging.open_staged(manifest, tgt)
    # Independent reference: the generator's data at the staged coordinates.
    ref = demo_data.daymet_dataset().sel(time=ds.time, y=ds.y, x=ds.x)
    assert (
        str(ds.time.values[0])[:10] == "2019-03-10" and str(ds.time.values[-1])[:10] == "2020-07-01"
    )
    for v in ("tmin", "tmax", "prcp"):
        np.testing.assert_array_equal(ds[v].values, ref[v].values)
    np.testing.assert_allclose(ds.lat.values, ref.lat.values)
    chunks = manifest["variables"]["tmax"]["chunks"]
    assert chunks[0] == ds.sizes["time"]  # time-contiguous
    # The requested bbox's centre is inside the staged grid (reprojected from lon/lat).
    lon, lat = float(ds.lon.mean()), float(ds.lat.mean())
    assert -155.6 < lon < -155.3 and 19.5 < lat < 19.8


def test_open_staged_refuses_incomplete_or_changed_stores(aligned):
    tgt, manifest, _ = aligned
    fs = storage.filesystem(storage.target_storage_options(tgt))
    root = manifest["url"].split("://", 1)[1]
    marker = f"{root}/{STATE}/complete.json"
    saved = fs.cat_file(marker)
    try:
        fs.rm(marker)
        with pytest.raises(IncompleteStoreError, match="incomplete"):
            staging.open_staged(manifest, tgt)
    finally:
        fs.pipe_file(marker, saved)
    staging.open_staged(manifest, tgt).close()
    with pytest.raises(IncompleteStoreError, match="changed since"):
        staging.open_staged({**manifest, "checksum": "0" * 64}, tgt)


def _markers(tgt, dataset):
    fs = storage.filesystem(storage.target_storage_options(tgt))
    root = storage.target_url(tgt, dataset).split("://", 1)[1]
    try:
        names = fs.find(f"{root}/{STATE}")
    except FileNotFoundError:
        return set(), False
    regions = {p for p in names if "/regions/" in p}
    return regions, any(p.endswith("plan.json") for p in names)


def test_faulty_network_gives_identical_results(sandbox, daymet_items):
    cfg = {**DAYMET_CFG, **DAYMET_SUBSET}
    ref = staging.stage(daymet_items, "daymet-hi", cfg, target(), SMALL_CHUNKS, PROVENANCE, log())
    certs = sandbox.state_dir / "certs"
    saved = os.environ[storage.ACCOUNT_HOST_ENV]
    with FaultProxy(sandbox.base_port, certs, rate=0.12, seed=7) as proxy:
        os.environ[storage.ACCOUNT_HOST_ENV] = f"127.0.0.1:{proxy.port}/{{account_name}}"
        try:
            tgt = target()
            got = staging.stage(
                daymet_items, "daymet-hi", cfg, tgt, SMALL_CHUNKS, PROVENANCE, log()
            )
        finally:
            os.environ[storage.ACCOUNT_HOST_ENV] = saved
        counts = dict(proxy.counts)
    faults = sum(counts.get(f, 0) for f in ("503", "reset_before", "reset_mid_response"))
    assert faults >= 10, counts
    assert got["checksums"] == ref["checksums"] and got["checksum"] == ref["checksum"]
    staging.open_staged(got, tgt).close()


def test_wrong_key_fails_at_once_with_a_clear_message(sandbox, daymet_items, monkeypatch):
    import base64

    monkeypatch.setenv("PCFLOW_TARGET_ACCOUNT_KEY", base64.b64encode(b"x" * 64).decode())
    t0 = time.monotonic()
    with pytest.raises(staging.StagingError, match="access refused"):
        staging.stage(daymet_items, "daymet-hi", DAYMET_CFG, target(), {}, PROVENANCE, log())
    assert time.monotonic() - t0 < 20


def test_missing_container_fails_at_once(sandbox, daymet_items):
    tgt = {**target(), "container": "no-such-container"}
    with pytest.raises(staging.StagingError, match="does not exist.*create it"):
        staging.stage(daymet_items, "daymet-hi", DAYMET_CFG, tgt, {}, PROVENANCE, log())


def test_cross_region_target_warns_with_egress_volume(sandbox, daymet_items, caplog):
    tgt = {**target(), "region": "eastus"}
    with caplog.at_level(logging.WARNING):
        staging.stage(daymet_items, "daymet-hi", DAYMET_CFG, tgt, {}, PROVENANCE, log())
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "westeurope" in text and "eastus" in text and "GB" in text


def test_expired_source_token_is_refreshed(sandbox, daymet_items):
    """A cached SAS token the service refuses (as an expired one would be) is re-signed."""
    import datetime as dt

    import planetary_computer.sas as pc_sas
    from planetary_computer.settings import Settings

    key = f"{Settings.get().sas_url}/daymeteuwest/daymet-zarr"
    pc_sas.get_token("daymeteuwest", "daymet-zarr")
    good = pc_sas.TOKEN_CACHE[key]
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    bad = good.token.replace("se=", f"se={past}&old_se=", 1)  # signature no longer matches
    pc_sas.TOKEN_CACHE[key] = pc_sas.SASToken(token=bad, **{"msft:expiry": good.expiry})
    try:
        cfg = {**DAYMET_CFG, **DAYMET_SUBSET}
        m = staging.stage(daymet_items, "daymet-hi", cfg, target(), {}, PROVENANCE, log())
    finally:
        pc_sas.TOKEN_CACHE.pop(key, None)
    assert m["run"].get("token_refreshes", 0) >= 1


def test_token_refused_mid_run_is_re_signed(sandbox, daymet_items):
    """Chunk reads after the token went bad (expired mid-run) re-sign and carry on."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from pcflow.staging.zarr_source import SourceAuth, ZarrV2Source, open_dataset

    auth = SourceAuth(daymet_items["asset"], "planetary-computer", log())
    ds = open_dataset(auth, log())
    src = ZarrV2Source(auth, ds, log(), stats={})
    src.cpu = ThreadPoolExecutor(1)
    good = auth.storage_options["credential"]
    auth.storage_options["credential"] = good.replace("sig=", "sig=AAAA", 1)
    auth.fs = storage.filesystem(auth.storage_options)
    auth.generation += 1  # the next reads use the broken signature

    async def read():
        try:
            # A land block (raw stored values: the ocean would read back as -9999).
            cells = (slice(0, 2), slice(0, 3), slice(0, 3))
            return await src.read_block("tmax", cells, (0, 520, 230))
        finally:
            await src.aclose()

    block = asyncio.run(read())
    assert auth.refreshes == 1
    ref = demo_data.daymet_dataset()["tmax"].isel(time=slice(0, 2), y=slice(520, 523),
                                                    x=slice(230, 233)).values  # fmt: skip
    np.testing.assert_array_equal(block, ref)
