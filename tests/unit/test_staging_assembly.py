"""Target chunks assembled from source chunks: values, fill padding, one decode per source chunk.

The source is a ZarrV2Source whose blob reads come from a dict of chunk bytes written by zarr
(no storage service): everything else — the decoded-chunk cache with its planned reads, the
streaming copy into the target buffer, the verification windows — is the real code.
"""

from __future__ import annotations

import asyncio
import json
import logging

import numcodecs
import numpy as np
import pytest
import zarr

from pcflow.staging.codec import ArrayMeta
from pcflow.staging.verify import _check_windows
from pcflow.staging.zarr_source import ChunkCache, ZarrV2Source


class DictSource(ZarrV2Source):
    """A ZarrV2Source over in-memory chunk objects; counts reads per blob."""

    def __init__(self, meta: ArrayMeta, blobs: dict[str, bytes]):
        self.meta = {"v": meta}
        self.prefix = "store"
        self.blobs = blobs
        self.reads: dict[str, int] = {}
        self.cache = ChunkCache(1 << 30)
        self.cpu = None
        self.load_slots = 3
        self._loads = None
        self.log = logging.getLogger("test")
        self.stats = {}

    async def get_bytes(self, blob: str) -> bytes | None:
        self.reads[blob] = self.reads.get(blob, 0) + 1
        await asyncio.sleep(0)
        return self.blobs.get(blob)


def _source(tmp_path, data: np.ndarray, chunks: tuple[int, ...], fill=-9999.0) -> DictSource:
    path = tmp_path / "src.zarr"
    arr = zarr.create_array(
        store=str(path), shape=data.shape, chunks=chunks, dtype=data.dtype, zarr_format=2,
        fill_value=fill, compressors=numcodecs.Blosc(cname="lz4"), overwrite=True,
    )  # fmt: skip
    arr[...] = data
    meta = ArrayMeta.from_zarray(json.loads((path / ".zarray").read_text()))
    blobs = {
        f"store/v/{meta.key(i)}": (path / meta.key(i)).read_bytes() for i in meta.chunk_indices()
    }
    return DictSource(meta, blobs)


def _target(shape, chunks, fill=-9999.0) -> ArrayMeta:
    return ArrayMeta(shape, chunks, "<f4", {"id": "zlib", "level": 1}, (), fill)


@pytest.fixture
def data() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(20, 13, 11)).astype("float32")


def test_assembled_chunks_equal_the_subset_and_each_source_chunk_is_read_once(tmp_path, data):
    src = _source(tmp_path, data, (6, 5, 4))
    offset = (3, 2, 1)  # a subset that cuts through source chunks on every axis
    sub = data[3:19, 2:13, 1:10]
    tgt = _target(sub.shape, (16, 4, 4))  # time-contiguous target chunks, other tiles

    async def run() -> dict:
        # Plan the reads (as stage() does), then assemble every target chunk concurrently.
        for idx in tgt.chunk_indices():
            src.cache.expect(src.source_chunks_for("v", tgt.chunk_slices(idx), offset))
        out = {}

        async def one(idx):
            buf, view = tgt.chunk_buffer(idx)
            await src.read_into("v", tgt.chunk_slices(idx), offset, view)
            out[idx] = buf

        await asyncio.gather(*(one(i) for i in tgt.chunk_indices()))
        return out

    bufs = asyncio.run(run())
    for idx, buf in bufs.items():
        region = tgt.chunk_slices(idx)
        inner = tuple(slice(0, s.stop - s.start) for s in region)
        np.testing.assert_array_equal(buf[inner], sub[region])
        # Edge chunks carry the fill value beyond the array: the bytes equal encode()'s padding.
        assert tgt.encode(buf, idx) == tgt.encode(sub[region], idx)
    touched = {
        b
        for i in tgt.chunk_indices()
        for b in src.source_chunks_for("v", tgt.chunk_slices(i), offset)
    }  # noqa: E501
    assert set(src.reads) == touched
    assert max(src.reads.values()) == 1, "a source chunk was fetched twice"
    assert src.cache.size == 0 and not src.cache.data, "decoded chunks outlived their readers"


def test_unplanned_reads_are_not_kept(tmp_path, data):
    src = _source(tmp_path, data, (6, 5, 4))
    block = asyncio.run(src.read_block("v", (slice(0, 7), slice(0, 6), slice(0, 5)), (0, 0, 0)))
    np.testing.assert_array_equal(block, data[:7, :6, :5])
    assert not src.cache.data


def test_absent_source_chunks_read_as_fill(tmp_path, data):
    src = _source(tmp_path, data, (6, 5, 4))
    del src.blobs["store/v/0.0.0"]
    block = asyncio.run(src.read_block("v", (slice(0, 2), slice(0, 2), slice(0, 2)), (0, 0, 0)))
    assert (block == -9999.0).all()


def test_check_windows_lie_in_one_source_chunk_each(tmp_path, data):
    src = _source(tmp_path, data, (6, 5, 4))
    offset = (3, 2, 1)
    region = (slice(0, 16), slice(0, 4), slice(4, 8))
    windows = _check_windows(src, "v", region, offset)
    assert len(windows) == 2
    first, last = windows
    for w in windows:
        assert len(src.source_chunks_for("v", w, offset)) == 1
        assert all(r.start <= s.start < s.stop <= r.stop for s, r in zip(w, region, strict=True))
    assert tuple(s.start for s in first) == tuple(s.start for s in region)
    assert tuple(s.stop for s in last) == tuple(s.stop for s in region)
    # A source without raw chunk access compares the whole chunk.
    assert _check_windows(object(), "v", region, offset) == [region]


def test_chunk_buffer_interior_is_the_whole_buffer():
    meta = _target((10, 10), (5, 5))
    buf, view = meta.chunk_buffer((0, 0))
    assert view is buf and buf.shape == (5, 5)
    buf, view = meta.chunk_buffer((1, 1))
    assert view.shape == (5, 5)
    meta = _target((9, 7), (5, 5))
    buf, view = meta.chunk_buffer((1, 1))
    assert buf.shape == (5, 5) and view.shape == (4, 2)
    assert (buf[4:, :] == -9999.0).all() and (buf[:, 2:] == -9999.0).all()
