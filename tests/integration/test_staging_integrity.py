"""Integrity of staged stores (issue 12): wipes, leases, readers under a changing store."""

from __future__ import annotations

import json
import time

import pytest

from pcflow import reductions, staging, storage
from pcflow.staging.lease import StoreBusyError
from pcflow.staging.staged import IncompleteStoreError
from pcflow.staging.writer import STATE, StoreWriter
from pcflow.testing.faultproxy import FaultProxy
from tests.integration.staging_helpers import (
    DAYMET_CFG,
    DAYMET_SUBSET,
    PROVENANCE,
    TEST_MEMORY_MB,
    items_doc,
    log,
    run_stage_process,
    store_objects,
    target,
)

pytestmark = pytest.mark.integration

SMALL = {"chunk_mb": 0.2, "region_mb": 0.2, "concurrency": 4, "memory_mb": TEST_MEMORY_MB}


@pytest.fixture(scope="module")
def daymet_items(sandbox):
    return items_doc(DAYMET_CFG)


def test_unaligned_small_chunks_chunk_2d_coords_like_the_data(daymet_items):
    """copy_aligned: false + chunk_mb: 1 once planned lat/lon chunks apart from the data's and
    every reduction then failed "inconsistent chunks along dimension y" (issue 12, hole 6)."""
    tgt = target()
    cfg = {"copy_aligned": False, "chunk_mb": 1}
    # A window larger than one data chunk's y/x (the real grid whole would be 1.4 GB to encode).
    ds_cfg = {**DAYMET_CFG, **DAYMET_SUBSET}
    manifest = staging.stage(daymet_items, "daymet-hi", ds_cfg, tgt, cfg, PROVENANCE, log())
    per_var = manifest["chunking"]["per_variable"]
    data_chunks = per_var["tmin"]["chunks"]
    dims = manifest["variables"]["tmin"]["dims"]
    for coord in ("lat", "lon"):
        cdims = manifest["variables"][coord]["dims"]
        want = [data_chunks[dims.index(d)] for d in cdims]
        assert per_var[coord]["chunks"] == want, (coord, per_var[coord], data_chunks)
    with staging.open_staged(manifest, tgt) as ds:
        result = reductions.run("spatial_mean", ds).load()
    assert result["tmin"].notnull().all()


@pytest.fixture()
def staged(daymet_items):
    tgt = target()
    manifest = staging.stage(daymet_items, "daymet-hi", DAYMET_CFG, tgt, {}, PROVENANCE, log())
    return tgt, manifest


def _fs_root(tgt, manifest):
    return storage.filesystem(storage.target_storage_options(tgt)), manifest["url"].split("://")[1]


def test_chunks_deleted_under_a_complete_store_are_refused_then_restaged(staged, daymet_items):
    """Hole 1: a store marked complete whose chunks are gone was opened (and read as NaN), and
    the re-run said "complete already: nothing written"."""
    tgt, manifest = staged
    before = store_objects(tgt, "daymet-hi")
    fs, root = _fs_root(tgt, manifest)
    gone = sorted(k for k in before if k.startswith("tmin/") and "/." not in f"/{k}")[:2]
    fs.rm([f"{root}/{k}" for k in gone])
    with pytest.raises(IncompleteStoreError, match="chunks are missing"):
        staging.open_staged(manifest, tgt)
    again = staging.stage(daymet_items, "daymet-hi", DAYMET_CFG, tgt, {}, PROVENANCE, log())
    assert again["run"]["regions_written"] >= 1
    assert store_objects(tgt, "daymet-hi") == before
    with staging.open_staged(again, tgt) as ds:
        assert ds["tmin"].notnull().any()
        # A chunk deleted after opening is an error when read, not fill values.
        fs.rm(f"{root}/{gone[0]}")
        with pytest.raises(IncompleteStoreError, match="missing while being read"):
            ds["tmin"].load()


class _Killed(BaseException):
    """Stands for SIGKILL in the middle of a bulk delete (not retried, not caught)."""


