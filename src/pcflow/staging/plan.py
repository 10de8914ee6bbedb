"""What to write: the subset (bbox/time/variables → index ranges), the chunking, the regions.

Pure functions over coordinates and sizes, so they can be unit tested without storage.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pcflow.config import defaults as config_defaults
from pcflow.staging.retry import StagingError

_staging_defaults = config_defaults("staging")

# The schema's defaults (pcflow/schema.yaml is the one place they are written).
DEFAULT_CHUNK_MB = float(_staging_defaults["chunk_mb"])
DEFAULT_REGION_MB = float(_staging_defaults["region_mb"])
# Re-encoded chunks are written in vertical strips this many source chunks wide (see
# strip_order). Part of the plan's fingerprint: a store begun with another order is rewritten.
STRIP_SOURCE_CHUNKS = 4
CHUNK_ORDER = f"strips-{STRIP_SOURCE_CHUNKS}"
TIME_NAMES = ("time", "t")
X_NAMES = ("x", "lon", "longitude")
Y_NAMES = ("y", "lat", "latitude")


# -- subset ---------------------------------------------------------------------------------------


def parse_datetime(value: str | None) -> tuple[str | None, str | None]:
    """'a/b', 'a/..', '../b' or a single instant → (start, end) strings (None = open)."""
    if not value:
        return None, None
    parts = str(value).split("/")
    if len(parts) == 1:
        parts = [parts[0], parts[0]]
    if len(parts) != 2:
        raise StagingError(
            f"datetime {value!r} is not 'start/end' — use e.g. 2019-01-01/2020-12-31"
        )
    out = []
    for p in parts:
        p = p.strip()
        out.append(None if p in ("", "..") else p)
    return out[0], out[1]


def _naive_utc(text: str) -> str | pd.Timestamp:
    """Date-only strings stay strings (pandas then includes the whole day); instants → naive UTC."""
    if len(text) <= 10:
        return text
    ts = pd.Timestamp(text)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def time_slice(index: pd.Index, datetime: str | None) -> slice:
    """Positions of `index` (datetime-like, ascending) inside the requested interval."""
    start, end = parse_datetime(datetime)
    if start is None and end is None:
        return slice(0, len(index))
    idx = pd.DatetimeIndex(index)
    sl = idx.slice_indexer(_naive_utc(start) if start else None, _naive_utc(end) if end else None)
    s, e, _ = sl.indices(len(idx))
    if e <= s:
        raise StagingError(
            f"datetime {datetime} selects no time steps (data covers {idx[0]} .. {idx[-1]})"
        )
    return slice(s, e)


def coord_slice(values: np.ndarray, lo: float, hi: float, name: str) -> slice:
    """Positions whose cell CENTRES lie in [lo, hi] (coords monotonic, either direction).

    Centres, not touching cells: reductions keep the cells whose centres fall in the region,
    so a cell that merely touches the envelope would be read, written and then masked out.
    """
    values = np.asarray(values, dtype="float64")
    if values.size == 0:
        raise StagingError(f"coordinate {name} is empty")
    inside = np.nonzero((values >= lo) & (values <= hi))[0]
    if inside.size == 0:
        raise StagingError(
            f"bbox does not overlap the data along {name} "
            f"(requested {lo:.6g}..{hi:.6g}, data {values.min():.6g}..{values.max():.6g})"
        )
    return slice(int(inside[0]), int(inside[-1]) + 1)


def regular_axis(extent: list[float], step: float) -> np.ndarray:
    """Cell centres of a regular axis from STAC `cube:dimensions` (extent [min, max], step;
    a negative step runs from max to min, like Daymet's y)."""
    first, last = sorted(float(v) for v in extent)
    n = int(round((last - first) / abs(step))) + 1
    return last - abs(step) * np.arange(n) if step < 0 else first + abs(step) * np.arange(n)


def bbox_window(
    bbox: list[float], crs: Any, x: np.ndarray, y: np.ndarray, names: tuple[str, str] = ("x", "y")
) -> tuple[slice, slice]:
    """THE native-grid window of a lon/lat bbox: (x slice, y slice) of the cells whose centres
    lie in the bbox's envelope in the grid's CRS. Staging (subset_indexers) and the dry-run plan
    (pcflow.estimate) both call this, so what is planned is what is staged."""
    xmin, ymin, xmax, ymax = bbox_in_crs(bbox, crs)
    return coord_slice(x, xmin, xmax, names[0]), coord_slice(y, ymin, ymax, names[1])


def bbox_in_crs(bbox: list[float], crs: Any) -> tuple[float, float, float, float]:
    """A lon/lat bbox as (xmin, ymin, xmax, ymax) in `crs` (edges densified)."""
    import pyproj

    target = pyproj.CRS.from_user_input(crs)
    if target.equals(pyproj.CRS.from_epsg(4326)) or target.is_geographic:
        return tuple(float(v) for v in bbox)  # type: ignore[return-value]
    tr = pyproj.Transformer.from_crs("EPSG:4326", target, always_xy=True)
    return tuple(float(v) for v in tr.transform_bounds(*bbox, densify_pts=21))  # type: ignore[return-value]


def find_dim(dims: list[str] | tuple[str, ...], names: tuple[str, ...]) -> str | None:
    for n in names:
        if n in dims:
            return n
    return None


def dataset_crs(ds: Any) -> Any | None:
    """The CRS of an xarray Dataset from its CF grid-mapping variable (or spatial_ref), if any."""
    import pyproj

    names = {v.attrs.get("grid_mapping") for v in ds.data_vars.values()} - {None}
    names |= {"spatial_ref"} & set(ds.variables)
    for name in sorted(n for n in names if n in ds.variables):
        attrs = ds[name].attrs
        try:
            if "crs_wkt" in attrs:
                return pyproj.CRS.from_wkt(attrs["crs_wkt"])
            if "spatial_ref" in attrs:
                return pyproj.CRS.from_wkt(attrs["spatial_ref"])
            return pyproj.CRS.from_json(
                _cf_crs_json(json.dumps(dict(attrs), sort_keys=True, default=_jsonable))
            )
        except pyproj.exceptions.CRSError:
            continue
    return None


def _jsonable(value: Any) -> Any:
    """CF attributes may hold numpy scalars/arrays (e.g. standard_parallel)."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


@functools.lru_cache(maxsize=32)
def _cf_crs_json(attrs_json: str) -> str:
    """PROJ JSON of a CRS from CF grid-mapping attributes, built once per distinct attributes:
    CRS.from_cf takes ~0.6 s (it searches PROJ's database for the datum) and staging asks for
    the dataset's CRS several times (subset window, grid summary, region check), while
    CRS.from_json of the result takes 0.3 ms and gives the identical CRS."""
    import pyproj

    return pyproj.CRS.from_cf(json.loads(attrs_json)).to_json()


def subset_indexers(ds: Any, bbox: list[float] | None, datetime: str | None) -> dict[str, slice]:
    """Index slices (isel) selecting bbox (lon/lat, reprojected to the data's CRS) and time."""
    dims = list(ds.dims)
    sel: dict[str, slice] = {}
    tdim = find_dim(dims, TIME_NAMES)
    if tdim is not None and datetime:
        sel[tdim] = time_slice(ds.indexes[tdim], datetime)
    xdim, ydim = find_dim(dims, X_NAMES), find_dim(dims, Y_NAMES)
    if bbox and xdim and ydim:
        crs = dataset_crs(ds)
        if crs is None and xdim in ("x",):
            raise StagingError(
                "dataset has projected x/y but no grid-mapping variable: cannot place the bbox — "
                "drop bbox or use a dataset with CF grid_mapping"
            )
        sel[xdim], sel[ydim] = bbox_window(
            bbox, crs or "EPSG:4326", ds[xdim].values, ds[ydim].values, (xdim, ydim)
        )
    return sel


# -- chunking -------------------------------------------------------------------------------------


def aligned(start: int, stop: int, size: int, chunk: int) -> bool:
    """Does [start, stop) of a dimension of `size` start and end on `chunk` boundaries?"""
    return start % chunk == 0 and (stop % chunk == 0 or stop == size)


def plan_chunks(
    dims: tuple[str, ...],
    shape: tuple[int, ...],
    itemsize: int,
    chunk_mb: float = DEFAULT_CHUNK_MB,
    time_series: bool = True,
) -> tuple[int, ...]:
    """Chunk shape of about `chunk_mb` (never more), time-contiguous when `time_series`.

    time_series: the whole time axis in each chunk (a pixel's series is one read), with square-ish
    spatial tiles shrunk to fit; only if a single pixel's series is too big is time split.
    Otherwise: one time step deep (or what fits), full spatial extent as far as it fits.
    """
    if not shape:
        return ()
    budget = max(1, int(chunk_mb * 1e6 // itemsize))  # elements per chunk
    tdim = find_dim(dims, TIME_NAMES)
    chunks = list(shape)
    t = dims.index(tdim) if tdim else None
    others = [i for i in range(len(shape)) if i != t]
    if t is not None and time_series:
        chunks[t] = min(shape[t], budget)
        per_step = max(1, budget // chunks[t])
        _fit(chunks, shape, others, per_step)
    else:
        if t is not None:
            spatial = math.prod(shape[i] for i in others) or 1
            chunks[t] = max(1, min(shape[t], budget // spatial))
            per_step = max(1, budget // chunks[t])
        else:
            per_step = budget
        _fit(chunks, shape, others, per_step)
    return tuple(max(1, c) for c in chunks)


def follow_data_chunks(
    coord_dims: tuple[str, ...], data_chunks: dict[str, int]
) -> tuple[int, ...] | None:
    """Chunks of a non-index coordinate (e.g. Daymet's 2-D lat/lon) taken from the data
    variables' chunks along the same dimensions, or None if a dimension has no data chunking.

    xarray (and dask) need one chunking per dimension across a Dataset: a coordinate planned on
    its own (other itemsize, fewer dims) gets other chunks, and every reduction then fails with
    "Object has inconsistent chunks along dimension y".
    """
    if not coord_dims or any(d not in data_chunks for d in coord_dims):
        return None
    return tuple(data_chunks[d] for d in coord_dims)


def _fit(chunks: list[int], shape: tuple[int, ...], axes: list[int], budget: int) -> None:
    """Shrink the given axes evenly (largest first) until their product fits `budget`."""
    for i in axes:
        chunks[i] = shape[i]
    while math.prod(chunks[i] for i in axes) > budget:
        i = max(axes, key=lambda a: chunks[a])
        over = math.prod(chunks[a] for a in axes) / budget
        # Square-ish tiles: shrink the largest axis by at most the overshoot's square root.
        chunks[i] = max(1, min(chunks[i] - 1, math.floor(chunks[i] / max(1.0001, math.sqrt(over)))))


# -- variables and regions ------------------------------------------------------------------------


@dataclass
class VarPlan:
    """How one variable gets into the target store."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    mode: str  # "copy" (chunk bytes as they are) | "encode" (read values, write new chunks)
    offset: tuple[int, ...] = ()  # start of the subset in source index space (zarr sources)
    reason: str = ""
    encoding: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def to_json(self) -> dict[str, Any]:
        return {
            "dims": list(self.dims),
            "shape": list(self.shape),
            "chunks": list(self.chunks),
            "dtype": self.dtype,
            "mode": self.mode,
            "offset": list(self.offset),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Region:
    """A run of consecutive chunks of one variable, in its write order: the unit of resumption."""

    var: str
    index: int
    first: int  # position in the variable's write order (C order, or strip_order)
    count: int

    @property
    def id(self) -> str:
        return f"{self.var}/{self.index}"


def regions_for(var: str, nchunks: int, chunk_nbytes: int, region_mb: float) -> list[Region]:
    per = max(1, int(region_mb * 1e6 // max(chunk_nbytes, 1)))
    return [
        Region(var, k, first, min(per, nchunks - first))
        for k, first in enumerate(range(0, nchunks, per))
    ]


# -- the order chunks are written in --------------------------------------------------------------


def strip_order(
    grid: tuple[int, ...],
    chunks: tuple[int, ...],
    offset: tuple[int, ...],
    src_chunks: tuple[int, ...],
    strip: int = STRIP_SOURCE_CHUNKS,
) -> list[tuple[int, ...]]:
    """Target chunk indices in write order: C order inside vertical strips of the last dimension,
    each `strip` source chunks wide.

    A decoded source chunk is kept until its last target chunk is written. In plain C order
    the target chunks sharing a source chunk are a whole row of the dataset apart, so the kept
    chunks grow with the dataset's width; inside a strip they are a strip's width apart, so the
    kept set is bounded by the strip (`strip_working_set`), whatever the dataset's size. The
    price is reading the source column at a strip's edge twice when a target chunk straddles it.
    """
    if not grid:
        return [()]
    last = len(grid) - 1
    width = src_chunks[last] * strip

    def key(idx: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        return ((offset[last] + idx[last] * chunks[last]) // width, idx)

    return sorted(itertools.product(*(range(n) for n in grid)), key=key)


def strip_working_set(
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    offset: tuple[int, ...],
    src_chunks: tuple[int, ...],
    strip: int = STRIP_SOURCE_CHUNKS,
) -> int:
    """Source chunks held at once while writing in `strip_order`: those under one row of target
    chunks of a strip (plus the column a chunk at the strip's edge straddles)."""
    if not shape:
        return 1
    count = 1
    for d, (n, c, o, sc) in enumerate(zip(shape, chunks, offset, src_chunks, strict=True)):
        in_subset = (o + n - 1) // sc - o // sc + 1  # source chunks the whole subset spans
        per_chunk = -(-(min(c, n) - 1) // sc) + 1  # most a single target chunk can span
        count *= min(in_subset, max(strip + 1, per_chunk) if d == len(shape) - 1 else per_chunk)
    return count


def fingerprint(doc: Any) -> str:
    """A stable hash of a JSON-able plan."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
