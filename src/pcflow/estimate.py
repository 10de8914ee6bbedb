"""A dry-run plan worth reading: per dataset what would be read, written and submitted.

Numbers are estimates from STAC metadata (collection `cube:dimensions`/`cube:variables`, item
`proj:shape` and `raster:bands`) and the discovery record (results/{dataset}/items.json) when
discovery has run; sizes are uncompressed. `snakemake -n` prints the offline part
(rules/provenance.smk); `pcflow plan` also asks the STAC API and counts jobs with a dry run.
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

REPO = Path(__file__).resolve().parents[2]
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
    chunk_mb = float(staging.get("chunk_mb", 100))
    nbytes = math.prod(shape) * size
    try:
        from pcflow.staging import plan as staging_plan
    except ImportError:  # staging not installed: one region per variable, chunk_mb chunks
        return (max(1, math.ceil(nbytes / (chunk_mb * MB))) if nbytes else 0), 1
    chunks = staging_plan.plan_chunks(
        tuple(dims), tuple(shape), size, chunk_mb, staging.get("time_series_chunks", True)
    )
    nchunks = math.prod(math.ceil(n / c) for n, c in zip(shape, chunks, strict=True))
    region_mb = float(staging.get("region_mb", staging_plan.DEFAULT_REGION_MB))
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
    return {
        "bytes_read": read,
        "bytes_write": write,
        "source_chunks": chunks_read,
        "target_chunks": chunks_write,
        "regions": regions,
        "window": {"x": nx, "y": ny, "time_days": max(0, (hi - lo).days + 1)},
        "window_index": {"x": [ix0, ix0 + nx], "y": [iy0, iy0 + ny]},
    }


def estimate_cog(
    ds: Mapping[str, Any], items: Sequence[Mapping[str, Any]], staging: Mapping[str, Any]
) -> dict:
    """Bytes read (asset area overlapping the bbox) and written (target grid) for COG items."""
    import pyproj

    west, south, east, north = ds["bbox"]
    read = 0.0
    size = 2
    for item in items:
        ib = item.get("bbox") or [west, south, east, north]
        ox = max(0.0, min(east, ib[2]) - max(west, ib[0])) / max(ib[2] - ib[0], 1e-12)
        oy = max(0.0, min(north, ib[3]) - max(south, ib[1])) / max(ib[3] - ib[1], 1e-12)
        for key in ds.get("assets", []):
            asset = item.get("assets", {}).get(key, {})
            shape = asset.get("proj:shape") or item.get("properties", {}).get("proj:shape")
            bands = asset.get("raster:bands") or [{}]
            size = DTYPE_BYTES.get(str(bands[0].get("data_type")), 2)
            if shape:
                read += math.prod(shape) * size * min(1.0, ox) * min(1.0, oy)
    to_crs = pyproj.Transformer.from_crs("EPSG:4326", ds["crs"], always_xy=True)
    xmin, ymin, xmax, ymax = to_crs.transform_bounds(west, south, east, north, densify_pts=21)
    res = float(ds["resolution"])
    nx, ny = math.ceil((xmax - xmin) / res), math.ceil((ymax - ymin) / res)
    dates = sorted({str(i.get("properties", {}).get("datetime", ""))[:10] for i in items})
    write = nx * ny * len(dates) * len(ds.get("assets", [])) * size
    chunks = regions = 0
    for key in ds.get("assets", []):
        n_chunks, n_regions = _target_layout(
            key, ("time", "y", "x"), (len(dates), ny, nx), size, staging
        )
        chunks, regions = chunks + n_chunks, regions + n_regions
    return {
        "bytes_read": int(read),
        "bytes_write": write,
        "source_chunks": len(items) * len(ds.get("assets", [])),
        "target_chunks": chunks,
        "regions": regions,
        "window": {"x": nx, "y": ny, "dates": len(dates)},
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
        out["estimate"] = estimate_cog(ds, doc.get("items") or [], staging)
    else:
        why = "run discovery" if ds["kind"] == "cog" else "needs the STAC collection"
        out["estimate"] = {"note": f"unknown until pcflow plan can see items ({why})"}
    target_region = config.get("target", {}).get("region")
    out["regions"] = {"source": source_region, "target": target_region}
    est = out["estimate"]
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
    """Offline plan (no network): used by `snakemake -n` through rules/provenance.smk."""
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