def test_interrupted_wipe_never_leaves_a_store_that_opens(staged, monkeypatch):
    """Hole 1: the wipe was one concurrent bulk delete; when chunk deletes finished before the
    completion marker's and `.zmetadata`'s, an interrupted wipe left a store that opened as
    complete. The fake bulk delete removes the chunks, then is killed."""
    tgt, manifest = staged
    fs, root = _fs_root(tgt, manifest)
    writer = StoreWriter(fs, root, log(), {})
    real_rm = fs.rm

    def rm_chunks_then_die(paths, *a, **k):
        n = len(root) + 1
        real_rm([p for p in paths if not p[n:].startswith(".") and "/." not in p[n:]])
        raise _Killed

    monkeypatch.setattr(fs, "rm", rm_chunks_then_die)
    try:
        with pytest.raises(_Killed):
            writer.wipe()
    finally:
        writer.close()
    with pytest.raises(IncompleteStoreError):
        staging.open_staged(manifest, tgt)
    assert not fs.exists(f"{root}/{STATE}/plan.json"), "a resumable plan outlived its chunks"


def test_second_writer_is_refused_naming_the_holder(sandbox, daymet_items, tmp_path):
    """Hole 2: two runs on one store wiped each other with a warning; the second now fails at
    once with one line naming the holder, and the first finishes a store its manifest
    describes."""
    tgt = target()
    cfg = {**DAYMET_CFG, **DAYMET_SUBSET}
    args = {"items": daymet_items, "name": "daymet-hi", "dataset": cfg, "target": tgt,
            "staging": {**SMALL, "concurrency": 4}, "provenance": PROVENANCE,
            "out": str(tmp_path / "a.json")}  # fmt: skip
    certs = sandbox.state_dir / "certs"
    with FaultProxy(sandbox.base_port, certs, rate=0.0, latency=0.03) as proxy:
        slow = {storage.ACCOUNT_HOST_ENV: f"127.0.0.1:{proxy.port}/{{account_name}}"}
        proc = run_stage_process(args, tmp_path, env=slow)
        fs = storage.filesystem(storage.target_storage_options(tgt))
        root = storage.target_url(tgt, "daymet-hi").split("://")[1]
        deadline = time.monotonic() + 300  # a child's start on 2 busy cores
        while not fs.exists(f"{root}/{STATE}/plan.json"):
            assert proc.poll() is None and time.monotonic() < deadline, (
                "first run did not start: " + (tmp_path / "stage-child.log").read_text()[-3000:]
            )
            time.sleep(0.05)
        other = {**SMALL, "chunk_mb": 0.1}
        with pytest.raises(StoreBusyError) as err:
            staging.stage(daymet_items, "daymet-hi", cfg, tgt, other, PROVENANCE, log())
        line = str(err.value)
        assert "\n" not in line
        assert f"pid {proc.pid}" in line and "lease until" in line
        assert proc.wait(timeout=300) == 0
    first = json.loads((tmp_path / "a.json").read_text())
    staging.open_staged(first, tgt).close()  # the manifest describes the stored store


def test_reduce_fails_when_the_store_is_wiped_while_read(staged, tmp_path, monkeypatch):
    """Hole 2: a reduce whose store was re-staged under it wrote an all-NaN NetCDF and
    succeeded. The wipe here happens after the reduction's graph is built, before compute."""
    from pcflow.workflow import steps

    tgt, manifest = staged
    mpath = tmp_path / "staged.json"
    mpath.write_text(json.dumps(manifest))
    fs, root = _fs_root(tgt, manifest)
    real_run = reductions.run

    def run_then_wipe(name, ds, **kw):
        out = real_run(name, ds, **kw)
        writer = StoreWriter(fs, root, log(), {})
        try:
            writer.wipe()  # another run restaging: marker, metadata, plan, then chunks
        finally:
            writer.close()
        return out

    monkeypatch.setattr(reductions, "run", run_then_wipe)
    out = tmp_path / "out.nc"
    with pytest.raises(SystemExit):  # rule_logging: the one error line, then exit 1
        steps.run_reduce("daymet-hi", "spatial_mean", {"backend": "local"}, tgt, str(mpath),
                         str(out), str(tmp_path / "r.log"), {"target": tgt},
                         ds_cfg=DAYMET_CFG)  # fmt: skip
    assert not out.exists()
    assert "while it was being read" in (tmp_path / "r.log").read_text()


def test_manifest_is_read_back_from_the_store(staged):
    """Hole 2: the manifest carries the completion marker's identity it was written with."""
    tgt, manifest = staged
    with staging.open_staged(manifest, tgt) as ds:
        assert ds.encoding["pcflow_identity"] == manifest["identity"]
