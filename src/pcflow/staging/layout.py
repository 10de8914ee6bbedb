"""The target's layout: what each variable becomes (chunks, encoding, copy or re-encode) and
the data plan whose fingerprint names a store's contents."""

from __future__ import annotations

from typing import Any

import numcodecs
import numpy as np
import xarray as xr

from pcflow.staging import plan as planmod
from pcflow.staging.plan import VarPlan
from pcflow.staging.source import OpenedSource
from pcflow.staging.writer import FORMAT

ZARR_FORMAT = 2  # MPC's convention: Zarr v2 + consolidated metadata, read with consolidated=True
ENCODING_KEYS = (
    "dtype", "_FillValue", "missing_value", "scale_factor", "add_offset", "units", "calendar",
    "compressors", "filters",
)  # fmt: skip


def encoding_of(var: xr.Variable) -> dict[str, Any]:
    """The parts of a variable's source encoding that the target keeps."""
    return {k: v for k, v in var.encoding.items() if k in ENCODING_KEYS}


def plan_variables(src: OpenedSource, cfg: dict[str, Any]) -> dict[str, VarPlan]:
    """A VarPlan for every data variable and non-index coordinate of the subset.

    Chunk objects are copied unchanged where the subset is aligned with the source's chunks
    (and staging.copy_aligned allows); otherwise the variable is re-encoded in planned chunks.
    """
    sub, raw = src.sub, src.raw
    plans: dict[str, VarPlan] = {}
    index_names = set(sub.indexes)
    for name in list(sub.data_vars) + [c for c in sub.coords if c not in index_names]:
        v = sub[name].variable
        enc = encoding_of(v)
        offset = tuple(src.indexers.get(d, slice(0, None)).start or 0 for d in v.dims)
        src_meta = raw.meta.get(name) if raw else None
        mode, chunks, reason = "encode", None, ""
        if src_meta is not None and cfg["copy_aligned"]:
            if all(
                planmod.aligned(o, o + n, s, c)
                for o, n, s, c in zip(
                    offset, v.shape, src_meta.shape, src_meta.chunks, strict=False
                )
            ):
                mode, chunks = "copy", tuple(src_meta.chunks)
                reason = "subset aligned with source chunks: chunk objects copied unchanged"
        if chunks is None:
            itemsize = np.dtype(enc.get("dtype", v.dtype)).itemsize
            chunks = planmod.plan_chunks(
                v.dims, v.shape, itemsize, cfg["chunk_mb"], cfg["time_series_chunks"]
            )
            reason = f"planned: <= {cfg['chunk_mb']:g} MB per chunk, " + (
                "time-contiguous" if cfg["time_series_chunks"] else "spatially contiguous"
            )
        if not enc.get("compressors") and "compressors" not in enc:
            enc["compressors"] = (
                numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE),
            )
        stored = np.dtype(enc.get("dtype", v.dtype))
        plans[name] = VarPlan(
            name, tuple(v.dims), tuple(v.shape), tuple(chunks), stored.str, mode, offset, reason,
            enc,
        )  # fmt: skip
    _chunk_coords_like_data(plans, set(sub.coords))
    return plans


def data_plan(src: OpenedSource, plans: dict[str, VarPlan]) -> dict[str, Any]:
    """Everything that decides the stored bytes; its fingerprint identifies the store."""
    return {
        "format": FORMAT,
        "zarr_format": ZARR_FORMAT,
        "source": src.source_id,
        "indexers": {d: [s.start, s.stop] for d, s in src.indexers.items()},
        "variables": {
            n: {**p.to_json(), "encoding": _enc_json(p.encoding)} for n, p in plans.items()
        },
        "coords": {d: _coord_summary(src.sub[d]) for d in src.index_names},
        "chunk_order": planmod.CHUNK_ORDER,
    }


def _enc_json(enc: dict[str, Any]) -> dict[str, Any]:
    """JSON-able form of an encoding dict (codecs as their configs) for fingerprints."""
    out = {}
    for k, v in sorted(enc.items()):
        if isinstance(v, (tuple, list)):
            out[k] = [c.get_config() if hasattr(c, "get_config") else str(c) for c in v]
        elif hasattr(v, "get_config"):
            out[k] = v.get_config()
        elif isinstance(v, (np.generic, np.dtype)):
            out[k] = str(v)
        else:
            out[k] = v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
    return out


def _chunk_coords_like_data(plans: dict[str, VarPlan], coord_names: set[str]) -> None:
    """Non-index coordinates take the data variables' chunks along their dimensions (re-encoded
    when their own copy or planned chunks differ): xarray needs one chunking per dimension."""
    data_chunks: dict[str, int] = {}
    for p in plans.values():
        if p.name not in coord_names:
            for d, c in zip(p.dims, p.chunks, strict=False):
                data_chunks.setdefault(d, c)
    for p in plans.values():
        if p.name not in coord_names:
            continue
        want = planmod.follow_data_chunks(p.dims, data_chunks)
        if want is not None and tuple(p.chunks) != want:
            p.chunks, p.mode = want, "encode"
            p.reason = "chunked like the data variables along " + ", ".join(p.dims)


def _coord_summary(coord: xr.DataArray) -> dict[str, Any]:
    values = coord.values
    out: dict[str, Any] = {"size": int(values.size)}
    if values.size:
        first, last = values[0], values[-1]
        if np.issubdtype(values.dtype, np.datetime64):
            first, last = str(first), str(last)
        else:
            first, last = float(first), float(last)
        out.update({"first": first, "last": last})
    return out


def template(sub: xr.Dataset, plans: dict[str, VarPlan]) -> tuple[xr.Dataset, dict[str, Any]]:
    """Placeholders (lazy zeros) for every planned variable + real index coordinates."""
    import dask.array

    data_vars, coords, encoding = {}, {}, {}
    for name, p in plans.items():
        v = sub[name].variable
        chunks = p.chunks if p.chunks else ()
        data = dask.array.zeros(v.shape, dtype=v.dtype, chunks=chunks or -1)
        var = xr.Variable(v.dims, data, attrs=dict(v.attrs))
        (coords if name in sub.coords else data_vars)[name] = var
        encoding[name] = {**p.encoding, "chunks": tuple(p.chunks)}
    for d in sub.dims:
        if d in sub.indexes:
            coords[d] = sub[d].variable.to_base_variable().load()
            enc = encoding_of(sub[d].variable)
            n = sub.sizes[d]
            src_chunks = sub[d].encoding.get("chunks") or (n,)
            encoding[d] = {**enc, "chunks": (min(n, src_chunks[0]),)}
    tmpl = xr.Dataset(data_vars, coords=coords, attrs=dict(sub.attrs))
    return tmpl, encoding
