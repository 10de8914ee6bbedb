"""How each target chunk is made: which reader serves a variable, in what order its chunks are
written, how many are in flight within staging.memory_mb, and the coroutine for one chunk."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pcflow.staging import memory
from pcflow.staging import plan as planmod
from pcflow.staging.codec import ArrayMeta
from pcflow.staging.fastcopy import copy_chunk
from pcflow.staging.plan import Region, VarPlan
from pcflow.staging.writer import StoreWriter
from pcflow.staging.xarray_source import DatasetSource
from pcflow.staging.zarr_source import ZarrV2Source

ChunkFn = Callable[[VarPlan, ArrayMeta, tuple[int, ...]], Awaitable[Any]]


@dataclass
class Readers:
    """sources: the reader of each variable (the raw Zarr reader, or xarray for the rest);
    streamed: variables re-encoded from raw source chunks; orders: chunk write order."""

    sources: dict[str, Any]
    generic: DatasetSource | None
    streamed: set[str]
    orders: dict[str, list[tuple[int, ...]]]


def choose_readers(
    sub: Any,
    plans: dict[str, VarPlan],
    metas: dict[str, ArrayMeta],
    raw: ZarrV2Source | None,
    log: logging.Logger,
) -> Readers:
    """The raw reader where the stored dtype and fill value match the source's, else xarray;
    a planned copy whose target encoding differs from the source's becomes a re-encode."""
    sources: dict[str, Any] = {}
    generic: DatasetSource | None = None
    for n, p in plans.items():
        sm = raw.meta.get(n) if raw else None
        if p.mode == "copy" and sm.encoding_signature() != metas[n].encoding_signature():
            log.info(
                "%s: target encoding differs from the source: re-encoding instead of copying", n
            )
            p.mode = "encode"
        raw_ok = (
            sm is not None
            and sm.dtype == metas[n].dtype
            and str(sm.fill_value) == str(metas[n].fill_value)
        )
        if p.mode == "encode" and not raw_ok:
            generic = generic or DatasetSource(sub, {k: q.encoding for k, q in plans.items()})
            sources[n] = generic
        else:
            sources[n] = raw
    streamed = {
        n for n, p in plans.items()
        if raw is not None and p.mode == "encode" and sources[n] is raw and metas[n].shape
    }  # fmt: skip
    orders = {
        n: planmod.strip_order(m.grid, m.chunks, plans[n].offset, raw.meta[n].chunks)
        if n in streamed
        else list(m.chunk_indices())
        for n, m in metas.items()
    }
    return Readers(sources, generic, streamed, orders)


def expect_source_reads(
    pending: list[Region],
    plans: dict[str, VarPlan],
    metas: dict[str, ArrayMeta],
    readers: Readers,
    raw: ZarrV2Source,
) -> None:
    """Reference counts for the decoded-source cache: each source chunk is decoded once and
    dropped after its last planned reader, so memory follows the chunks in flight."""
    for r in pending:
        p, meta = plans[r.var], metas[r.var]
        if p.mode == "encode" and readers.sources[r.var] is raw:
            for idx in readers.orders[r.var][r.first : r.first + r.count]:
                sl = meta.chunk_slices(idx)
                raw.cache.expect(raw.source_chunks_for(r.var, sl, p.offset))


def chunk_writer(
    writer: StoreWriter, readers: Readers, raw: ZarrV2Source | None, server_side_copy: bool
) -> ChunkFn:
    """The coroutine that makes one target chunk: copy, stream from raw chunks, or encode a
    block read through xarray."""

    async def chunk_fn(p: VarPlan, meta: ArrayMeta, idx: tuple[int, ...]) -> Any:
        key = f"{p.name}/{meta.key(idx)}"
        if p.mode == "copy":
            src_idx = tuple(i + o // c for i, o, c in zip(idx, p.offset, meta.chunks, strict=False))
            src_blob = raw.blob_name(p.name, src_idx)
            return await copy_chunk(raw, writer.blobs, src_blob, writer.blob(key), server_side_copy)
        if readers.sources[p.name] is raw and meta.shape:
            # Source chunks are copied straight into the (full-size) target chunk buffer.
            buf, view = meta.chunk_buffer(idx)
            await raw.read_into(p.name, meta.chunk_slices(idx), p.offset, view)
            holder = [buf]  # handed over: dropped once encoded, not held during upload
            del buf, view
            return await writer.encode_and_put(meta, key, holder, idx)
        block = await readers.sources[p.name].read_block(p.name, meta.chunk_slices(idx), p.offset)
        return await writer.encode_and_put(meta, key, block, idx)

    return chunk_fn


def bounded_concurrency(
    cfg: dict[str, Any],
    plans: dict[str, VarPlan],
    metas: dict[str, ArrayMeta],
    raw_source: ZarrV2Source | None,
    streamed: set[str],
    log: logging.Logger,
) -> int:
    """Chunks in flight, source prefetch and cache cap, so that memory stays within
    `staging.memory_mb` (staging.memory.fit: upper-bound costs per chunk in flight; the cache
    gets what is left, capped hard). Warnings print the figures the run then uses."""
    costs = []
    for name, p in plans.items():
        meta = metas[name]
        src = raw_source.meta.get(name) if raw_source else None
        raw = src is not None and bool(src.shape) and name in streamed
        held = 0
        if raw:
            held = planmod.strip_working_set(p.shape, meta.chunks, p.offset, src.chunks)
        costs.append(memory.VarCost(
            p.mode, meta.chunk_nbytes, src.chunk_nbytes if raw else 0,
            held * src.chunk_nbytes if raw else 0,
        ))  # fmt: skip
    f = memory.fit(cfg["memory_mb"], cfg["concurrency"], cfg["threads"], costs)
    log.info("staging memory: %s", memory.describe(f, cfg["memory_mb"]))
    if f.over_budget:
        log.warning(
            "staging.memory_mb=%g is less than one chunk in flight needs: staging will hold about "
            "%.0f MB (+ ~%d MB interpreter) — raise staging.memory_mb or lower staging.chunk_mb",
            cfg["memory_mb"], f.peak / 1e6, memory.OVERHEAD_MB,
        )  # fmt: skip
    if raw_source is not None:
        raw_source.cache.capacity = f.cache
        raw_source.prefetch = f.prefetch
        raw_source.load_slots = f.in_flight * f.prefetch
        if f.rereads and streamed:
            # E.g. time-contiguous chunks over decades of one-year source chunks: each target
            # chunk needs every year, and the years under a strip do not fit the budget.
            log.warning(
                "staging.memory_mb=%g leaves %.1f MB for decoded source chunks; writing in this "
                "chunking needs ~%.1f MB at once, so source chunks will be read more than once "
                "(see run.source_bytes): raise staging.memory_mb, or set "
                "staging.time_series_chunks: false",
                cfg["memory_mb"], f.cache / 1e6, f.working_set / 1e6,
            )  # fmt: skip
    if f.in_flight < min(cfg["concurrency"], 2 * cfg["threads"]):
        log.info(
            "concurrency %d -> %d to keep chunks in flight within staging.memory_mb=%g",
            cfg["concurrency"], f.in_flight, cfg["memory_mb"],
        )  # fmt: skip
    return f.in_flight
