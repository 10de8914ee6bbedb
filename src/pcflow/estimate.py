"""A dry-run plan worth reading: per dataset what would be read, written and submitted.

Numbers are estimates from STAC metadata (collection `cube:dimensions`/`cube:variables`, item
`proj:shape` and `raster:bands`) and the discovery record (results/{dataset}/items.json) when
discovery has run; sizes are uncompressed. `snakemake -n` prints the offline part
(pcflow.workflow.run_setup); `pcflow plan` also asks the STAC API and counts jobs with a dry run.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from pcflow.config import defaults as config_defaults
from pcflow.paths import REPO_ROOT

REPO = REPO_ROOT
DTYPE_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4}
DTYPE_BYTES |= {"float32": 4, "float64": 8, "int64": 8, "uint64": 8}
MB = 1024**2


def human(n: float | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _days(interval: str) -> tuple[date, date]:
    start, end = interval.split("/")
    return date.fromisoformat(start[:10]), date.fromisoformat(end[:10])


def _target_layout(
    name: str, dims: Sequence[str], shape: Sequence[int], size: int, staging: Mapping[str, Any]
) -> tuple[int, int]:
    """(target chunks, regions) for one variable: staging's own planner when it is there."""
    staging = _staging(staging)
    chunk_mb = float(staging["chunk_mb"])
    nbytes = math.prod(shape) * size
    try:
        from pcflow.staging import plan as staging_plan
    except ImportError:  # staging not installed: one region per variable, chunk_mb chunks
        return (max(1, math.ceil(nbytes / (chunk_mb * MB))) if nbytes else 0), 1
    chunks = staging_plan.plan_chunks(
        tuple(dims), tuple(shape), size, chunk_mb, staging["time_series_chunks"]
    )
    nchunks = math.prod(math.ceil(n / c) for n, c in zip(shape, chunks, strict=True))
    region_mb = float(staging["region_mb"])
    regions = staging_plan.regions_for(name, nchunks, math.prod(chunks) * size, region_mb)
    return nchunks, len(regions)


def estimate_zarr(
    ds: Mapping[str, Any], collection: Mapping[str, Any], staging: Mapping[str, Any]
) -> dict:
    """Bytes read (whole source chunks touched) and written for a collection-level Zarr asset."""
    import pyproj

    dims = collection.get("cube:dimensions") or {}
    cvars = collection.get("cube:variables") or {}
    xdim = next((k for k, v in dims.items() if v.get("axis") == "x"), None)
    ydim = next((k for k, v in dims.items() if v.get("axis") == "y"), None)
    tdim = next((k for k, v in dims.items() if v.get("type") == "temporal"), None)
    if not (xdim and ydim and tdim):
        return {"note": "collection has no cube:dimensions x/y/time"}
    crs = (
        pyproj.CRS.from_json_dict(dims[xdim]["reference_system"])
        if isinstance(dims[xdim].get("reference_system"), dict)
        else pyproj.CRS.from_user_input(dims[xdim].get("reference_system", 4326))
    )
    from pcflow.staging import plan as staging_plan
    from pcflow.staging.retry import StagingError

    # The same window function staging uses (cell centres in the bbox's envelope).
    x = staging_plan.regular_axis(dims[xdim]["extent"], dims[xdim].get("step", 1))
    y = staging_plan.regular_axis(dims[ydim]["extent"], dims[ydim].get("step", 1))
    try:
        xs, ys = staging_plan.bbox_window(ds["bbox"], crs, x, y, (xdim, ydim))
    except StagingError as err:
        return {"note": str(err)}
    nx, ix0, ny, iy0 = xs.stop - xs.start, xs.start, ys.stop - ys.start, ys.start
    t_start, t_end = (date.fromisoformat(str(t)[:10]) for t in dims[tdim]["extent"])
    q_start, q_end = _days(ds["datetime"])
    lo, hi = max(t_start, q_start), min(t_end, q_end)
    total_days = (t_end - t_start).days + 1
    read = write = chunks_read = chunks_write = regions = 0
    layouts: list[dict[str, Any]] = []  # per variable: what the time and memory model needs
    for name in ds.get("variables") or [k for k, v in cvars.items() if v.get("type") == "data"]:
        var = cvars.get(name, {})
        shape, vdims = var.get("shape"), var.get("dimensions")
        if not shape or not vdims or tdim not in vdims:
            continue
        nt_total = shape[vdims.index(tdim)]
        nt = max(0, round(nt_total * ((hi - lo).days + 1) / total_days)) if lo <= hi else 0
        it0 = round(nt_total * (lo - t_start).days / total_days) if lo <= hi else 0
        size = DTYPE_BYTES.get(str(var.get("dtype") or var.get("data_type")), 4)
        chunk = var.get("chunks") or shape
        window = {tdim: (nt, it0), ydim: (ny, iy0), xdim: (nx, ix0)}
        touched = 1
        for d, c in zip(vdims, chunk, strict=False):
            n, i0 = window.get(d, (1, 0))
            touched *= (i0 + n - 1) // c - i0 // c + 1 if n else 0
        read += touched * math.prod(chunk) * size
        chunks_read += touched
        vshape = [window.get(d, (n, 0))[0] for d, n in zip(vdims, shape, strict=True)]
        write += math.prod(vshape) * size
        n_chunks, n_regions = _target_layout(name, vdims, vshape, size, staging)
        chunks_write += n_chunks
        regions += n_regions
        layouts.append(_layout(vdims, vshape, shape, chunk, window, size, staging, touched))
    return {
        "layouts": layouts,
        "bytes_read": read,
        "bytes_write": write,
        "source_chunks": chunks_read,
        "target_chunks": chunks_write,
        "regions": regions,
        "window": {"x": nx, "y": ny, "time_days": max(0, (hi - lo).days + 1)},
        "window_index": {"x": [ix0, ix0 + nx], "y": [iy0, iy0 + ny]},
    }


