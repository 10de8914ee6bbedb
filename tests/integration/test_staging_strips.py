"""Re-encoding a source with small spatial chunks: chunks are written in strips (several of them
here), values still match the source, and the decoded-source cache stays within its cap."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

from pcflow import staging, storage
from pcflow.sandbox import demo_data
from pcflow.staging import plan
from pcflow.staging.writer import STATE
from tests.integration.staging_helpers import DAYMET_CFG, PROVENANCE, log, target

pytestmark = pytest.mark.integration

SOURCE_TILE = 8  # 48 cells wide: 6 source columns, strips of 4 -> 2 strips


@pytest.fixture(scope="module")
def tiled_source(sandbox):
    """The demo Daymet data re-chunked to 8 x 8 spatial tiles, in the target account."""
    tgt = target()
    fs = storage.filesystem(storage.target_storage_options(tgt))
    root = f"{tgt['container']}/itest-src-{uuid.uuid4().hex[:8]}/tiled.zarr"
    # A 64 x 48 km window over the Big Island (the whole real grid would be 2,600 tiles a year).
    ds = demo_data.daymet_dataset().isel(y=slice(493, 557), x=slice(205, 253))
    enc = demo_data.daymet_encoding(ds)
    for name in ("tmin", "tmax", "prcp"):
        enc[name]["chunks"] = (365, SOURCE_TILE, SOURCE_TILE)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "s.zarr"
        ds.to_zarr(local, zarr_format=2, consolidated=True, encoding=enc)
        fs.put(str(local), root, recursive=True)
    yield root
    fs.rm(root.rsplit("/", 1)[0], recursive=True)


def items_doc(root: str) -> dict:
    container, path = root.split("/", 1)
    asset = {
        "href": f"abfs://{container}/{path}",
        "type": "application/vnd+zarr",
        "xarray:open_kwargs": {"consolidated": True},
        # In memory only: the test reads its own source with the target key.
        "xarray:storage_options": {
            "account_name": os.environ["PCFLOW_TARGET_ACCOUNT_NAME"],
            "account_key": os.environ["PCFLOW_TARGET_ACCOUNT_KEY"],
        },
    }
    return {"dataset": "tiled", "kind": "zarr", "collection": "tiled", "signing": "none",
            "msft:region": "westeurope", "asset": asset, "items": [], "item_ids": [],
            "item_updated": {}}  # fmt: skip


@pytest.fixture(scope="module")
def staged_in_strips(tiled_source):
    tgt = target()
    manifest = staging.stage(items_doc(tiled_source), "tiled", STRIPS_CFG, tgt, STRIPS_STAGING,
                             PROVENANCE, log())  # fmt: skip
    return tgt, manifest


STRIPS_CFG = {**DAYMET_CFG, "signing": "none", "datetime": "2019-03-10/2020-07-01"}
STRIPS_STAGING = {"chunk_mb": 0.07, "region_mb": 0.3, "concurrency": 4}


def test_strip_order_gives_the_source_values_within_the_cache_cap(tiled_source, staged_in_strips):
    tgt, manifest = staged_in_strips
    var = manifest["variables"]["tmax"]
    assert manifest["chunking"]["per_variable"]["tmax"]["mode"] == "encode"
    assert manifest["chunking"]["write_order"] == plan.CHUNK_ORDER
    width = var["shape"][-1]
    assert width > plan.STRIP_SOURCE_CHUNKS * SOURCE_TILE, "the data must span several strips"
    assert var["chunks"][-1] % SOURCE_TILE != 0, "target tiles must straddle source tiles"

    ds = staging.open_staged(manifest, tgt)
    ref = demo_data.daymet_dataset().sel(time=ds.time, y=ds.y, x=ds.x)
    for v in ("tmin", "tmax", "prcp"):
        np.testing.assert_array_equal(ds[v].values, ref[v].values)

    run = manifest["run"]
    # The cache makes room before it inserts: never above its cap.
    assert 0 < run["source_cache_peak_mb"] <= run["source_cache_cap_mb"]
    # Every source chunk is read; re-reads are the price of strips: the source columns at strip
    # edges, at most 1/strip more, plus verification's reads (up to 2 chunks per array).
    fs = storage.filesystem(storage.target_storage_options(tgt))
    years = {str(demo_data.DAYMET_YEARS.index(y)) for y in (2019, 2020)}  # the time cut's
    sizes = [s for k, s in fs.du(tiled_source, total=False).items()
             if k.split("/")[-2] in ("tmin", "tmax", "prcp")
             and k.rsplit("/", 1)[-1].split(".")[0] in years]  # fmt: skip
    stored = sum(sizes)
    assert stored <= run["source_bytes"]
    assert run["source_bytes"] <= stored * (1 + 1 / plan.STRIP_SOURCE_CHUNKS) + 6 * max(sizes)


def test_a_budget_below_the_working_set_warns_and_still_gives_the_source_values(
    tiled_source, caplog
):
    cfg = {**DAYMET_CFG, "signing": "none", "datetime": "2019-03-10/2020-07-01"}
    tgt = target()
    staging_cfg = {"chunk_mb": 0.07, "region_mb": 0.3, "concurrency": 4, "memory_mb": 1}
    with caplog.at_level(logging.WARNING):
        manifest = staging.stage(items_doc(tiled_source), "tiled", cfg, tgt, staging_cfg,
                                 PROVENANCE, log())  # fmt: skip
    warned = [r.getMessage() for r in caplog.records if "staging.memory_mb=1 " in r.getMessage()]
    # Two truths at 1 MB (below one chunk in flight; the cache cannot hold a strip), each once.
    assert warned and len(warned) == len(set(warned)) <= 2
    assert all("raise staging.memory_mb" in w for w in warned)
    ds = staging.open_staged(manifest, tgt)
    ref = demo_data.daymet_dataset().sel(time=ds.time, y=ds.y, x=ds.x)
    np.testing.assert_array_equal(ds.tmax.values, ref.tmax.values)
    assert manifest["run"]["source_cache_cap_mb"] < 0.5


def test_a_store_missing_regions_written_in_strips_resumes_to_the_same_checksums(
    tiled_source, staged_in_strips
):
    """What a kill leaves (some regions without markers or chunks, no completion marker) is
    resumed region by region in the same strip order, to the same store."""
    ref_tgt, ref = staged_in_strips
    tgt = target()
    first = staging.stage(items_doc(tiled_source), "tiled", STRIPS_CFG, tgt, STRIPS_STAGING,
                          PROVENANCE, log())  # fmt: skip
    assert first["checksums"] == ref["checksums"]
    fs = storage.filesystem(storage.target_storage_options(tgt))
    root = storage.target_url(tgt, "tiled").split("://", 1)[1]
    markers = sorted(p for p in fs.find(f"{root}/{STATE}/regions") if "/tmax/" in p)
    lost = markers[1:-1:7]  # a few regions from different strips
    for path in lost:
        marker = json.loads(fs.cat_file(path))
        fs.rm([f"{root}/tmax/{key}" for key in marker["chunks"]] + [path])
    fs.rm([f"{root}/{STATE}/complete.json", f"{root}/.zmetadata"])

    again = staging.stage(items_doc(tiled_source), "tiled", STRIPS_CFG, tgt, STRIPS_STAGING,
                          PROVENANCE, log())  # fmt: skip
    assert again["run"]["regions_written"] == len(lost) >= 2
    assert again["checksums"] == ref["checksums"] and again["checksum"] == ref["checksum"]
