"""Zarr v2 chunk bytes: keys, encode and decode, straight from an array's `.zarray` JSON.

Staging writes chunks itself (instead of through zarr's array API) so that it can run many
uploads concurrently, checksum exactly the bytes it uploaded, and copy compressed chunks byte
for byte when nothing needs re-encoding. Only Zarr v2 metadata is handled here: that is what
MPC's Zarr stores use and what pcflow writes.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numcodecs
import numpy as np


@dataclass(frozen=True)
class ArrayMeta:
    """The parts of a `.zarray` document that decide chunk keys and chunk bytes."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    compressor: dict[str, Any] | None
    filters: tuple[dict[str, Any], ...]
    fill_value: Any
    order: str = "C"
    separator: str = "."

    @classmethod
    def from_zarray(cls, doc: dict[str, Any]) -> ArrayMeta:
        if doc.get("zarr_format") != 2:
            raise ValueError(
                f"only Zarr v2 arrays are supported here, got {doc.get('zarr_format')}"
            )
        return cls(
            shape=tuple(doc["shape"]),
            chunks=tuple(doc["chunks"]),
            dtype=doc["dtype"] if isinstance(doc["dtype"], str) else str(doc["dtype"]),
            compressor=doc.get("compressor"),
            filters=tuple(doc.get("filters") or ()),
            fill_value=doc.get("fill_value"),
            order=doc.get("order", "C"),
            separator=doc.get("dimension_separator", "."),
        )

    def encoding_signature(self) -> dict[str, Any]:
        """Everything but the shape: equal signatures mean interchangeable chunks."""
        return {
            "chunks": list(self.chunks),
            "dtype": self.dtype,
            "compressor": self.compressor,
            "filters": list(self.filters),
            "fill_value": _fill_json(self.fill_value),
            "order": self.order,
            "separator": self.separator,
        }

    @cached_property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @cached_property
    def grid(self) -> tuple[int, ...]:
        """Number of chunks along each dimension (1 for a 0-d array)."""
        return tuple(
            math.ceil(s / c) if c else 1 for s, c in zip(self.shape, self.chunks, strict=False)
        )

    @property
    def nchunks(self) -> int:
        return math.prod(self.grid)

    @property
    def chunk_nbytes(self) -> int:
        return math.prod(self.chunks) * self.np_dtype.itemsize

    def key(self, idx: tuple[int, ...]) -> str:
        return self.separator.join(str(i) for i in idx) if idx else "0"

    def chunk_index(self, flat: int) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(flat, self.grid)) if self.shape else ()

    def chunk_indices(self) -> Iterator[tuple[int, ...]]:
        return itertools.product(*(range(n) for n in self.grid))

    def chunk_slices(self, idx: tuple[int, ...]) -> tuple[slice, ...]:
        """The array region a chunk covers, clipped to the array shape."""
        return tuple(
            slice(i * c, min((i + 1) * c, s))
            for i, c, s in zip(idx, self.chunks, self.shape, strict=False)
        )

    @cached_property
    def _codecs(self) -> tuple[Any, list[Any]]:
        comp = numcodecs.get_codec(dict(self.compressor)) if self.compressor else None
        filters = [numcodecs.get_codec(dict(f)) for f in self.filters]
        return comp, filters

    def fill_scalar(self) -> Any:
        value = self.fill_value
        if value is None:
            return 0
        if isinstance(value, str):  # "NaN", "Infinity", "-Infinity" in v2 JSON
            return float(value.replace("Infinity", "inf"))
        return value

    def encode(self, block: np.ndarray, idx: tuple[int, ...]) -> bytes:
        """Chunk bytes for `block` (the chunk's region, unpadded) at chunk index `idx`."""
        block = np.asarray(block, dtype=self.np_dtype)
        full = tuple(self.chunks) if self.shape else ()
        if block.shape != full:
            # Edge chunks are stored full size; pad with the fill value so bytes are deterministic.
            padded = np.full(full, self.fill_scalar(), dtype=self.np_dtype)
            padded[tuple(slice(0, n) for n in block.shape)] = block
            block = padded
        arr = np.ascontiguousarray(block) if self.order == "C" else np.asfortranarray(block)
        comp, filters = self._codecs
        data: Any = arr
        for f in filters:
            data = f.encode(data)
        if comp is not None:
            return bytes(comp.encode(data))
        return np.ascontiguousarray(data).tobytes(order="A")

    def decode(self, raw: bytes) -> np.ndarray:
        """A full (padded) chunk array from its stored bytes."""
        comp, filters = self._codecs
        data: Any = comp.decode(raw) if comp is not None else raw
        for f in reversed(filters):
            data = f.decode(data)
        arr = np.frombuffer(data, dtype=self.np_dtype) if not isinstance(data, np.ndarray) else data
        arr = arr.view(self.np_dtype) if arr.dtype != self.np_dtype else arr
        full = tuple(self.chunks) if self.shape else ()
        return arr.reshape(full, order=self.order)

    def chunk_buffer(self, idx: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """A full-size chunk array to fill in place, and its view over the chunk's region.

        Edge chunks are pre-filled with the fill value (what `encode` would pad with), so the
        filled buffer goes to `encode` as it is: no concatenation, no padding copy.
        """
        full = tuple(self.chunks)
        region = tuple(s.stop - s.start for s in self.chunk_slices(idx))
        if region == full:
            buf = np.empty(full, dtype=self.np_dtype, order=self.order)
            return buf, buf
        buf = np.full(full, self.fill_scalar(), dtype=self.np_dtype, order=self.order)
        return buf, buf[tuple(slice(0, n) for n in region)]

    def empty_chunk(self) -> np.ndarray:
        full = tuple(self.chunks) if self.shape else ()
        return np.full(full, self.fill_scalar(), dtype=self.np_dtype)


def _fill_json(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