def estimate_cog(
    ds: Mapping[str, Any],
    items: Sequence[Mapping[str, Any]],
    staging: Mapping[str, Any],
    item_assets: Mapping[str, Any] | None = None,
) -> dict:
    """Bytes read (asset area overlapping the bbox) and written (target grid) for COG items.

    Each band's size is its declared dtype (staging.band_types: items' raster:bands, the
    collection's item_assets, or the config), the one staging will store.
    """
    import pyproj

    from pcflow.staging.band_types import band_types
    from pcflow.staging.retry import StagingError

    assets = list(ds.get("assets", []))
    try:
        types = band_types(
            ds.get("name", "<dataset>"), assets, items, item_assets, ds.get("raster_bands")
        )
    except StagingError as err:
        return {"note": f"unknown: {err}"}
    sizes = {key: DTYPE_BYTES.get(types[key].dtype, 8) for key in assets}
    west, south, east, north = ds["bbox"]
    read = 0.0
    for item in items:
        ib = item.get("bbox") or [west, south, east, north]
        ox = max(0.0, min(east, ib[2]) - max(west, ib[0])) / max(ib[2] - ib[0], 1e-12)
        oy = max(0.0, min(north, ib[3]) - max(south, ib[1])) / max(ib[3] - ib[1], 1e-12)
        for key in assets:
            asset = item.get("assets", {}).get(key, {})
            shape = asset.get("proj:shape") or item.get("properties", {}).get("proj:shape")
            if shape:
                read += math.prod(shape) * sizes[key] * min(1.0, ox) * min(1.0, oy)
    to_crs = pyproj.Transformer.from_crs("EPSG:4326", ds["crs"], always_xy=True)
    xmin, ymin, xmax, ymax = to_crs.transform_bounds(west, south, east, north, densify_pts=21)
    res = float(ds["resolution"])
    nx, ny = math.ceil((xmax - xmin) / res), math.ceil((ymax - ymin) / res)
    dates = sorted({str(i.get("properties", {}).get("datetime", ""))[:10] for i in items})
    write = sum(nx * ny * len(dates) * sizes[key] for key in assets)
    chunks = regions = 0
    for key in assets:
        n_chunks, n_regions = _target_layout(
            key, ("time", "y", "x"), (len(dates), ny, nx), sizes[key], staging
        )
        chunks, regions = chunks + n_chunks, regions + n_regions
    return {
        "bytes_read": int(read),
        "bytes_write": write,
        "source_chunks": len(items) * len(assets),
        "target_chunks": chunks,
        "regions": regions,
        "window": {"x": nx, "y": ny, "dates": len(dates)},
        "dtypes": {key: types[key].dtype for key in assets},
    }


