"""Reduce a stored Zarr v2 variable chunk by chunk, straight from its stored bytes.

Through xarray, a masked float variable (Daymet's `_FillValue` -9999, as MPC and pcflow's
staging store it: Zarr v2, Blosc lz4) costs three passes over each decoded chunk before the
reduction sees it: zarr decodes into a buffer and copies that into the output array (67 ms per
134 MB chunk), then xarray's CF mask copies the chunk again and compares every value with the
fill value (another ~80 ms). Here one task per chunk reads the chunk's bytes from the store and
decodes them once, into place, with the array's own codecs (48 ms): `decoded` then masks in
place (18 ms) and serves every reduction (`reductions.run` swaps it in); the spatial mean's
`chunk_sums` instead sums the decoded chunk with the fill value as a second "missing" marker,
so its mask is applied while summing, not materialised.

Only variables that are exactly a stored array, opened lazily and untouched since, qualify:
`stored_array` recognises xarray's own lazy-loading chain (zarr wrapper, full-array indexer,
at most xarray's CF mask, dask chunks equal to the stored chunks) and returns None for anything
else (a subset, a region mask, scale/offset, Zarr v3, Fortran order, ...), which then takes the
xarray path with the same numbers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pcflow.reductions.kernels import FUSED_DTYPES


@dataclass(frozen=True)
class StoredArray:
    """A Zarr v2 array that a lazily opened variable reads unchanged, and the value xarray
    masks in it besides NaN (None: only NaN counts as missing)."""

    array: Any  # zarr.Array
    fill: float | None


# dask names of the arrays `decoded` made -> what they read (so the mean still fuses)
_DECODED: dict[str, StoredArray] = {}


def stored_array(data: Any) -> StoredArray | None:
    """The stored array behind a dask array made by `xr.open_zarr` (or by `decoded`), or None
    if it is anything more than the stored values (with at most xarray's CF mask applied)."""
    graph = getattr(data, "dask", None)
    name = getattr(data, "name", None)
    if graph is None or name is None:
        return None
    layers = set(getattr(graph, "layers", {}))
    if name in _DECODED and layers == {name}:
        return _DECODED[name]
    original = f"original-{name}"
    if layers != {name, original}:
        return None  # something was applied after opening (or the array was inlined)
    node = graph[original]
    if type(node).__name__ == "DataNode":  # dask's task spec wraps plain objects
        node = node.value
    found = _unwrap(node)
    if found is None:
        return None
    array, fills = found
    if not _plain_v2(array, data):
        return None
    dtype = array.dtype
    values = {dtype.type(v) for v in fills if not np.isnan(v)}
    if len(values) > 1:
        return None
    return StoredArray(array, float(values.pop()) if values else None)


def _unwrap(node: Any) -> tuple[Any, list[float]] | None:
    """Walk xarray's lazy array wrappers down to the zarr array; None on any other wrapper."""
    try:
        from xarray.backends.zarr import ZarrArrayWrapper
        from xarray.coding.common import _ElementwiseFunctionArray
        from xarray.coding.variables import _apply_mask
        from xarray.core import indexing
    except ImportError:  # xarray moved its internals: take the xarray path
        return None
    passthrough = (
        indexing.ImplicitToExplicitIndexingAdapter,
        indexing.CopyOnWriteArray,
        indexing.MemoryCachedArray,
    )
    fills: list[float] = []
    for _ in range(16):
        if isinstance(node, passthrough):
            node = node.array
        elif isinstance(node, indexing.LazilyIndexedArray):
            if not all(_whole(k) for k in node.key.tuple):
                return None
            node = node.array
        elif isinstance(node, _ElementwiseFunctionArray):
            func = node.func
            if not (isinstance(func, functools.partial) and func.func is _apply_mask):
                return None  # scale/offset, unsigned, bool, ...: decoding changes values
            if np.dtype(func.keywords.get("dtype")) != np.dtype(node.array.dtype):
                return None
            fills.extend(float(v) for v in np.ravel(list(func.keywords["encoded_fill_values"])))
            node = node.array
        elif isinstance(node, ZarrArrayWrapper):
            return node._array, fills
        else:
            return None
    return None


def _whole(key: Any) -> bool:
    return (
        isinstance(key, slice)
        and key.start in (None, 0)
        and key.step in (None, 1)
        and (key.stop is None)
    )


def _plain_v2(array: Any, data: Any) -> bool:
    """Zarr v2, C order, native float, the dask chunks equal to the stored ones."""
    meta = getattr(array, "metadata", None)
    if type(meta).__name__ != "ArrayV2Metadata" or meta.order != "C":
        return False
    dtype = array.dtype
    if dtype not in FUSED_DTYPES or not dtype.isnative or data.dtype != dtype:
        return False
    if tuple(array.shape) != tuple(data.shape) or len(array.shape) < 3:
        return False
    return _chunk_sizes(array.shape, array.chunks) == tuple(data.chunks)


def _chunk_sizes(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Dask's chunks tuple for a regular chunk grid (the last chunk clipped)."""
    return tuple(
        tuple(min(c, s - i) for i in range(0, s, c)) for s, c in zip(shape, chunks, strict=True)
    )


def read_chunk(array: Any, idx: tuple[int, ...]) -> np.ndarray:
    """One chunk, decoded with the array's codecs and clipped to the array: its bytes are
    read through the array's own store (so a pcflow store still refuses missing chunks)."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    meta = array.metadata
    bounds = zip(idx, array.chunks, array.shape, strict=True)
    region = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in bounds)
    raw = sync((array.store_path / meta.encode_chunk_key(idx)).get(default_buffer_prototype()))
    if raw is None:  # never written: zarr fills it
        return array[region]
    data: Any = raw.as_numpy_array()
    block = np.empty(array.chunks, array.dtype)  # writable, and reused memory (allocator)
    if meta.compressor is not None and not meta.filters:
        meta.compressor.decode(data, out=block)  # straight into place: no second copy
    else:
        if meta.compressor is not None:
            data = meta.compressor.decode(data)
        for codec in reversed(meta.filters or ()):
            data = codec.decode(data)
        block.reshape(-1).view(np.uint8)[:] = np.frombuffer(memoryview(data), dtype=np.uint8)
    clipped = block[tuple(slice(0, r.stop - r.start) for r in region)]
    # an edge chunk clipped along y or x is a strided view: copy it (rare), so every chunk
    # handed on is contiguous and can be masked in place
    return clipped if clipped.flags.c_contiguous else np.ascontiguousarray(clipped)


_MASK_STEP = 1 << 16  # values per masking step: the step and its mask stay in L2 cache


def fill_to_nan(block: np.ndarray, fill: float) -> np.ndarray:
    """Replace `fill` (compared in the block's dtype) with NaN, in place, in cache-sized steps.

    NumPy, not numba: a fresh reduce process pays ~0.6 s to start numba's compiler even for a
    cached kernel, which a 134 MB chunk repays at 11 ms (numba 8 ms, this 18 ms, xarray's mask
    ~90 ms); small jobs would only lose.
    """
    if not block.flags.c_contiguous:
        raise ValueError("fill_to_nan needs a contiguous block (a strided one would be copied)")
    flat = block.reshape(-1)
    marker = block.dtype.type(fill)
    mask = np.empty(min(_MASK_STEP, flat.size), bool)
    for start in range(0, flat.size, _MASK_STEP):
        part = flat[start : start + _MASK_STEP]
        hit = mask[: part.size]
        np.equal(part, marker, out=hit)
        np.copyto(part, np.nan, where=hit)
    return block


def _chunk_graph(stored: StoredArray, kind: str, task: Any, tail: tuple[int, ...] = ()):
    """A one-layer graph with one `task(array, chunk index)` per stored chunk, keyed
    (name, *index, *tail); the array is in the graph once, not in every task."""
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    array = stored.array
    token = tokenize(array.store_path, array.path, array.metadata, stored.fill)
    name, source = f"stored-{kind}-{token}", f"stored-array-{token}"
    dsk: dict[Any, Any] = {source: array}
    grid = tuple(math.ceil(s / c) for s, c in zip(array.shape, array.chunks, strict=True))
    for idx in np.ndindex(*grid):
        dsk[(name, *idx, *tail)] = (task, source, idx)
    return HighLevelGraph.from_collections(name, dsk, dependencies=()), name, grid


def decoded(stored: StoredArray) -> Any:
    """The variable as xarray decodes it (the fill value as NaN), as a dask array with the
    stored chunks: one task per chunk that reads, decodes into place and masks in one pass,
    where xarray's lazy loading copies each chunk twice and builds a boolean mask."""
    import dask.array

    array = stored.array
    graph, name, _ = _chunk_graph(stored, "decoded", _decode_task(stored.fill))
    chunks = _chunk_sizes(array.shape, array.chunks)
    out = dask.array.Array(graph, name, chunks, meta=np.empty((0,) * array.ndim, array.dtype))
    _DECODED[name] = stored
    return out


def read_stored(ds: Any) -> Any:
    """`ds` with every variable that is a plain stored array read through `decoded`."""
    swaps = {}
    for name, var in ds.data_vars.items():
        stored = stored_array(var.data)
        if stored is not None:
            swaps[name] = var.copy(data=decoded(stored))
    return ds.assign(swaps) if swaps else ds


def chunk_sums(stored: StoredArray) -> Any:
    """Dask array of per-chunk (sum, count) partials over the last two axes:
    shape (*lead, y chunks, x chunks, 2), one task per stored chunk, float64."""
    import dask.array

    array = stored.array
    graph, name, grid = _chunk_graph(stored, "sums", _chunk_task(stored.fill), (0,))
    lead = _chunk_sizes(array.shape[:-2], array.chunks[:-2])
    chunks = (*lead, (1,) * grid[-2], (1,) * grid[-1], (2,))
    return dask.array.Array(graph, name, chunks, dtype="float64")


def _reader():
    """read(array, chunk index) -> the decoded chunk: pcflow's `read_chunk` where pcflow can be
    imported, zarr's own read on a worker without it. A closure, so distributed ships it (and
    the tasks built on it) by value."""

    def read(array, idx):
        try:
            from pcflow.reductions.direct import read_chunk

            return read_chunk(array, idx)
        except ImportError:
            bounds = zip(idx, array.chunks, strict=True)
            return array[tuple(slice(i * c, (i + 1) * c) for i, c in bounds)]

    return read


def _decode_task(fill: float | None):
    """Per-chunk task of `decoded`: the chunk read by `_reader`, the fill value made NaN."""
    read = _reader()

    def chunk(array, idx):
        import numpy as np

        block = read(array, idx)
        if fill is None:
            return block
        try:
            from pcflow.reductions.direct import fill_to_nan

            return fill_to_nan(block, fill)
        except ImportError:
            block[block == block.dtype.type(fill)] = np.nan
            return block

    return chunk


def _chunk_task(fill: float | None):
    """Per-chunk task of `chunk_sums`: the chunk read by `_reader`, summed by the kernels'
    per-chunk partials (which fall back to NumPy the same way)."""
    from pcflow.reductions.kernels import _chunk_partials

    read, partials = _reader(), _chunk_partials(fill)

    def sums(array, idx):
        return partials(read(array, idx))

    return sums
