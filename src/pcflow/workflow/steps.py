"""What each Snakemake rule does, as plain functions; `scripts/` only unpacks arguments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pcflow import provenance
from pcflow.logs import rule_logging


def write_json(path: str | Path, doc: dict[str, Any]) -> None:
    """Write JSON atomically so that an interrupted rule never leaves a half file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


def run_discover(
    dataset: str,
    ds_cfg: dict[str, Any],
    stac_api: str,
    out: str,
    log_path: str,
    run_config: dict[str, Any],
    stac_cfg: dict[str, Any] | None = None,
) -> None:
    """Discover one dataset. `run_config` (the run's validated config) only for provenance;
    `stac_cfg`: the config's `stac:` client settings (timeouts, retries, page size)."""
    # Here, not at the top: pystac-client and planetary-computer take ~0.8 s to import, which
    # every reduce and plot job would pay for nothing.
    from pcflow import discover

    with rule_logging(log_path, f"discover[{dataset}]") as log:
        log.info("searching %s for %s (%s)", stac_api, ds_cfg["collection"], ds_cfg["kind"])
        doc = discover.discover(dataset, ds_cfg, stac_api, stac_cfg)
        doc["provenance"] = provenance.record(run_config)
        if doc["kind"] == "zarr":
            log.info("collection asset %s: %s", doc["asset"]["key"], doc["asset"]["href"])
        else:
            log.info("matched %d items: %s", len(doc["items"]), ", ".join(doc["item_ids"]))
        write_json(out, doc)


def run_stage(
    dataset: str,
    ds_cfg: dict[str, Any],
    target: dict[str, Any],
    staging_cfg: dict[str, Any],
    items_path: str,
    manifest_out: str,
    collection_out: str,
    log_path: str,
    run_config: dict[str, Any],
    threads: int | None = None,
    mem_mb: int | None = None,
) -> None:
    """Stage one dataset with the job's `threads` as codec threads and its `mem_mb` as a cap on
    the chunks in flight (half of it: the rest is the process's own)."""
    from pcflow import staging
    from pcflow.staging import distributed

    staging_cfg = dict(staging_cfg)
    if threads:
        staging_cfg["threads"] = threads
    if mem_mb:
        cap = mem_mb / 2
        staging_cfg["memory_mb"] = min(staging_cfg.get("memory_mb") or cap, cap)
    with rule_logging(log_path, f"stage[{dataset}]") as log:
        items_doc = json.loads(Path(items_path).read_text())
        prov = provenance.with_stac(provenance.record(run_config), items_doc)
        # staging: + the compute: cluster when `staging.cluster: true`
        staging_cfg = distributed.resolve({**run_config, "staging": staging_cfg})
        manifest = staging.stage(items_doc, dataset, ds_cfg, target, staging_cfg, prov, log)
        write_json(collection_out, staging.stac_collection(manifest))
        write_json(manifest_out, manifest)  # last: its existence means the store is complete


def run_reduce(
    dataset: str,
    reduction: str,
    compute_cfg: dict[str, Any],
    target: dict[str, Any],
    manifest_path: str,
    out_nc: str,
    log_path: str,
    run_config: dict[str, Any],
    threads: int = 1,
    mem_mb: int | None = None,
    ds_cfg: dict[str, Any] | None = None,
    incomplete: str = "drop",
) -> None:
    """Reduce one staged dataset over its bbox/region (`ds_cfg`); partial periods `incomplete`
    ("drop" or "flag"). `run_config` (the run's validated config) only for provenance."""
    from pcflow import allocator, compute, reductions, staging
    from pcflow import region as regionmod

    allocator.reuse_large_buffers()  # first, before any thread: decoded chunks reuse buffers

    ds_cfg = ds_cfg if ds_cfg is not None else run_config["datasets"][dataset]
    with rule_logging(log_path, f"reduce[{dataset}/{reduction}]") as log:
        manifest = json.loads(Path(manifest_path).read_text())
        compute_cfg = {**compute_cfg, "threads": threads, "mem_mb": mem_mb}
        with compute.cluster(compute_cfg, log):
            ds = staging.open_staged(manifest, target)
            # Only cells whose centres lie in the dataset's bbox/region count (staging keeps
            # the rectangular native window, larger on a rotated grid).
            region = regionmod.from_config(ds_cfg, dataset)
            result = reductions.run(
                reduction, ds, region=region, incomplete=incomplete, region_crs=ds_cfg.get("crs")
            ).compute()
            # Computed, then the store's identity checked again: a store rewritten or wiped
            # while it was read must fail this step, never leave a NaN result behind.
            staging.check_unchanged(ds, target)
            # This run's record (the commit that made the NetCDF), with the staged data's STAC
            # record and the commit that staged it.
            staged = manifest.get("provenance", {})
            prov = {**provenance.record(run_config), "stac": staged.get("stac")}
            prov["staged_by"] = (staged.get("git") or {}).get("commit")
            result.attrs["provenance"] = provenance.canonical_json(prov)
            Path(out_nc).parent.mkdir(parents=True, exist_ok=True)
            result.to_netcdf(out_nc, engine="netcdf4")
        log.info("wrote %s", out_nc)


def run_plot(dataset: str, reduction: str, nc_path: str, out_png: str, log_path: str) -> None:
    import xarray as xr

    from pcflow import plotting

    with rule_logging(log_path, f"plot[{dataset}/{reduction}]") as log:
        with xr.open_dataset(nc_path, engine="netcdf4") as result:
            plotting.plot(reduction, result.load(), Path(out_png), {"dataset": dataset})
            # The run's record (this commit made the PNG); the NetCDF's when run outside Snakemake.
            made_from = json.loads(result.attrs.get("provenance", "{}"))
            rec = {**(provenance.from_env() or made_from), "stac": made_from.get("stac")}
            provenance.stamp_png(out_png, rec)
        log.info("wrote %s", out_png)
