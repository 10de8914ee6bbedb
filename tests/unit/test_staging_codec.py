"""Chunk bytes written by staging's codec must be what zarr itself reads, and vice versa."""

from __future__ import annotations

import json

import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr

from pcflow.staging.codec import ArrayMeta


def _zarr_array(tmp_path, data, chunks, fill_value, compressor):
    path = tmp_path / "a.zarr"
    arr = zarr.create_array(
        store=str(path), shape=data.shape, chunks=chunks, dtype=data.dtype, zarr_format=2,
        fill_value=fill_value, compressors=compressor, overwrite=True,
    )  # fmt: skip
    arr[...] = data
    meta = ArrayMeta.from_zarray(json.loads((path / ".zarray").read_text()))
    return path, meta


@pytest.mark.parametrize(
    "compressor",
    [numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE), numcodecs.Zlib(1)],
)
def test_decode_reads_zarr_written_chunks(tmp_path, compressor):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(10, 7, 5)).astype("float32")
    path, meta = _zarr_array(tmp_path, data, (4, 3, 5), -9999.0, compressor)
    assert meta.grid == (3, 3, 1)
    for idx in meta.chunk_indices():
        raw = (path / meta.key(idx)).read_bytes()
        got = meta.decode(raw)[tuple(slice(0, s.stop - s.start) for s in meta.chunk_slices(idx))]
        np.testing.assert_array_equal(got, data[meta.chunk_slices(idx)])


def test_encoded_chunks_open_with_zarr_and_xarray(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 1000, size=(9, 6)).astype("uint16")
    path, meta = _zarr_array(tmp_path, np.zeros_like(data), (4, 4), 0, numcodecs.Zlib(3))
    for idx in meta.chunk_indices():
        (path / meta.key(idx)).write_bytes(meta.encode(data[meta.chunk_slices(idx)], idx))
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], data)


def test_edge_chunks_are_padded_deterministically(tmp_path):
    data = np.arange(10, dtype="int16")
    _, meta = _zarr_array(tmp_path, data, (4,), -1, numcodecs.Zlib(1))
    last = meta.encode(data[8:], (2,))
    assert last == meta.encode(data[8:].copy(), (2,))
    padded = meta.decode(last)
    assert padded.tolist() == [8, 9, -1, -1]


def test_keys_and_scalar_arrays(tmp_path):
    ds = xr.Dataset({"crs": ((), np.int16(-32767)), "v": (("t", "y"), np.ones((3, 2)))})
    ds.to_zarr(tmp_path / "s.zarr", zarr_format=2, consolidated=False)
    meta = ArrayMeta.from_zarray(json.loads((tmp_path / "s.zarr/crs/.zarray").read_text()))
    assert meta.shape == () and meta.grid == () and meta.nchunks == 1
    assert meta.key(()) == "0" and list(meta.chunk_indices()) == [()]
    raw = (tmp_path / "s.zarr/crs/0").read_bytes()
    assert meta.decode(raw)[()] == -32767
    v = ArrayMeta.from_zarray(json.loads((tmp_path / "s.zarr/v/.zarray").read_text()))
    assert v.key((0, 0)) == "0.0"


def test_encoding_signature_ignores_shape_only():
    base = {
        "zarr_format": 2, "shape": [10], "chunks": [5], "dtype": "<f4", "fill_value": "NaN",
        "compressor": {"id": "zlib", "level": 1}, "filters": None, "order": "C",
    }  # fmt: skip
    a = ArrayMeta.from_zarray(base)
    b = ArrayMeta.from_zarray({**base, "shape": [7]})
    c = ArrayMeta.from_zarray({**base, "compressor": {"id": "zlib", "level": 2}})
    assert a.encoding_signature() == b.encoding_signature() != c.encoding_signature()
    assert np.isnan(a.fill_scalar())


def test_rejects_zarr_v3_metadata():
    with pytest.raises(ValueError, match="only Zarr v2"):
        ArrayMeta.from_zarray({"zarr_format": 3, "shape": [1]})
