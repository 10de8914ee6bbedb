"""Staging's region writes as tasks on a Dask cluster (LocalCluster or Dask Gateway).

The driver (`stage()`) plans, writes the template, then hands the pending regions here; each
task writes a batch of regions with the same code as in-process staging (StoreWriter +
ZarrV2Source, a region's marker only after its chunks) and returns the markers. The driver then
consolidates and verifies once. So a lost worker's regions are simply written again: the
scheduler reruns a task whose worker died, and a task that failed is retried.

What a worker gets (never an account key):
- the source asset as discovery recorded it, signed ON the worker (planetary-computer's SAS
  endpoint, token cached per worker and re-signed before expiry by SourceAuth);
- a SAS for the target container only (read/write/list/delete, `TARGET_SAS_HOURS` long),
  made by the driver from its own credential; tasks are submitted a window at a time and each
  submission carries a SAS with at least `RESIGN_MARGIN_S` left, so long runs are re-signed.

Config: `staging.cluster: true` runs on the cluster `compute:` describes (the same
`compute.backend: gateway` / PCFLOW_COMPUTE_BACKEND switch as the reductions), or a mapping
in `compute:`'s shape for a staging-only cluster; `staging.cluster_workers` sizes it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from pcflow import storage
from pcflow.config import defaults as config_defaults
from pcflow.staging import plan as planmod
from pcflow.staging.codec import ArrayMeta
from pcflow.staging.plan import Region, VarPlan
from pcflow.staging.retry import StagingError

TARGET_SAS_HOURS = 2.0  # life of a target SAS handed to workers
RESIGN_MARGIN_S = 1800  # a task is never submitted with a SAS that has less than this left
# Target bytes (uncompressed) per task, a few regions: the schema default (schema.yaml).
DEFAULT_TASK_MB = float(config_defaults("staging")["task_mb"])
TASK_RETRIES = 3
SAS_PERMISSIONS = "racwdl"  # read, add, create, write, delete, list: one container only


def cluster_config(staging_cfg: dict[str, Any], compute_cfg: dict[str, Any] | None = None):
    """The compute-style cluster config staging should use, or None (in-process staging).

    `staging.cluster: true` reuses `compute:` (one switch, `compute.backend`, says "Gateway");
    a mapping is a staging-only cluster config. `staging.cluster_workers` sets the size.
    """
    value = staging_cfg.get("cluster")
    if not value:
        return None
    if value is True:
        cfg = dict(compute_cfg if compute_cfg is not None else staging_cfg.get("_compute") or {})
    elif isinstance(value, dict):
        cfg = dict(value)
    else:
        raise StagingError(
            f"staging.cluster={value!r}: use true (the compute: cluster) or a mapping "
            "like compute: (backend, gateway, local)"
        )
    workers = int(staging_cfg.get("cluster_workers") or 0)
    if workers:
        cfg["gateway"] = {**(cfg.get("gateway") or {}), "workers": workers}
        cfg["gateway"].pop("adapt", None)
        cfg["local"] = {**(cfg.get("local") or {}), "n_workers": workers}
    # Worker processes for local staging: each decodes/encodes on its own GIL.
    cfg["local"] = {"processes": True, **(cfg.get("local") or {})}
    return cfg


def resolve(config: dict[str, Any]) -> dict[str, Any]:
    """`config['staging']` with `cluster: true` resolved against `config['compute']`."""
    staging_cfg = dict(config.get("staging") or {})
    if staging_cfg.get("cluster") is True:
        staging_cfg["_compute"] = dict(config.get("compute") or {})
    return staging_cfg


# -- credentials ----------------------------------------------------------------------------------


def target_sas(target_options: dict[str, Any], container: str, hours: float) -> tuple[str, float]:
    """(SAS token for `container` only, expiry as a Unix time) from the driver's credential.

    An account key (or a connection string holding one) signs a service SAS; an Azure AD
    identity signs a user delegation SAS; a SAS the driver was given is passed on as it is
    (it cannot be re-signed: its own expiry then bounds the run).
    """
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    account = target_options["account_name"]
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
    perms = ContainerSasPermissions.from_string(SAS_PERMISSIONS)
    if target_options.get("sas_token"):
        return str(target_options["sas_token"]).lstrip("?"), _sas_expiry(
            target_options["sas_token"]
        )
    key = target_options.get("account_key")
    if not key and target_options.get("connection_string"):
        parts = dict(
            p.split("=", 1) for p in target_options["connection_string"].split(";") if "=" in p
        )
        key = parts.get("AccountKey")
    if key:
        token = generate_container_sas(
            account, container, account_key=key, permission=perms, expiry=expiry,
            start=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5),
        )  # fmt: skip
        return token, expiry.timestamp()
    # No key: an Azure AD identity (DefaultAzureCredential) signs a user delegation SAS.
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import BlobServiceClient

    host = target_options.get("account_host") or f"{account}.blob.core.windows.net"
    client = BlobServiceClient(f"https://{host}", credential=DefaultAzureCredential())
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    udk = client.get_user_delegation_key(start, expiry)
    token = generate_container_sas(
        account, container, user_delegation_key=udk, permission=perms, expiry=expiry, start=start
    )
    return token, expiry.timestamp()


def _sas_expiry(token: str) -> float:
    from urllib.parse import parse_qs

    se = parse_qs(str(token).lstrip("?")).get("se", [None])[0]
    if not se:
        return time.time() + TARGET_SAS_HOURS * 3600
    return dt.datetime.fromisoformat(se.replace("Z", "+00:00")).timestamp()


class TargetCredential:
    """A container SAS for workers, re-signed when it has less than RESIGN_MARGIN_S left."""

    def __init__(self, target_options: dict[str, Any], container: str, log: logging.Logger):
        self.options = target_options
        self.container = container
        self.log = log
        self.signed = 0
        self._token, self._expiry = "", 0.0

    def worker_options(self) -> dict[str, Any]:
        """adlfs options for a worker: account, endpoint host and the container SAS only."""
        if self._expiry - time.time() < RESIGN_MARGIN_S:
            self._token, self._expiry = target_sas(self.options, self.container, TARGET_SAS_HOURS)
            self.signed += 1
            if self.signed > 1:
                self.log.info("re-signed the workers' target SAS (expires in %.0f min)",
                              (self._expiry - time.time()) / 60)  # fmt: skip
        out = {"account_name": self.options["account_name"], "sas_token": self._token}
        if self.options.get("account_host"):
            out["account_host"] = self.options["account_host"]
        return out


# -- what a task carries --------------------------------------------------------------------------


@dataclass
class RegionJob:
    """Everything a worker needs to write regions of one store (picklable; no secrets)."""

    asset: dict[str, Any]
    signing: str
    root: str  # container/path of the target store
    plans: dict[str, VarPlan]
    streamed: set[str]  # variables re-encoded from raw source chunks (strip order)
    concurrency: int
    threads: int
    cache_capacity: int
    load_slots: int
    server_side_copy: bool
    prefetch: int = 2
    variables: list[str] = field(default_factory=list)  # source variable names


def supported(plans: dict[str, VarPlan], sources: dict[str, Any], raw_source: Any) -> str | None:
    """Why these regions cannot run on a cluster (None if they can)."""
    if raw_source is None:
        return "the source is not a Zarr v2 store on Azure Blob (COG/other sources stage locally)"
    generic = sorted(n for n in plans if sources.get(n) is not raw_source)
    if generic:
        return f"variables {generic} need CF re-encoding through xarray (done in-process)"
    return None


def batches(regions: Iterable[Region], metas: dict[str, ArrayMeta], task_mb: float):
    """Regions grouped into tasks of about `task_mb` target bytes (a generator: a continental
    run's tasks are never all held at once)."""
    batch: list[Region] = []
    size = 0
    limit = max(1, int(task_mb * 1e6))
    for r in regions:
        nbytes = r.count * metas[r.var].chunk_nbytes
        if batch and (size + nbytes > limit or batch[0].var != r.var):
            yield batch
            batch, size = [], 0
        batch.append(r)
        size += nbytes
    if batch:
        yield batch


def run_on_cluster(
    cluster_cfg: dict[str, Any],
    job: RegionJob,
    pending: list[Region],
    metas: dict[str, ArrayMeta],
    target_options: dict[str, Any],
    stats: dict[str, Any],
    log: logging.Logger,
    task_mb: float = DEFAULT_TASK_MB,
) -> dict[str, dict[str, Any]]:
    """Write `pending` regions as tasks on the configured cluster; returns their markers.

    Tasks are submitted a window at a time (2 per worker thread), each with a fresh-enough
    target SAS; a task whose worker dies is rerun by the scheduler, one that raises is retried
    TASK_RETRIES times. The cluster is shut down when this returns or raises.
    """
    from distributed import as_completed

    from pcflow import compute

    container = job.root.split("/", 1)[0]
    cred = TargetCredential(target_options, container, log)
    markers: dict[str, dict[str, Any]] = {}
    total = len(pending)
    t0 = time.monotonic()
    with compute.cluster(cluster_cfg, log) as client:
        nthreads = sum(client.nthreads().values()) or 1
        window = max(2, 2 * nthreads)
        # The job (a few KB) travels inside every task. Scattered data lives only on the
        # workers present at scatter time: a cluster still scaling up held it on one worker,
        # and losing that worker cancelled every task ("already forgotten").
        todo: Iterator[list[Region]] = batches(pending, metas, task_mb)
        ac = as_completed()
        submitted = 0

        def submit_next() -> bool:
            nonlocal submitted
            batch = next(todo, None)
            if batch is None:
                return False
            fut = client.submit(
                write_regions, job, batch, cred.worker_options(),
                key=f"pcflow-stage-{batch[0].id.replace('/', '-')}-{submitted}",
                retries=TASK_RETRIES, pure=False,
            )  # fmt: skip
            submitted += 1
            ac.add(fut)
            return True

        for _ in range(window):
            if not submit_next():
                break
        for fut in ac:
            try:
                got, task_stats = fut.result()
            except Exception as exc:  # noqa: BLE001 - one line naming what failed
                raise StagingError(
                    f"staging task {fut.key} failed on the cluster after {TASK_RETRIES} retries:"
                    f" {type(exc).__name__}: {exc} (worker logs: the cluster dashboard)"
                ) from exc
            markers.update(got)
            for k, v in task_stats.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    stats[k] = stats.get(k, 0) + v
            submit_next()
            log.info("cluster: regions %d/%d written (%.1f s)", len(markers), total,
                     time.monotonic() - t0)  # fmt: skip
            fut.release()
        stats["cluster_workers"] = len(client.scheduler_info().get("workers", {}))
    stats["cluster_tasks"] = submitted
    stats["target_sas_signed"] = cred.signed
    missing = {r.id for r in pending} - set(markers)
    if missing:
        raise StagingError(f"cluster staging returned no marker for regions {sorted(missing)[:5]}")
    return markers


# -- on the worker --------------------------------------------------------------------------------


def write_regions(
    job: RegionJob, regions: list[Region], target_options: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(On a worker.) Write `regions` and their markers; returns (markers, stats)."""
    from pcflow.staging.fastcopy import copy_chunk
    from pcflow.staging.writer import StoreWriter
    from pcflow.staging.zarr_source import SourceAuth, ZarrV2Source

    log = logging.getLogger("pcflow.staging.worker")
    stats: dict[str, Any] = {}
    auth = SourceAuth(job.asset, job.signing, log)  # signs here: a just-in-time source token
    source = ZarrV2Source(auth, SimpleNamespace(variables=job.variables), log, stats)
    fs = storage.filesystem({**target_options, "use_listings_cache": False})
    writer = StoreWriter(fs, job.root, log, stats, job.concurrency, job.threads)
    try:
        source.cpu = writer.cpu
        source.cache.capacity = job.cache_capacity
        source.load_slots = job.load_slots
        source.prefetch = job.prefetch
        names = sorted({r.var for r in regions})
        metas = {n: writer.array_meta(n) for n in names}
        orders = {n: _order(job, n, metas[n], source) for n in names}
        plans = job.plans
        for r in regions:
            if r.var in job.streamed:
                p, meta = plans[r.var], metas[r.var]
                for idx in orders[r.var][r.first : r.first + r.count]:
                    source.cache.expect(
                        source.source_chunks_for(r.var, meta.chunk_slices(idx), p.offset)
                    )

        async def chunk_fn(p: VarPlan, meta: ArrayMeta, idx: tuple[int, ...]):
            key = f"{p.name}/{meta.key(idx)}"
            if p.mode == "copy":
                src_idx = tuple(
                    i + o // c for i, o, c in zip(idx, p.offset, meta.chunks, strict=False)
                )
                return await copy_chunk(
                    source, writer.blobs, source.blob_name(p.name, src_idx), writer.blob(key),
                    job.server_side_copy,
                )  # fmt: skip
            if meta.shape:
                buf, view = meta.chunk_buffer(idx)
                await source.read_into(p.name, meta.chunk_slices(idx), p.offset, view)
                holder = [buf]
                del buf, view
                return await writer.encode_and_put(meta, key, holder, idx)
            block = await source.read_block(p.name, meta.chunk_slices(idx), p.offset)
            return await writer.encode_and_put(meta, key, block, idx)

        markers = writer.run_regions(regions, plans, metas, orders, chunk_fn)
    finally:
        writer.close(source)
    return markers, stats


def _order(job: RegionJob, name: str, meta: ArrayMeta, source: Any) -> list[tuple[int, ...]]:
    if name in job.streamed:
        return planmod.strip_order(
            meta.grid, meta.chunks, job.plans[name].offset, source.meta[name].chunks
        )
    return list(meta.chunk_indices())


def make_job(
    auth: Any,
    root: str,
    plans: dict[str, VarPlan],
    streamed: set[str],
    concurrency: int,
    cfg: dict[str, Any],
    raw_source: Any,
) -> RegionJob:
    """The RegionJob for a store the driver has planned (sizes as `_bounded_concurrency` set).

    Refuses (one line) to ship an account key or connection string to workers: a source that
    needs one cannot be staged on a cluster (give it a SAS, or stage in-process)."""
    options = auth.asset.get("xarray:storage_options") or {}
    secret = sorted({"account_key", "connection_string", "client_secret"} & set(options))
    if secret:
        raise StagingError(
            f"staging.cluster: the source asset's storage options hold {secret[0]}, which must "
            "not be sent to workers — use a SAS (sas_token / credential) or drop staging.cluster"
        )
    return RegionJob(
        asset=auth.asset,  # unsigned: each worker signs for itself
        signing=auth.signing,
        root=root,
        plans=plans,
        streamed=set(streamed),
        concurrency=concurrency,
        threads=int(cfg["threads"]),
        cache_capacity=int(raw_source.cache.capacity),
        load_slots=int(raw_source.load_slots),
        prefetch=int(raw_source.prefetch),
        server_side_copy=bool(cfg["server_side_copy"]),
        variables=list(raw_source.meta),
    )
