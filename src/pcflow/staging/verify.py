"""Check a written store before anyone may call it complete.

* every expected chunk object exists (none unwritten), and no chunk the source lacked;
* a deterministic sample of chunks: downloaded MD5 equals the MD5 recorded when written;
  for re-encoded arrays the first sampled chunk is also decoded and compared value by value
  with the source (with raw Zarr access: its parts inside the first and last source chunk it
  overlaps, so that verification reads two source chunks per array, not all of them);
* the store opens through its consolidated metadata (a fresh filesystem, no listing cache) with
  every array at its planned shape and the planned coordinates.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import numpy as np
import xarray as xr

from pcflow.staging.codec import ArrayMeta, md5_hex
from pcflow.staging.plan import VarPlan
from pcflow.staging.retry import StagingError, retry_sync


def sample_indices(nchunks: int, k: int) -> list[int]:
    """First, last and evenly spread chunks: deterministic, so reruns check the same ones."""
    if nchunks <= k:
        return list(range(nchunks))
    return sorted({round(i * (nchunks - 1) / (k - 1)) for i in range(k)})


def array_checksum(chunk_md5s: dict[str, str | None]) -> str:
    """One digest per array from its chunk digests (absent chunks count as absent)."""
    h = hashlib.sha256()
    for key in sorted(chunk_md5s):
        h.update(f"{key} {chunk_md5s[key] or '-'}\n".encode())
    return h.hexdigest()


def chunk_md5s(markers: dict[str, dict[str, Any]], var: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for rid, marker in markers.items():
        if rid.rsplit("/", 1)[0] == var:
            out.update(marker["chunks"])
    return out


def verify_store(
    writer: Any,
    plans: dict[str, VarPlan],
    metas: dict[str, ArrayMeta],
    markers: dict[str, dict[str, Any]],
    source: Any,
    sample: int,
    expected_coords: dict[str, np.ndarray],
    url: str,
    storage_options: dict[str, Any],
) -> dict[str, Any]:
    """Raise StagingError on any defect; return {'sampled': n, 'coords': {...md5s}}."""
    listing = {p[len(writer.root) + 1 :] for p in writer.find(writer.root)}
    sampled = 0
    samples: list[tuple[str, tuple[int, ...], str | None, list[tuple[slice, ...]]]] = []
    for name, plan in plans.items():
        meta = metas[name]
        recorded = chunk_md5s(markers, name)
        expected = {meta.key(i) for i in meta.chunk_indices()}
        unrecorded = expected - set(recorded)
        if unrecorded:
            raise StagingError(
                f"{name}: {len(unrecorded)} chunks have no finished region (e.g. "
                f"{sorted(unrecorded)[0]}) — re-run staging to finish the store"
            )
        present = {
            k[len(name) + 1 :] for k in listing if k.startswith(f"{name}/") and "/." not in f"/{k}"
        }
        present = {k for k in present if not k.startswith(".")}
        missing = [k for k in expected if recorded.get(k) and k not in present]
        if missing:
            raise StagingError(
                f"{name}: {len(missing)} written chunks are missing, e.g. {missing[0]}"
            )
        stray = [k for k in present if k in expected and recorded.get(k) is None]
        if stray:
            raise StagingError(f"{name}: chunk {stray[0]} exists but the source had none")
        flat = sample_indices(meta.nchunks, sample)
        for n, f in enumerate(flat):
            idx = meta.chunk_index(f)
            # One re-encoded chunk per array is also compared value by value with the source.
            check = n == 0 and plan.mode == "encode" and source is not None
            windows = (
                _check_windows(source, name, meta.chunk_slices(idx), plan.offset) if check else []
            )
            samples.append((name, idx, recorded.get(meta.key(idx)), windows))

    for name in plans:
        sampled += _check_samples(writer, metas[name], plans[name].offset, source,
                                  [s for s in samples if s[0] == name])  # fmt: skip

    coords_md5 = {}

    def open_and_load_coords() -> xr.Dataset:
        ds = xr.open_zarr(url, consolidated=True, storage_options=storage_options, chunks={})
        for name in expected_coords:
            ds[name].load()
        return ds

    try:
        ds = retry_sync(open_and_load_coords, f"opening {url}")
    except Exception as exc:  # noqa: BLE001
        raise StagingError(
            f"staged store {url} does not open: {type(exc).__name__}: {exc}"
        ) from exc
    with ds:
        for name, plan in plans.items():
            if name not in ds.variables:
                raise StagingError(f"staged store {url} lacks variable {name} after consolidation")
            if tuple(ds[name].shape) != tuple(plan.shape):
                raise StagingError(f"{name}: staged shape {ds[name].shape} != planned {plan.shape}")
        for name, values in expected_coords.items():
            got = ds[name].values
            if got.shape != values.shape or not np.array_equal(got, values):
                raise StagingError(
                    f"coordinate {name} of the staged store differs from the source subset"
                )
            coords_md5[name] = hashlib.md5(
                np.ascontiguousarray(got).tobytes(), usedforsecurity=False
            ).hexdigest()
    return {"sampled_chunks": sampled, "coords_md5": coords_md5}


def _check_windows(
    source: Any, name: str, region: tuple[slice, ...], offset: tuple[int, ...]
) -> list[tuple[slice, ...]]:
    """Parts of a sampled chunk to compare with the source.

    With raw Zarr chunk access: the parts inside the first and the last source chunk the sampled
    chunk overlaps (a time-contiguous chunk overlaps many; reading them all again would re-read
    a good share of the source). The last one exercises the offset arithmetic away from the
    subset's origin. Other sources: the whole chunk.
    """
    window = getattr(source, "chunk_window", None)
    if window is None or not region:
        return [region]
    first = window(name, region, offset)
    last = window(name, region, offset, last=True)
    return [first] if last == first else [first, last]


def _check_samples(
    writer: Any,
    meta: ArrayMeta,
    offset: tuple[int, ...],
    source: Any,
    samples: list[tuple[str, tuple[int, ...], str | None, list[tuple[slice, ...]]]],
) -> int:
    """One array's sampled chunks: MD5 as recorded; value windows equal to the source.

    The array's sampled chunks and source windows are read together (one round of requests;
    one array at a time, so verification holds a few chunks, not all arrays' samples)."""
    if not samples:
        return 0
    name = samples[0][0]
    blobs = [writer.blob(f"{name}/{meta.key(idx)}") for _, idx, _, _ in samples]
    reads = [(name, window, offset) for _, _, _, windows in samples for window in windows]
    datas, refs = writer.sync(_read_all, writer.blobs, blobs, source, reads)
    refs_iter = iter(refs)
    for (_, idx, want, windows), data in zip(samples, datas, strict=True):
        key = meta.key(idx)
        got = md5_hex(data) if data is not None else None
        if got != want:
            raise StagingError(f"{name}/{key}: checksum {got} differs from written {want}")
        region = meta.chunk_slices(idx)
        decoded = meta.decode(data) if windows and data is not None else None
        for window in windows:
            ref = next(refs_iter)
            if decoded is None:
                continue
            stored = decoded[
                tuple(slice(w.start - r.start, w.stop - r.start)
                      for w, r in zip(window, region, strict=True))
            ]  # fmt: skip
            if not np.array_equal(
                np.asarray(stored),
                np.asarray(ref, dtype=meta.np_dtype),
                equal_nan=stored.dtype.kind == "f",
            ):
                raise StagingError(f"{name}/{key}: stored values differ from the source")
    return len(samples)


async def _read_all(
    blobs_api: Any, names: list[str], source: Any, reads: list[tuple[str, tuple, tuple]]
) -> tuple[list[bytes | None], list[Any]]:
    datas = asyncio.gather(*(blobs_api.get(n) for n in names))
    refs = asyncio.gather(*(source.read_block(v, w, o) for v, w, o in reads))
    return list(await datas), list(await refs)