def local_rules(repo: Path = REPO) -> set[str]:
    """Rules marked `localrule: True` (run by the main process, never submitted to kbatch)."""
    names = set()
    for smk in sorted((repo / "rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            if re.search(r"^\s+localrule:\s*True", block, flags=re.M):
                names.add(block.split(":", 1)[0].strip())
    return names


def dataset_plan(
    name: str,
    config: Mapping[str, Any],
    results: Path,
    collection: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One dataset's plan: discovered items (or the query), sizes, chunks, regions, egress."""
    ds = config["datasets"][name]
    staging = config.get("staging", {})
    items_path = results / name / "items.json"
    doc = json.loads(items_path.read_text()) if items_path.exists() else None
    out: dict[str, Any] = {"dataset": name, "kind": ds["kind"], "collection": ds["collection"]}
    out["query"] = {k: ds.get(k) for k in ("bbox", "datetime", "query", "filter") if ds.get(k)}
    out["discovered"] = doc is not None
    if doc is not None:
        out["items"] = len(doc.get("item_ids") or [])
        out["asset"] = (doc.get("asset") or {}).get("href")
    source_region = (doc or {}).get("msft:region") or (collection or {}).get("msft:region")
    if ds["kind"] == "zarr" and collection:
        out["estimate"] = estimate_zarr(ds, collection, staging)
    elif ds["kind"] == "cog" and doc is not None:
        out["estimate"] = estimate_cog(
            {**ds, "name": name}, doc.get("items") or [], staging, doc.get("collection_item_assets")
        )
    else:
        why = "run discovery" if ds["kind"] == "cog" else "needs the STAC collection"
        out["estimate"] = {"note": f"unknown until pcflow plan can see items ({why})"}
    target_region = config.get("target", {}).get("region")
    out["regions"] = {"source": source_region, "target": target_region}
    est = out["estimate"]
    if "note" not in est:
        out["time_model"] = time_model(est, staging)
    if source_region and target_region and source_region != target_region:
        out["egress_bytes"] = est.get("bytes_read")
    else:
        out["egress_bytes"] = 0 if source_region else None
    return out


def format_plan(
    plans: Sequence[Mapping[str, Any]],
    jobs: Mapping[str, int] | None,
    executor: str,
    local: set[str],
) -> str:
    lines = ["pcflow plan (estimates; sizes uncompressed)"]
    for p in plans:
        lines.append(f"  dataset {p['dataset']} ({p['kind']}, collection {p['collection']})")
        if p["discovered"]:
            what = f"{p['items']} items" if p["kind"] == "cog" else f"asset {p.get('asset')}"
            lines.append(f"    discovered: {what}")
        else:
            lines.append(f"    not discovered yet; query: {json.dumps(p['query'])}")
        est = p["estimate"]
        if "note" in est:
            lines.append(f"    sizes: {est['note']}")
        else:
            lines.append(
                f"    read {human(est['bytes_read'])} ({est['source_chunks']} source chunks),"
                f" write {human(est['bytes_write'])} ({est['target_chunks']} chunks,"
                f" {est['regions']} regions); window {est['window']}"
            )
        if p.get("time_model"):
            lines += format_time_model(p["time_model"])
        src, dst = p["regions"]["source"], p["regions"]["target"]
        if p["egress_bytes"]:
            lines.append(
                f"    egress: {human(p['egress_bytes'])} from {src} to {dst} (regions differ)"
            )
        elif src:
            lines.append(f"    egress: none (source and target both in {dst})")
        else:
            lines.append("    egress: unknown (source region not known before discovery)")
    if jobs is None and executor == "kbatch":
        lines.append(
            "  kbatch: every job below is submitted as a kbatch Job except local rules "
            f"({', '.join(sorted(local)) or 'none'}) and `all`"
        )
    if jobs is not None:
        total = sum(jobs.values())
        lines.append(f"  jobs: {total} ({', '.join(f'{r} {n}' for r, n in sorted(jobs.items()))})")
        if executor == "kbatch":
            sub = {r: n for r, n in jobs.items() if r not in local and r != "all"}
            lines.append(
                f"  kbatch: {sum(sub.values())} jobs would be submitted "
                f"({', '.join(f'{r} {n}' for r, n in sorted(sub.items())) or 'none'});"
                f" local: {', '.join(sorted(set(jobs) & local)) or 'none'}"
            )
    return "\n".join(lines)


def print_plan(
    config: Mapping[str, Any],
    executor: str = "local",
    file: TextIO = sys.stdout,
    results: str | Path | None = None,
) -> None:
    """Offline plan (no network): used by `snakemake -n` through pcflow.workflow.run_setup."""
    results = Path(results or config.get("results", "results"))
    plans = [dataset_plan(name, config, results) for name in sorted(config["datasets"])]
    print(format_plan(plans, None, executor, local_rules()), file=file)


def parse_job_stats(text: str) -> dict[str, int]:
    """Rule counts from Snakemake's dry-run "Job stats" table."""
    jobs: dict[str, int] = {}
    block = text.split("Job stats:", 1)
    if len(block) < 2:
        return jobs
    for line in block[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            if parts and parts[0] == "total":
                break
            continue
        jobs[parts[0]] = int(parts[1])
    return jobs


def dry_run_jobs(configfile: str | None, extra: Sequence[str] = ()) -> tuple[dict[str, int], str]:
    cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"), "-n"]
    cmd += ["--cores", "1"] + (["--configfile", configfile] if configfile else []) + list(extra)
    env = {**__import__("os").environ, "PCFLOW_PLAN": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake -n failed:\n{out[-3000:]}")
    return ({} if "Nothing to be done" in out else parse_job_stats(out)), out


def fetch_collection(api: str, collection: str) -> dict[str, Any] | None:
    from pcflow import discover

    try:
        return discover.open_client(api).get_collection(collection).to_dict()
    except Exception as exc:  # the plan still prints without sizes; say why
        print(
            f"pcflow plan: could not read collection {collection} from {api}: {exc}",
            file=sys.stderr,
        )
        return None


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--configfile", default=str(REPO / "config" / "config.yaml"))
    ap.add_argument("--executor", default="local", help="kbatch: also list jobs to submit")
    ap.add_argument("--offline", action="store_true", help="do not ask the STAC API")
    ap.add_argument("--no-jobs", action="store_true", help="skip the Snakemake dry run")
    ap.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args: argparse.Namespace) -> int:
    from pcflow import config as cfgmod

    try:
        config = cfgmod.load(args.configfile)
    except cfgmod.ConfigError as err:
        print(f"pcflow plan: {err}", file=sys.stderr)
        return 2
    results = Path(config.get("results", "results"))
    plans = []
    for name in sorted(config["datasets"]):
        ds = config["datasets"][name]
        col = None
        if not args.offline and ds["kind"] == "zarr":
            col = fetch_collection(config["stac_api"], ds["collection"])
        plans.append(dataset_plan(name, config, results, col))
    try:
        jobs = None if args.no_jobs else dry_run_jobs(args.configfile)[0]
    except RuntimeError as err:
        print(f"pcflow plan: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"datasets": plans, "jobs": jobs, "executor": args.executor}, indent=2))
    else:
        print(format_plan(plans, jobs, args.executor, local_rules()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pcflow plan", description=__doc__.splitlines()[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())


# -- how long and how much memory: the time model ------------------------------------------------


def _staging(staging: Mapping[str, Any]) -> dict[str, Any]:
    """The staging section over the schema's defaults (schema.yaml is where they live)."""
    out = {**config_defaults("staging"), **staging}
    out["rates"] = {**config_defaults("staging", "rates"), **(staging.get("rates") or {})}
    return out


def _layout(
    dims: Sequence[str],
    shape: Sequence[int],
    src_shape: Sequence[int],
    src_chunks: Sequence[int],
    window: Mapping[str, tuple[int, int]],
    size: int,
    staging: Mapping[str, Any],
    touched: int,
) -> dict[str, Any]:
    """One variable's target chunking and copy/encode mode, as staging would decide it."""
    from pcflow.staging import plan as staging_plan

    staging = _staging(staging)
    starts = [window.get(d, (n, 0))[1] for d, n in zip(dims, src_shape, strict=True)]
    aligned = bool(staging["copy_aligned"]) and all(
        staging_plan.aligned(i0, i0 + n, full, c)
        for i0, n, full, c in zip(starts, shape, src_shape, src_chunks, strict=False)
    )
    if aligned:
        chunks = tuple(min(c, n) for c, n in zip(src_chunks, shape, strict=False))
    else:
        chunks = staging_plan.plan_chunks(
            tuple(dims), tuple(shape), size, float(staging["chunk_mb"]),
            bool(staging["time_series_chunks"]),
        )  # fmt: skip
    offset = tuple(starts)
    held = 0
    if not aligned:
        held = staging_plan.strip_working_set(tuple(shape), chunks, offset, tuple(src_chunks))

    chunk_bytes = math.prod(chunks) * size
    nchunks = math.prod(math.ceil(n / c) for n, c in zip(shape, chunks, strict=False))
    # Regions and tasks exactly as staging groups them (plan.regions_for, distributed.batches).
    region_mb = float(staging["region_mb"])
    per_region = max(1, int(region_mb * 1e6 // max(chunk_bytes, 1)))
    regions = math.ceil(nchunks / per_region)
    task_mb = float(staging["task_mb"])
    per_task = max(1, int(task_mb * 1e6 // max(per_region * chunk_bytes, 1)))
    # Without a cache, each target chunk reads every source chunk it overlaps (upper bound).
    per_chunk_src = math.prod(
        min(-(-n // sc) + 1, -(-(c - 1) // sc) + 1)
        for n, c, sc in zip(shape, chunks, src_chunks, strict=False)
    )
    return {
        "mode": "copy" if aligned else "encode",
        "uncached_source_chunks": nchunks * per_chunk_src if not aligned else touched,
        "shape": list(shape),
        "target_chunks": nchunks,
        "regions": regions,
        "tasks": math.ceil(regions / per_task),
        "chunk_bytes": chunk_bytes,
        "source_chunk_bytes": math.prod(src_chunks) * size,
        "source_chunks": touched,
        "bytes": math.prod(shape) * size,
        "working_set_bytes": held * math.prod(src_chunks) * size,
    }


def _memory_fit(layouts: Sequence[Mapping[str, Any]], staging: Mapping[str, Any]) -> Any:
    """staging.memory.fit for these arrays (what one staging worker will hold)."""
    from pcflow.staging import memory

    staging = _staging(staging)
    costs = [
        memory.VarCost(lay["mode"], lay["chunk_bytes"], lay["source_chunk_bytes"]
                       if lay["mode"] == "encode" else 0, lay["working_set_bytes"])
        for lay in layouts
    ]  # fmt: skip
    return memory.fit(
        float(staging["memory_mb"]), int(staging["concurrency"]),
        int(staging.get("threads") or 2), costs,  # threads: the rule's; a 2-core worker here
    )  # fmt: skip


def time_model(est: Mapping[str, Any], staging: Mapping[str, Any]) -> dict[str, Any]:
    """Estimated wall time for N workers and memory per worker, from a size estimate.

    work (one worker) = max(transfer, codec) + requests x latency / concurrency, where
    transfer = read / read_MBps + written / write_MBps (I/O overlaps the codec), codec =
    (source bytes decoded + target bytes encoded) / codec_MBps for re-encoded arrays only;
    wall(N) = fixed_s + work / min(N, tasks): tasks (about staging.task_mb of target each,
    never more than the regions) are what N workers share. Sizes are uncompressed: an upper
    bound for the transfer.
    """
    from pcflow.staging import memory

    staging = _staging(staging)
    rates = staging["rates"]
    layouts = est.get("layouts") or []
    read, write = float(est.get("bytes_read") or 0), float(est.get("bytes_write") or 0)
    fitted = _memory_fit(layouts, staging)
    if layouts and fitted.rereads and any(lay["mode"] == "encode" for lay in layouts):
        # The cache cannot hold a write strip's source chunks: they are read (and decoded)
        # again by each target chunk that needs them. Count that, as an upper bound.
        reread = sum(lay["uncached_source_chunks"] * lay["source_chunk_bytes"] for lay in layouts)
        read = max(read, float(reread))
        layouts = [{**lay, "source_chunks": lay["uncached_source_chunks"]} for lay in layouts]
    encode_in = sum(lay["source_chunks"] * lay["source_chunk_bytes"] for lay in layouts
                    if lay["mode"] == "encode")  # fmt: skip
    encode_out = sum(lay["bytes"] for lay in layouts if lay["mode"] == "encode")
    if not layouts:  # COG: everything is decoded and re-encoded
        encode_in, encode_out = read, write
    if layouts:  # staging's own layout (aligned arrays keep the source chunks)
        requests = sum(
            lay["source_chunks"] + lay["target_chunks"] + lay["regions"] for lay in layouts
        )
        tasks = max(1, sum(lay["tasks"] for lay in layouts))
    else:
        keys = ("source_chunks", "target_chunks", "regions")
        requests = sum(int(est.get(k) or 0) for k in keys)
        tasks = max(1, int(est.get("regions") or 1))
    concurrency = int(staging["concurrency"])
    transfer_s = read / 1e6 / rates["read_MBps"] + write / 1e6 / rates["write_MBps"]
    codec_s = (encode_in + encode_out) / 1e6 / rates["codec_MBps"]
    request_s = requests * rates["request_ms"] / 1e3 / max(1, concurrency)
    work_s = max(transfer_s, codec_s) + request_s
    workers = list(staging["plan_workers"])
    if staging.get("cluster_workers") and int(staging["cluster_workers"]) not in workers:
        workers.append(int(staging["cluster_workers"]))
    wall = {n: rates["fixed_s"] + work_s / min(n, tasks) for n in sorted(workers)}
    memory_mb = float(staging["memory_mb"])
    warnings = []
    if fitted.over_budget:
        warnings.append(
            f"staging.memory_mb={memory_mb:g} is below one chunk in flight: a worker will hold "
            f"~{fitted.peak / 1e6:.0f} MB + {memory.OVERHEAD_MB} MB; raise memory_mb or lower "
            "chunk_mb"
        )
    if fitted.rereads and any(lay["mode"] == "encode" for lay in layouts):
        warnings.append(
            f"decoded-source cache {fitted.cache / 1e6:.0f} MB < the write strip's "
            f"{fitted.working_set / 1e6:.0f} MB: source chunks will be read more than once "
            "(raise staging.memory_mb, or time_series_chunks: false)"
        )
    return {
        "rates": rates,
        "bytes_read": int(read),
        "requests": requests,
        "tasks": tasks,
        "work_s": round(work_s, 1),
        "transfer_s": round(transfer_s, 1),
        "codec_s": round(codec_s, 1),
        "request_s": round(request_s, 1),
        "wall_s": {str(n): round(s, 1) for n, s in wall.items()},
        "memory_per_worker_MB": round(fitted.peak / 1e6 + memory.OVERHEAD_MB),
        "memory": memory.describe(fitted, memory_mb),
        "warnings": warnings,
    }


def human_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def format_time_model(tm: Mapping[str, Any]) -> list[str]:
    """The plan's lines for one dataset's time model."""
    r = tm["rates"]
    walls = ", ".join(f"{n} worker(s) {human_seconds(s)}" for n, s in tm["wall_s"].items())
    lines = [
        f"    requests {tm['requests']}, tasks {tm['tasks']}, source bytes read "
        f"{human(tm['bytes_read'])}; estimated wall time: {walls}",
        f"      (per worker: read {r['read_MBps']:g} MB/s, write {r['write_MBps']:g} MB/s, codec"
        f" {r['codec_MBps']:g} MB/s, {r['request_ms']:g} ms/request, + {r['fixed_s']:g} s"
        " driver; staging.rates overrides)",
        f"    memory per worker: ~{tm['memory_per_worker_MB']} MB ({tm['memory']})",
    ]
    lines += [f"    WARNING: {w}" for w in tm["warnings"]]
    return lines
