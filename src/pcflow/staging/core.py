"""stage(): discovered data → a verified Zarr v2 store in the target container + its manifest.

The phases, each in its own module: open the source subset (source), plan each variable's
layout and fingerprint the plan (layout), take the store (lease; resume, or wipe and write the
template), write the pending regions in this process or on a Dask cluster (chunk_io, writer,
distributed), then verify and write the completion record (finalize) and the manifest.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from typing import Any

from pcflow import storage
from pcflow.config import defaults as config_defaults
from pcflow.staging import chunk_io, distributed, layout
from pcflow.staging import plan as planmod
from pcflow.staging.codec import ArrayMeta
from pcflow.staging.finalize import finalize
from pcflow.staging.lease import StoreLease
from pcflow.staging.manifest import build_manifest
from pcflow.staging.plan import Region, VarPlan
from pcflow.staging.retry import StagingError, retry_async, short_sdk_retries
from pcflow.staging.source import OpenedSource, open_source
from pcflow.staging.writer import PLAN, StoreWriter

PROVENANCE_ATTR = "pcflow_provenance"


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

    src = open_source(items_doc, dataset_name, dataset_cfg, stats, log)
    stats["open_seconds"] = round(time.monotonic() - t0, 3)
    plans = layout.plan_variables(src, cfg)
    data_plan = layout.data_plan(src, plans)
    fp = planmod.fingerprint(data_plan)
    _warn_egress(items_doc, target, plans, log)

    url = storage.target_url(target, dataset_name)
    root = url.split("://", 1)[1]
    so = storage.target_storage_options(target)
    writer = StoreWriter(
        storage.filesystem(so), root, log, stats, cfg["concurrency"], cfg["threads"]
    )
    attrs = {**src.sub.attrs, PROVENANCE_ATTR: json.dumps(provenance, sort_keys=True, default=str)}
    lease: StoreLease | None = None
    try:
        writer.check_container()
        # One writer per store: a second run is refused, naming the holder (issue 12, hole 2).
        lease = StoreLease(writer.blobs, f"{writer.path}.lease")
        writer.sync(retry_async, lease.acquire, f"taking the lease on {url}")
        complete = _take_store(writer, src, plans, data_plan, fp, attrs, url, log)
        stats["template_seconds"] = round(time.monotonic() - t0 - stats["open_seconds"], 3)

        metas = {n: writer.array_meta(n) for n in plans}
        readers = chunk_io.choose_readers(src.sub, plans, metas, src.raw, log)
        writer.concurrency = chunk_io.bounded_concurrency(
            cfg, plans, metas, src.raw, readers.streamed, log
        )
        stats["concurrency"] = writer.concurrency
        for s in {id(s): s for s in readers.sources.values() if s is not None}.values():
            s.cpu = writer.cpu
        regions = _regions(plans, metas, cfg["region_mb"])
        done, pending, lost = _pending_regions(writer, regions, url, log)
        if lost:
            complete = None  # its chunks are being rewritten: the old record was deleted
        stats["regions_total"] = len(regions)
        stats["regions_skipped"] = len(regions) - len(pending)

        t_write = time.monotonic()
        if pending:
            done.update(_write_regions(writer, src, plans, metas, readers, pending, cfg,
                                       staging_cfg, root, so, stats, log))  # fmt: skip
        write_s = time.monotonic() - t_write
        if src.raw is not None:
            stats["source_cache_peak_mb"] = round(src.raw.cache.peak / 1e6, 2)
            stats["source_cache_cap_mb"] = round(src.raw.cache.capacity / 1e6, 2)

        t_final = time.monotonic()
        complete, identity = finalize(
            writer, lease, src, plans, metas, done, attrs, complete, fp,
            src.raw or readers.generic, cfg["verify_sample"], url, so, log,
        )  # fmt: skip
        stats["verify_seconds"] = round(time.monotonic() - t_final, 3)
    finally:
        if lease is not None and lease._task is not None:
            writer.sync(lease.release)
        writer.close(*([src.raw] if src.raw else []))

    seconds = time.monotonic() - t0
    written = stats.get("bytes_written", 0)
    if src.auth is not None and src.auth.refreshes:
        stats["token_refreshes"] = src.auth.refreshes
    run = {
        "started": started.isoformat(),
        "seconds": round(seconds, 3),
        "write_seconds": round(write_s, 3),
        "write_MBps": round(written / 1e6 / write_s, 2) if write_s > 0 and written else None,
        **{k: v for k, v in sorted(stats.items())},
    }
    manifest = build_manifest(
        dataset_name=dataset_name, dataset_cfg=dataset_cfg, items_doc=items_doc, target=target,
        url=url, src=src, plans=plans, data_plan=data_plan, fp=fp, complete=complete,
        identity=identity, cfg=cfg, provenance=provenance, run=run,
    )  # fmt: skip
    log.info(
        "staged %s: %d regions written, %d skipped, %.1f MB in %.1f s",
        url, stats.get("regions_written", 0), stats.get("regions_skipped", 0), written / 1e6,
        seconds,
    )  # fmt: skip
    return manifest


def _take_store(
    writer: StoreWriter,
    src: OpenedSource,
    plans: dict[str, VarPlan],
    data_plan: dict[str, Any],
    fp: str,
    attrs: dict[str, Any],
    url: str,
    log: logging.Logger,
) -> dict[str, Any] | None:
    """Resume a store begun with the same plan, or wipe it and write the template and plan.

    Returns the store's completion record when it is still valid for this plan, else None.
    """
    prev_plan, complete = writer.state()
    if prev_plan and prev_plan.get("fingerprint") == fp:
        log.info("resuming %s (plan %s)", url, fp[:12])
        return complete
    if prev_plan or complete:
        log.warning("store %s was written with a different plan: rewriting it", url)
    writer.wipe()
    tmpl, encoding = layout.template(src.sub, plans)
    tmpl.attrs.update(attrs)
    log.info("writing template of %s (%d arrays)", url, len(plans))
    try:
        writer.upload_template(tmpl, encoding, layout.ZARR_FORMAT)
    except StagingError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise StagingError(
            f"writing the template of {url} failed: {type(exc).__name__}: {exc}"
        ) from exc
    writer.write_json(PLAN, {"fingerprint": fp, "plan": data_plan})
    return None


def _regions(
    plans: dict[str, VarPlan], metas: dict[str, ArrayMeta], region_mb: float
) -> list[Region]:
    """Every region of every planned array (markers are written per region)."""
    regions: list[Region] = []
    for n in plans:
        regions += planmod.regions_for(n, metas[n].nchunks, metas[n].chunk_nbytes, region_mb)
    return regions


def _pending_regions(
    writer: StoreWriter, regions: list[Region], url: str, log: logging.Logger
) -> tuple[dict[str, dict[str, Any]], list[Region], list[str]]:
    """(markers of finished regions, regions still to write, finished regions found lost).

    A finished region some of whose chunks are gone (an interrupted wipe, a deletion under the
    store) is written again, and the completion record is deleted first.
    """
    done = writer.done_regions()
    lost = _regions_with_missing_chunks(done, writer.chunk_keys()) if done else []
    if lost:
        log.warning(
            "%s: %d finished regions lack chunks (e.g. %s): rewriting them",
            url, len(lost), lost[0],
        )  # fmt: skip
        writer.drop_completion()
        for rid in lost:
            del done[rid]
    pending = [r for r in regions if r.id not in done]
    log.info(
        "%s: %d regions, %d already done, %d to write",
        url, len(regions), len(regions) - len(pending), len(pending),
    )  # fmt: skip
    return done, pending, lost


def _write_regions(
    writer: StoreWriter,
    src: OpenedSource,
    plans: dict[str, VarPlan],
    metas: dict[str, ArrayMeta],
    readers: chunk_io.Readers,
    pending: list[Region],
    cfg: dict[str, Any],
    staging_cfg: dict[str, Any],
    root: str,
    storage_options: dict[str, Any],
    stats: dict[str, Any],
    log: logging.Logger,
) -> dict[str, dict[str, Any]]:
    """Write the pending regions, as tasks on a Dask cluster (staging.cluster) or in this
    process; returns their markers."""
    on_cluster = distributed.cluster_config(staging_cfg)
    why = on_cluster and distributed.supported(plans, readers.sources, src.raw)
    if why:
        log.warning("staging.cluster: %s: writing the regions in this process", why)
        on_cluster = None
    if on_cluster:
        job = distributed.make_job(
            src.auth, root, plans, readers.streamed, writer.concurrency, cfg, src.raw
        )
        return distributed.run_on_cluster(
            on_cluster, job, pending, metas, storage_options, stats, log, cfg["task_mb"]
        )
    if src.raw is not None:
        chunk_io.expect_source_reads(pending, plans, metas, readers, src.raw)
    chunk_fn = chunk_io.chunk_writer(writer, readers, src.raw, cfg["server_side_copy"])
    return writer.run_regions(pending, plans, metas, readers.orders, chunk_fn)


def _regions_with_missing_chunks(done: dict[str, dict[str, Any]], present: set[str]) -> list[str]:
    """Ids of finished regions some of whose written chunks (MD5 recorded) are not stored."""
    lost = []
    for rid, marker in sorted(done.items()):
        var = rid.rsplit("/", 1)[0]
        if any(md5 and f"{var}/{k}" not in present for k, md5 in marker["chunks"].items()):
            lost.append(rid)
    return lost


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
