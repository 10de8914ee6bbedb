"""Issue 12 holes 5 and 9: every wait ends, and a failure's one line names its real cause."""

from __future__ import annotations

import asyncio
import logging
import time
import types

import fsspec.asyn
import pytest

from pcflow import compute
from pcflow.staging import fastcopy, retry, writer
from pcflow.staging.plan import Region, VarPlan


class _Pending:
    """A blob client whose server-side copy stays 'pending' for ever (as Azure may queue it)."""

    def __init__(self):
        self.aborted = False

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    async def start_copy_from_url(self, url):
        return {"copy_status": "pending", "copy_id": "c1"}

    async def get_blob_properties(self):
        return types.SimpleNamespace(copy=types.SimpleNamespace(status="pending"))

    async def abort_copy(self, copy_id):
        self.aborted = True


class _Source:
    def blob_url(self, name):
        return f"https://source/{name}"

    async def get_bytes(self, name):
        return b"chunk-bytes"


def test_pending_server_side_copy_has_a_deadline_then_copies_through_the_client(monkeypatch):
    """Hole 9: the 'pending' poll had no deadline (this test timed out on the old code)."""
    monkeypatch.setattr(fastcopy, "COPY_PENDING_DEADLINE_S", 0.5, raising=False)
    client = _Pending()
    target = fastcopy.TargetBlobs.__new__(fastcopy.TargetBlobs)
    target.log, target.stats, target.server_side_ok = logging.getLogger("t"), {}, None
    target._client = lambda blob: client
    put = {}

    async def fake_put(blob, data, md5=None):
        put[blob] = data

    target.put = fake_put

    async def run():
        return await asyncio.wait_for(
            fastcopy.copy_chunk(_Source(), target, "src/0.0", "dst/0.0", server_side=True), 20
        )

    md5, size = asyncio.run(run())
    assert client.aborted
    assert put == {"dst/0.0": b"chunk-bytes"} and size == len(b"chunk-bytes")


def test_retries_show_at_info_once_they_pass_a_few_seconds(monkeypatch, caplog):
    """Hole 5: retries were logged at DEBUG only (minutes of silence during an outage)."""
    monkeypatch.setattr(retry, "RETRY_INFO_AFTER_S", 0.05, raising=False)
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise ConnectionResetError("connection reset by peer")
        return "ok"

    log = logging.getLogger("pcflow.test-retry")
    with caplog.at_level(logging.INFO, logger="pcflow.test-retry"):
        got = asyncio.run(retry.retry_async(flaky, "reading x", log=log, base_delay=0.05))
    assert got == "ok"
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("still retrying reading x" in m and "ConnectionResetError" in m for m in infos)


def test_a_failed_region_reports_its_first_cause_not_the_task_group(monkeypatch):
    """Hole 5: a failed chunk surfaced as "unhandled errors in a TaskGroup (1 sub-exception)"."""

    class _Blobs:
        def __init__(self, *a, **k):
            pass

        async def put(self, *a, **k):
            pass

    monkeypatch.setattr(writer, "TargetBlobs", _Blobs)
    fs = types.SimpleNamespace(loop=fsspec.asyn.get_loop())
    w = writer.StoreWriter(fs, "c/store.zarr", logging.getLogger("t"), {}, concurrency=2)
    plan = VarPlan("tmin", ("y",), (4,), (1,), "<f4", "encode")
    meta = types.SimpleNamespace(key=lambda idx: str(idx[0]))

    async def chunk_fn(p, m, idx):
        if idx == (2,):
            raise retry.StagingError("reading source chunk tmin/2 failed: HTTP 403")
        await asyncio.sleep(0.01)
        return "md5", 1

    regions = [Region("tmin", 0, 0, 4)]
    try:
        with pytest.raises(retry.StagingError) as err:
            w.run_regions(regions, {"tmin": plan}, {"tmin": meta}, {"tmin": [(i,) for i in
                          range(4)]}, chunk_fn)  # fmt: skip
    finally:
        w.cpu.shutdown()
    assert str(err.value) == "reading source chunk tmin/2 failed: HTTP 403"


def test_no_worker_watchdog_ends_a_result_wait():
    """Hole 9: future.result() on a cluster that never gets a worker waited forever."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            dog = compute.NoWorkerWatchdog(client, 1.0, logging.getLogger("t"), poll=0.2)
            dog.start()
            fut = client.submit(sum, [1, 2])
            t0 = time.monotonic()
            with pytest.raises(Exception):  # noqa: B017 - CancelledError of distributed
                fut.result(timeout=60)
            dog.stop()
            assert time.monotonic() - t0 < 30
            assert dog.fired and "no Dask Gateway worker started within 1 s" in dog.fired
