"""stage(): discovered data → a verified Zarr v2 store in the target container + its manifest."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from typing import Any

import dask.array
import numcodecs
import numpy as np
import xarray as xr

from pcflow import storage
from pcflow.config import defaults as config_defaults
from pcflow.staging import distributed, memory, stac_collection
from pcflow.staging import plan as planmod
from pcflow.staging.codec import ArrayMeta
from pcflow.staging.fastcopy import copy_chunk
from pcflow.staging.lease import StoreLease
from pcflow.staging.plan import Region, VarPlan
from pcflow.staging.retry import StagingError, retry_async, short_sdk_retries
from pcflow.staging.verify import array_checksum, chunk_md5s, verify_store
from pcflow.staging.writer import FORMAT, STATE, StoreWriter
from pcflow.staging.xarray_source import DatasetSource
from pcflow.staging.zarr_source import SourceAuth, ZarrV2Source, open_dataset

PROVENANCE_ATTR = "pcflow_provenance"
ZARR_FORMAT = 2  # MPC's convention: Zarr v2 + consolidated metadata, read with consolidated=True
ENCODING_KEYS = (
    "dtype", "_FillValue", "missing_value", "scale_factor", "add_offset", "units", "calendar",
    "compressors", "filters",
)  # fmt: skip


def _settings(staging_cfg: dict[str, Any]) -> dict[str, Any]:
    # The schema's defaults under what is given (a validated config already holds them).
    cfg = {**config_defaults("staging"), **staging_cfg}
    return {
        "chunk_mb": float(cfg["chunk_mb"]),
        "concurrency": int(cfg["concurrency"]),
        # No schema default: the rule passes its `threads`; library callers get the CPU count.
        "threads": int(cfg.get("threads") or os.cpu_count() or 2),
        "time_series_chunks": bool(cfg["time_series_chunks"]),
        "region_mb": float(cfg["region_mb"]),
        "copy_aligned": bool(cfg["copy_aligned"]),
        "server_side_copy": bool(cfg["server_side_copy"]),
        "verify_sample": int(cfg["verify_sample"]),
        "memory_mb": float(cfg["memory_mb"]),
        "cluster": cfg["cluster"],
        "task_mb": float(cfg["task_mb"]),
        "max_area_deg2": float(cfg["max_area_deg2"]),  # checked by config validation
    }


def _encoding_of(var: xr.Variable) -> dict[str, Any]:
    return {k: v for k, v in var.encoding.items() if k in ENCODING_KEYS}


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


def _select_variables(ds: xr.Dataset, name: str, wanted: list[str] | None) -> list[str]:
    if not wanted:
        wanted = [v for v in ds.data_vars if ds[v].ndim > 0]
    unknown = [v for v in wanted if v not in ds.data_vars]
    if unknown:
        raise StagingError(
            f"datasets.{name}.variables {unknown} are not in the source — use some of: "
            + ", ".join(sorted(ds.data_vars))
        )
    keep = list(wanted)
    for v in wanted:  # grid-mapping variables travel with the data (CRS for readers)
        gm = ds[v].attrs.get("grid_mapping")
        if gm and gm in ds.variables and gm not in keep:
            keep.append(gm)
    return keep


def _template(sub: xr.Dataset, plans: dict[str, VarPlan]) -> tuple[xr.Dataset, dict[str, Any]]:
    """Placeholders (lazy zeros) for every planned variable + real index coordinates."""
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
            enc = _encoding_of(sub[d].variable)
            n = sub.sizes[d]
            src_chunks = sub[d].encoding.get("chunks") or (n,)
            encoding[d] = {**enc, "chunks": (min(n, src_chunks[0]),)}
    tmpl = xr.Dataset(data_vars, coords=coords, attrs=dict(sub.attrs))
    return tmpl, encoding


# Short SDK retries around the whole call: staging's own retries handle transient faults.
@short_sdk_retries()
def stage(
    items_doc: dict[str, Any],
    dataset_name: str,
    dataset_cfg: dict[str, Any],
    target: dict[str, Any],
    staging_cfg: dict[str, Any],
    provenance: dict[str, Any],
    log: logging.Logger,
) -> dict[str, Any]:
    """Stage one dataset into az://{container}/{prefix}/{dataset}.zarr; returns the manifest.

    Resumable (regions with markers are skipped), idempotent (a complete store with the same
    plan is left untouched), verified before returning. Raises StagingError with one clear line.
    """
    # The Azure SDK logs every request at INFO: far too much for a rule log (and it names URLs).
    logging.getLogger("azure").setLevel(max(logging.WARNING, logging.getLogger("azure").level))
    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    cfg = _settings(staging_cfg)
    stats: dict[str, Any] = {}
    kind = items_doc.get("kind") or dataset_cfg.get("kind")
    signing = items_doc.get("signing") or dataset_cfg.get("signing", "planetary-computer")

    # -- source ---------------------------------------------------------------------------------
    raw_source: ZarrV2Source | None = None
    auth: SourceAuth | None = None
    if kind == "zarr":
        asset = items_doc.get("asset")
        if not asset or not asset.get("href"):
            raise StagingError(
                f"results/{dataset_name}/items.json has no asset href — re-run discover"
            )
        auth = SourceAuth(asset, signing, log)
        ds = open_dataset(auth, log)
        keep = _select_variables(ds, dataset_name, dataset_cfg.get("variables"))
        indexers = planmod.subset_indexers(ds, dataset_cfg.get("bbox"), dataset_cfg.get("datetime"))
        sub = ds[keep].isel(indexers)
        if ZarrV2Source.supports(auth):
            raw_source = ZarrV2Source(auth, ds, log, stats)
        source_id = {
            "href": asset["href"],
            "collection": items_doc.get("collection"),
            "collection_updated": items_doc.get("collection_updated"),
        }
    elif kind == "cog":
        from pcflow.staging import cog_source

        sub = cog_source.load(items_doc, dataset_name, dataset_cfg, signing, log)
        indexers = {}
        source_id = {
            "collection": items_doc.get("collection"),
            "items": dict(sorted((items_doc.get("item_updated") or {}).items())),
        }
    else:
        raise StagingError(f"datasets.{dataset_name}.kind {kind!r} is not zarr or cog")

    stats["open_seconds"] = round(time.monotonic() - t0, 3)

    # -- plan -----------------------------------------------------------------------------------
    plans: dict[str, VarPlan] = {}
    index_names = set(sub.indexes)
    for name in list(sub.data_vars) + [c for c in sub.coords if c not in index_names]:
        v = sub[name].variable
        enc = _encoding_of(v)
        offset = tuple(indexers.get(d, slice(0, None)).start or 0 for d in v.dims)
        src_meta = raw_source.meta.get(name) if raw_source else None
        mode, chunks, reason = "encode", None, ""
        if src_meta is not None and cfg["copy_aligned"]:
            src_shape = src_meta.shape
            if all(
                planmod.aligned(o, o + n, s, c)
                for o, n, s, c in zip(offset, v.shape, src_shape, src_meta.chunks, strict=False)
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
            name,
            tuple(v.dims),
            tuple(v.shape),
            tuple(chunks),
            stored.str,
            mode,
            offset,
            reason,
            enc,
        )

    _chunk_coords_like_data(plans, set(sub.coords))
    data_plan = {
        "format": FORMAT,
        "zarr_format": ZARR_FORMAT,
        "source": source_id,
        "indexers": {d: [s.start, s.stop] for d, s in indexers.items()},
        "variables": {
            n: {**p.to_json(), "encoding": _enc_json(p.encoding)} for n, p in plans.items()
        },
        "coords": {d: _coord_summary(sub[d]) for d in sub.dims if d in sub.indexes},
        "chunk_order": planmod.CHUNK_ORDER,
    }
    fp = planmod.fingerprint(data_plan)
    _warn_egress(items_doc, target, plans, log)

    # -- target ---------------------------------------------------------------------------------
    url = storage.target_url(target, dataset_name)
    root = url.split("://", 1)[1]
    so = storage.target_storage_options(target)
    fs = storage.filesystem(so)
    writer = StoreWriter(fs, root, log, stats, cfg["concurrency"], cfg["threads"])
    lease: StoreLease | None = None
    try:
        writer.check_container()
        # One writer per store: a second run is refused, naming the holder (issue 12, hole 2).
        lease = StoreLease(writer.blobs, f"{writer.path}.lease")
        writer.sync(retry_async, lease.acquire, f"taking the lease on {url}")
        attrs = dict(sub.attrs)
        attrs[PROVENANCE_ATTR] = json.dumps(provenance, sort_keys=True, default=str)
        prev_plan, complete = writer.state()
        if prev_plan and prev_plan.get("fingerprint") == fp:
            log.info("resuming %s (plan %s)", url, fp[:12])
        else:
            if prev_plan or complete:
                log.warning("store %s was written with a different plan: rewriting it", url)
            writer.wipe()
            tmpl, encoding = _template(sub, plans)
            tmpl.attrs.update(attrs)
            log.info("writing template of %s (%d arrays)", url, len(plans))
            try:
                writer.upload_template(tmpl, encoding, ZARR_FORMAT)
            except StagingError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise StagingError(
                    f"writing the template of {url} failed: {type(exc).__name__}: {exc}"
                ) from exc
            writer.write_json(f"{STATE}/plan.json", {"fingerprint": fp, "plan": data_plan})
            complete = None

        stats["template_seconds"] = round(time.monotonic() - t0 - stats["open_seconds"], 3)
        metas = {n: writer.array_meta(n) for n in plans}
        sources: dict[str, Any] = {}
        generic: DatasetSource | None = None
        for n, p in plans.items():
            sm = raw_source.meta.get(n) if raw_source else None
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
                sources[n] = raw_source
        streamed = {
            n for n, p in plans.items()
            if raw_source is not None and p.mode == "encode" and sources[n] is raw_source
            and metas[n].shape
        }  # fmt: skip
        orders = {
            n: planmod.strip_order(m.grid, m.chunks, plans[n].offset, raw_source.meta[n].chunks)
            if n in streamed
            else list(m.chunk_indices())
            for n, m in metas.items()
        }
        writer.concurrency = _bounded_concurrency(cfg, plans, metas, raw_source, streamed, log)
        stats["concurrency"] = writer.concurrency
        for s in {id(s): s for s in sources.values()}.values():
            s.cpu = writer.cpu

        regions: list[Region] = []
        for n in plans:
            regions += planmod.regions_for(
                n, metas[n].nchunks, metas[n].chunk_nbytes, cfg["region_mb"]
            )
        done = writer.done_regions()
        if done:
            lost = _regions_with_missing_chunks(done, writer.chunk_keys())
            if lost:
                # Markers whose chunks are gone (an interrupted wipe, a deletion under the
                # store): the store is not complete, and those regions are written again.
                log.warning(
                    "%s: %d finished regions lack chunks (e.g. %s): rewriting them",
                    url, len(lost), lost[0],
                )  # fmt: skip
                writer.sync(writer.blobs.delete, writer.blob(f"{STATE}/complete.json"))
                complete = None
                for rid in lost:
                    del done[rid]
        pending = [r for r in regions if r.id not in done]
        stats["regions_total"] = len(regions)
        stats["regions_skipped"] = len(regions) - len(pending)
        log.info(
            "%s: %d regions, %d already done, %d to write",
            url,
            len(regions),
            len(regions) - len(pending),
            len(pending),
        )

        async def chunk_fn(p: VarPlan, meta: ArrayMeta, idx: tuple[int, ...]):
            key = f"{p.name}/{meta.key(idx)}"
            if p.mode == "copy":
                src_idx = tuple(
                    i + o // c for i, o, c in zip(idx, p.offset, meta.chunks, strict=False)
                )
                src_blob = raw_source.blob_name(p.name, src_idx)
                return await copy_chunk(
                    raw_source, writer.blobs, src_blob, writer.blob(key), cfg["server_side_copy"]
                )
            if sources[p.name] is raw_source and meta.shape:
                # Source chunks are copied straight into the (full-size) target chunk buffer.
                buf, view = meta.chunk_buffer(idx)
                await raw_source.read_into(p.name, meta.chunk_slices(idx), p.offset, view)
                holder = [buf]  # handed over: dropped once encoded, not held during upload
                del buf, view
                return await writer.encode_and_put(meta, key, holder, idx)
            block = await sources[p.name].read_block(p.name, meta.chunk_slices(idx), p.offset)
            return await writer.encode_and_put(meta, key, block, idx)

        on_cluster = distributed.cluster_config(staging_cfg)
        why = on_cluster and distributed.supported(plans, sources, raw_source)
        if why:
            log.warning("staging.cluster: %s: writing the regions in this process", why)
            on_cluster = None
        if raw_source is not None and not on_cluster:
            # Reference counts for the decoded-source cache: each source chunk is decoded once
            # and dropped after its last planned reader, so memory follows the chunks in flight.
            for r in pending:
                p, meta = plans[r.var], metas[r.var]
                if p.mode == "encode" and sources[r.var] is raw_source:
                    for idx in orders[r.var][r.first : r.first + r.count]:
                        sl = meta.chunk_slices(idx)
                        raw_source.cache.expect(raw_source.source_chunks_for(r.var, sl, p.offset))
        t_write = time.monotonic()
        if pending and on_cluster:  # region writes as tasks on a Dask cluster
            job = distributed.make_job(
                auth, root, plans, streamed, writer.concurrency, cfg, raw_source
            )
            done.update(distributed.run_on_cluster(
                on_cluster, job, pending, metas, so, stats, log,
                cfg["task_mb"],
            ))  # fmt: skip
        elif pending:
            done.update(writer.run_regions(pending, plans, metas, orders, chunk_fn))
        write_s = time.monotonic() - t_write
        if raw_source is not None:
            stats["source_cache_peak_mb"] = round(raw_source.cache.peak / 1e6, 2)
            stats["source_cache_cap_mb"] = round(raw_source.cache.capacity / 1e6, 2)

        t_final = time.monotonic()
        # -- finalize -------------------------------------------------------------------------
        zattrs = writer.read_json(".zattrs") or {}
        if zattrs != json.loads(json.dumps(attrs, default=str)):
            if complete:
                writer.sync(writer.blobs.delete, writer.blob(f"{STATE}/complete.json"))
                complete = None
            writer.write_json(".zattrs", attrs)
        arrays = list(plans) + [d for d in sub.dims if d in sub.indexes]
        zmeta = writer.consolidated(arrays)
        checksums = {n: array_checksum(chunk_md5s(done, n)) for n in plans}
        absent = {
            n: sorted(k for k, md5 in chunk_md5s(done, n).items() if md5 is None) for n in plans
        }
        if (
            complete
            and complete.get("fingerprint") == fp
            and complete.get("checksums") == checksums
            and complete.get("absent") == absent
        ):
            log.info("%s is complete already: nothing written", url)
            verified = complete.get("verification", {})
        else:
            if complete:
                writer.sync(writer.blobs.delete, writer.blob(f"{STATE}/complete.json"))
            writer.write_json(".zmetadata", zmeta)
            expected_coords = {d: sub[d].values for d in sub.dims if d in sub.indexes}
            verified = verify_store(
                writer, plans, metas, done, raw_source or generic, cfg["verify_sample"],
                expected_coords, url, so,
            )  # fmt: skip
            overall = planmod.fingerprint({"checksums": checksums, "zmetadata": zmeta})
            complete = {
                "format": FORMAT,
                "fingerprint": fp,
                "checksums": checksums,
                "checksum": overall,
                "absent": absent,  # chunks the source lacked: every other chunk must exist
                "verification": verified,
            }
            writer.sync(lease.verify)  # still ours: nobody else wrote in between
            _check_stored_plan(writer, fp, url)
            writer.write_json(f"{STATE}/complete.json", complete)
        # The manifest describes what is stored: its completion record (read back, with the
        # ETag readers hold) and the stored arrays' chunking.
        stored = writer.read_json(f"{STATE}/complete.json")
        if stored != json.loads(json.dumps(complete, default=str)):
            raise StagingError(
                f"{url}/.pcflow/complete.json is not the one this run wrote: another run "
                "changed the store — re-run staging"
            )
        identity = writer.sync(writer.blobs.etag, writer.blob(f"{STATE}/complete.json"))
        for n, p in plans.items():
            if tuple(metas[n].chunks) != tuple(p.chunks):
                raise StagingError(
                    f"{url}: stored chunks of {n} {metas[n].chunks} differ from the plan "
                    f"{p.chunks} — another run changed the store; re-run staging"
                )
        stats["verify_seconds"] = round(time.monotonic() - t_final, 3)
    finally:
        if lease is not None and lease._task is not None:
            writer.sync(lease.release)
        writer.close(*([raw_source] if raw_source else []))

    seconds = time.monotonic() - t0
    written = stats.get("bytes_written", 0)
    if auth is not None and auth.refreshes:
        stats["token_refreshes"] = auth.refreshes
    manifest = {
        "dataset": dataset_name,
        "kind": kind,
        "url": url,
        "href": f"abfs://{root}",
        "zarr_format": ZARR_FORMAT,
        "consolidated": True,
        "target": {k: target.get(k) for k in ("account_name", "container", "prefix", "region")},
        "xarray:open_kwargs": {"consolidated": True},
        "xarray:storage_options": storage.public_storage_options(
            {"account_name": target["account_name"]}
        ),
        "fingerprint": fp,
        "checksum": complete["checksum"],
        "checksums": complete["checksums"],
        "identity": identity,
        "variables": {
            n: {**p.to_json(), "attrs": _jsonable(dict(sub[n].attrs))} for n, p in plans.items()
        },
        "coords": data_plan["coords"],
        "grid": stac_collection.grid_summary(sub),  # CRS, steps, footprint for collection.json
        "chunking": {
            "chunk_mb": cfg["chunk_mb"],
            "time_series_chunks": cfg["time_series_chunks"],
            "region_mb": cfg["region_mb"],
            "write_order": planmod.CHUNK_ORDER,
            "per_variable": {
                n: {"chunks": list(p.chunks), "mode": p.mode, "reason": p.reason}
                for n, p in plans.items()
            },
        },
        "bbox": dataset_cfg.get("bbox"),
        "datetime": dataset_cfg.get("datetime"),
        "source": {
            **source_id,
            "msft:region": items_doc.get("msft:region"),
            "item_ids": items_doc.get("item_ids", []),
        },
        "provenance": provenance,
        "verification": complete.get("verification"),
        "run": {
            "started": started.isoformat(),
            "seconds": round(seconds, 3),
            "write_seconds": round(write_s, 3),
            "write_MBps": round(written / 1e6 / write_s, 2) if write_s > 0 and written else None,
            **{k: v for k, v in sorted(stats.items())},
        },
    }
    log.info(
        "staged %s: %d regions written, %d skipped, %.1f MB in %.1f s",
        url,
        stats.get("regions_written", 0),
        stats.get("regions_skipped", 0),
        written / 1e6,
        seconds,
    )
    return manifest


def _regions_with_missing_chunks(done: dict[str, dict[str, Any]], present: set[str]) -> list[str]:
    """Ids of finished regions some of whose written chunks (MD5 recorded) are not stored."""
    lost = []
    for rid, marker in sorted(done.items()):
        var = rid.rsplit("/", 1)[0]
        if any(md5 and f"{var}/{k}" not in present for k, md5 in marker["chunks"].items()):
            lost.append(rid)
    return lost


def _check_stored_plan(writer: StoreWriter, fp: str, url: str) -> None:
    """The store's plan is still this run's (the manifest must never describe another's)."""
    stored = writer.read_json(f"{STATE}/plan.json") or {}
    if stored.get("fingerprint") != fp:
        raise StagingError(
            f"{url} now holds another plan ({str(stored.get('fingerprint'))[:12]} != "
            f"{fp[:12]}): another run rewrote it — re-run staging"
        )


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


def _bounded_concurrency(
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


def _jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    return json.loads(
        json.dumps(attrs, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )


def _warn_egress(
    items_doc: dict[str, Any],
    target: dict[str, Any],
    plans: dict[str, VarPlan],
    log: logging.Logger,
) -> None:
    """Staging across regions costs egress: say how much, before doing it."""
    src_region = items_doc.get("msft:region")
    dst_region = target.get("region")
    if src_region and dst_region and src_region != dst_region:
        gb = sum(p.nbytes for p in plans.values()) / 1e9
        log.warning(
            "source data is in %s but the target account is in %s: staging reads about %.2f GB "
            "(uncompressed; egress is billed on the compressed bytes) across regions — put the "
            "target in %s to avoid egress charges",
            src_region, dst_region, gb, src_region,
        )  # fmt: skip
