"""The plan's time model and memory per worker, against sums computed here by hand."""

from __future__ import annotations

import math

from pcflow import estimate as plan
from pcflow.sandbox import demo_data
from pcflow.staging import memory

DS = {
    "collection": "daymet-daily-hi", "kind": "zarr",
    "bbox": [-160.3056, 17.9539, -154.772, 23.5186],  # MPC's extent: the whole real grid
    "datetime": "2019-01-01/2020-12-31", "variables": ["tmin", "tmax", "prcp"],
}  # fmt: skip
RATES = {"read_MBps": 10.0, "write_MBps": 20.0, "codec_MBps": 5.0, "request_ms": 40.0,
         "fixed_s": 3.0}  # fmt: skip


def test_aligned_copy_wall_time_by_hand():
    collection = demo_data.daymet_collection("https://127.0.0.1:1")
    staging = {"rates": RATES, "plan_workers": [1, 2], "region_mb": 5, "concurrency": 4}
    est = plan.estimate_zarr(DS, collection, staging)
    tm = plan.time_model(est, staging)
    # Whole grid, two whole years: every array is copied chunk for chunk (no codec).
    chunk = 365 * demo_data.DAYMET_NY * demo_data.DAYMET_NX * 4
    nbytes = 3 * 2 * chunk
    # 1 chunk per 5 MB region -> 6 regions; 1 GB tasks hold whole variables -> 3 tasks
    assert (tm["tasks"], tm["requests"]) == (3, 6 + 6 + 6)
    work = nbytes / 1e6 / 10 + nbytes / 1e6 / 20 + 18 * 0.040 / 4
    assert tm["codec_s"] == 0
    assert tm["wall_s"] == {"1": round(3 + work, 1), "2": round(3 + work / 2, 1)}


def test_reencoded_subset_counts_codec_and_memory():
    collection = demo_data.daymet_collection("https://127.0.0.1:1")
    # A budget whose cache holds a write strip (no source re-reads: the by-hand sum below).
    staging = {"rates": RATES, "plan_workers": [4], "memory_mb": 4096, "concurrency": 8}
    ds = {**DS, "datetime": "2019-03-01/2020-06-30"}  # cuts through both year chunks
    est = plan.estimate_zarr(ds, collection, staging)
    tm = plan.time_model(est, staging)
    src = 365 * demo_data.DAYMET_NY * demo_data.DAYMET_NX * 4
    codec = (3 * 2 * src + est["bytes_write"]) / 1e6 / 5
    transfer = est["bytes_read"] / 1e6 / 10 + est["bytes_write"] / 1e6 / 20
    assert tm["codec_s"] == round(codec, 1) and tm["transfer_s"] == round(transfer, 1)
    # Memory per worker: the staging fit of the same chunks + the documented overhead.
    lay = est["layouts"][0]
    f = memory.fit(4096, 8, 2, [memory.VarCost("encode", lay["chunk_bytes"], src,
                                             lay["working_set_bytes"])])  # fmt: skip
    assert tm["memory_per_worker_MB"] == round(f.peak / 1e6 + memory.OVERHEAD_MB)
    assert tm["memory_per_worker_MB"] <= 4096 + memory.OVERHEAD_MB
    text = "\n".join(plan.format_time_model(tm))
    assert "estimated wall time: 4 worker(s)" in text and "memory per worker" in text


def test_too_small_memory_is_said_not_refused():
    collection = demo_data.daymet_collection("https://127.0.0.1:1")
    staging = {"memory_mb": 1, "datetime": "x"}
    est = plan.estimate_zarr({**DS, "datetime": "2019-03-01/2020-06-30"}, collection, staging)
    tm = plan.time_model(est, staging)
    assert any("below one chunk in flight" in w for w in tm["warnings"])
    assert tm["memory_per_worker_MB"] > 1 + memory.OVERHEAD_MB
    assert math.isfinite(tm["wall_s"]["1"])
