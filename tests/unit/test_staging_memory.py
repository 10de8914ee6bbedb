"""Staging's memory arithmetic with real-size (Daymet-HI, 242 MB) chunks, and the cache cap."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import numpy as np

from pcflow.staging import chunk_io, memory
from pcflow.staging.codec import ArrayMeta
from pcflow.staging.plan import VarPlan
from pcflow.staging.zarr_source import ChunkCache

MB = 1e6
SRC_CHUNKS = (365, 584, 284)  # Daymet-HI's real chunking: 242 MB decoded float32
SRC_BYTES = 365 * 584 * 284 * 4


def _zarray(shape, chunks):
    return {
        "zarr_format": 2, "shape": list(shape), "chunks": list(chunks), "dtype": "<f4",
        "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
        "filters": None, "fill_value": "NaN", "order": "C",
    }  # fmt: skip


def test_cache_never_holds_more_than_its_cap():
    cache = ChunkCache(capacity_bytes=250)
    keys = [f"k{i}" for i in range(6)]
    cache.expect(keys * 2)  # every chunk has a second reader: all would be kept if they fit

    async def run():
        for k in keys:
            await cache.get(k, lambda: asyncio.sleep(0, np.zeros(100, dtype="u1")))
        # bigger than the cap on its own: returned, never kept
        big = await cache.get("big", lambda: asyncio.sleep(0, np.zeros(300, dtype="u1")))
        return big

    big = asyncio.run(run())
    assert big.nbytes == 300
    assert cache.peak <= cache.capacity == 250  # was 300 (insert first, evict after)
    assert cache.size == 200 and "big" not in cache.data


def test_real_size_chunks_fit_memory_mb():
    target_chunk = 100 * 584 * 284 * 4  # a 66 MB re-encoded target chunk
    cost = memory.VarCost("encode", target_chunk, SRC_BYTES, 2 * SRC_BYTES)
    small = memory.fit(1024, concurrency=8, threads=2, costs=[cost])
    large = memory.fit(2048, concurrency=8, threads=2, costs=[cost])
    # Independent arithmetic: one chunk loading one source chunk = 2 x 66.3 + 3 x 242.2 MB.
    one = 2 * target_chunk + 3 * SRC_BYTES
    assert (small.in_flight, small.prefetch, small.per_chunk) == (1, 1, one)
    assert small.cache == 1024 * MB - one and small.peak == 1024 * MB
    assert large.peak <= 2048 * MB and not large.over_budget
    assert large.in_flight * large.per_chunk + large.cache == large.peak
    assert large.cache > small.cache  # more memory -> more source chunks kept between readers


def test_too_small_a_budget_says_the_true_peak():
    cost = memory.VarCost("encode", 50 * MB, SRC_BYTES)
    f = memory.fit(256, concurrency=8, threads=2, costs=[cost])
    assert f.in_flight == 1 and f.over_budget
    assert f.peak == 2 * 50 * MB + 3 * SRC_BYTES


def _stage_sizes(memory_mb, caplog):
    src = ArrayMeta.from_zarray(_zarray((730, 584, 284), SRC_CHUNKS))
    tgt = ArrayMeta.from_zarray(_zarray((600, 60, 60), (600, 60, 60)))
    plan = VarPlan("tmax", ("time", "y", "x"), (600, 60, 60), (600, 60, 60), "<f4", "encode",
                   (100, 300, 100))  # fmt: skip
    raw = SimpleNamespace(meta={"tmax": src}, cache=ChunkCache(0), prefetch=2, load_slots=8)
    cfg = {"memory_mb": memory_mb, "concurrency": 8, "threads": 2}
    caplog.clear()
    with caplog.at_level(logging.INFO):
        n = chunk_io.bounded_concurrency(
            cfg, {"tmax": plan}, {"tmax": tgt}, raw, {"tmax"}, logging.getLogger("t")
        )
    text = "\n".join(r.getMessage() for r in caplog.records)
    return n, raw, text


def test_stage_uses_and_reports_the_fitted_sizes(caplog):
    n1, raw1, log1 = _stage_sizes(1024, caplog)
    n2, raw2, log2 = _stage_sizes(2048, caplog)
    for n, raw, mem in ((n1, raw1, 1024), (n2, raw2, 2048)):
        target = 600 * 60 * 60 * 4
        held = n * (2 * target + raw.prefetch * 3 * SRC_BYTES) + raw.cache.capacity
        assert held <= mem * MB  # independent sum of what the run will hold
        assert raw.load_slots == n * raw.prefetch
    # The cache gets what is left (not a floor of two source chunks whatever the budget).
    assert raw1.cache.capacity < 2 * SRC_BYTES
    assert raw2.cache.capacity > raw1.cache.capacity
    # The logged figures are the run's own, and they differ with the budget (they did not).
    assert f"cache {raw1.cache.capacity / MB:.1f} MB" in log1
    assert f"cache {raw2.cache.capacity / MB:.1f} MB" in log2
