"""What each Snakemake rule does, as plain functions; `scripts/` only unpacks arguments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pcflow import discover, provenance
from pcflow.logs import rule_logging


def write_json(path: str | Path, doc: dict[str, Any]) -> None:
    """Write JSON atomically so that an interrupted rule never leaves a half file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


def run_discover(dataset: str, config: dict[str, Any], out: str, log_path: str) -> None:
    with rule_logging(log_path, f"discover[{dataset}]") as log:
        ds = config["datasets"][dataset]
        log.info("searching %s for %s (%s)", config["stac_api"], ds["collection"], ds["kind"])
        doc = discover.discover(dataset, ds, config["stac_api"])
        doc["provenance"] = provenance.record(config)
        if doc["kind"] == "zarr":
            log.info("collection asset %s: %s", doc["asset"]["key"], doc["asset"]["href"])
        else:
            log.info("matched %d items: %s", len(doc["items"]), ", ".join(doc["item_ids"]))
        write_json(out, doc)


def run_stage(
    dataset: str,
    config: dict[str, Any],
    items_path: str,
    manifest_out: str,
    collection_out: str,
    log_path: str,
) -> None:
    from pcflow import staging

    with rule_logging(log_path, f"stage[{dataset}]") as log:
        items_doc = json.loads(Path(items_path).read_text())
        prov = provenance.with_stac(provenance.record(config), items_doc)
        manifest = staging.stage(
            items_doc,
            dataset,
            config["datasets"][dataset],
            config["target"],
            config.get("staging", {}),
            prov,
            log,
        )
        write_json(collection_out, staging.stac_collection(manifest))
        write_json(manifest_out, manifest)  # last: its existence means the store is complete


def run_reduce(
    dataset: str,
    reduction: str,
    config: dict[str, Any],
    manifest_path: str,
    out_nc: str,
    log_path: str,
    threads: int = 1,
    mem_mb: int | None = None,
) -> None:
    from pcflow import compute, reductions, staging

    with rule_logging(log_path, f"reduce[{dataset}/{reduction}]") as log:
        manifest = json.loads(Path(manifest_path).read_text())
        compute_cfg = {**config.get("compute", {}), "threads": threads, "mem_mb": mem_mb}
        with compute.cluster(compute_cfg, log):
            ds = staging.open_staged(manifest, config["target"])
            # Computed here, then the store's identity checked again: a store rewritten or
            # wiped while it was read must fail this step, never leave a NaN result behind.
            result = reductions.run(reduction, ds).compute()
            staging.check_unchanged(ds, config["target"])
            # This run's record (the commit that made the NetCDF), with the staged data's STAC
            # record and the commit that staged it.
            staged = manifest.get("provenance", {})
            prov = {**provenance.record(config), "stac": staged.get("stac")}
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
