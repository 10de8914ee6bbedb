"""Plan a Daymet-North-America-sized staging from metadata only: time, memory, tasks, time model.

    python bench/scale.py [--workers 1,8,32,128] [--keep DIR]

Writes a local Zarr v2 store that holds ONLY metadata (`.zgroup`, `.zattrs`, `.zmetadata`,
each array's `.zarray`/`.zattrs`; no chunk at all) with Daymet North America's shape:
time 14,965 days (1980-2020, 365-day years) x y 8,075 x x 7,814 cells (1 km Lambert conformal),
float32 tmin/tmax/prcp in (365, 284, 584) chunks (a year x a 284 x 584 tile, ~242 MB decoded;
MPC's daymet-daily-na layout), plus 2-D lat/lon. The grid's extents travel in the coordinates'
attributes (`actual_range`), as a STAC collection's `cube:dimensions` carries them.

Then it plans, as `pcflow plan` does, two stagings of 3 variables x 40 years (1981-2020):
  copy      the whole continent, year-aligned: source chunks copied as they are;
  re-encode a CONUS bbox and a time range cutting through years: time-contiguous 100 MB chunks,
            written in strips (the order staging uses), which is the heavier plan;
and for each: bytes, chunks, regions, requests, tasks (counted by running staging's own region
and task generators), the time model for N workers and the memory per worker. Planning time
and the process's peak RSS (VmHWM, imports included) are measured; targets < 10 s and < 1 GB.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NT, NY, NX = 14965, 8075, 7814
CHUNKS = (365, 284, 584)
VARS = ("tmin", "tmax", "prcp")
X0, Y0 = -4560250.0, 4984500.0  # Daymet NA cell centres (m, Lambert conformal conic)
LCC = {
    "grid_mapping_name": "lambert_conformal_conic", "longitude_of_central_meridian": -100.0,
    "latitude_of_projection_origin": 42.5, "standard_parallel": [25.0, 60.0],
    "false_easting": 0.0, "false_northing": 0.0, "semi_major_axis": 6378137.0,
    "inverse_flattening": 298.257223563,
}  # fmt: skip
NA_BBOX = [-178.13, 14.07, -53.06, 82.91]
CONUS_BBOX = [-124.8, 24.5, -66.9, 49.4]


def _zarray(shape, chunks, dtype="<f4", fill="NaN"):
    return {
        "zarr_format": 2, "shape": list(shape), "chunks": list(chunks), "dtype": dtype,
        "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
        "filters": None, "fill_value": fill, "order": "C", "dimension_separator": ".",
    }  # fmt: skip


def write_metadata_store(path: Path) -> int:
    """The metadata-only store; returns its size in bytes (no chunk objects)."""
    meta: dict = {".zgroup": {"zarr_format": 2}, ".zattrs": {"title": "Daymet NA (metadata)"}}
    for v in VARS:
        meta[f"{v}/.zarray"] = _zarray((NT, NY, NX), CHUNKS)
        meta[f"{v}/.zattrs"] = {"_ARRAY_DIMENSIONS": ["time", "y", "x"],
                                "grid_mapping": "lambert_conformal_conic"}  # fmt: skip
    for v in ("lat", "lon"):
        meta[f"{v}/.zarray"] = _zarray((NY, NX), CHUNKS[1:])
        meta[f"{v}/.zattrs"] = {"_ARRAY_DIMENSIONS": ["y", "x"]}
    meta["x/.zarray"] = _zarray((NX,), (NX,), "<f8")
    meta["x/.zattrs"] = {"_ARRAY_DIMENSIONS": ["x"], "actual_range": [X0, X0 + 1000 * (NX - 1)],
                         "step": 1000.0}  # fmt: skip
    meta["y/.zarray"] = _zarray((NY,), (NY,), "<f8")
    meta["y/.zattrs"] = {"_ARRAY_DIMENSIONS": ["y"], "actual_range": [Y0, Y0 - 1000 * (NY - 1)],
                         "step": -1000.0}  # fmt: skip
    meta["time/.zarray"] = _zarray((NT,), (NT,), "<i8", None)
    meta["time/.zattrs"] = {
        "_ARRAY_DIMENSIONS": ["time"], "units": "days since 1980-01-01", "calendar": "noleap",
        "actual_range": ["1980-01-01", "2020-12-30"],
    }  # fmt: skip
    meta["lambert_conformal_conic/.zarray"] = _zarray((), (), "<i2", 0)
    meta["lambert_conformal_conic/.zattrs"] = {"_ARRAY_DIMENSIONS": [], **LCC}
    path.mkdir(parents=True)
    (path / ".zmetadata").write_text(json.dumps({"metadata": meta, "zarr_consolidated_format": 1}))
    for key, doc in meta.items():
        (path / key).parent.mkdir(parents=True, exist_ok=True)
        (path / key).write_text(json.dumps(doc))
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cube_from_metadata(path: Path) -> dict:
    """A collection's cube:dimensions/cube:variables from the store's .zmetadata alone."""
    import pyproj

    meta = json.loads((path / ".zmetadata").read_text())["metadata"]
    crs = pyproj.CRS.from_cf(meta["lambert_conformal_conic/.zattrs"])
    dims = {
        "x": {"type": "spatial", "axis": "x", "extent": meta["x/.zattrs"]["actual_range"],
              "step": meta["x/.zattrs"]["step"], "reference_system": crs.to_json_dict()},
        "y": {"type": "spatial", "axis": "y", "extent": meta["y/.zattrs"]["actual_range"],
              "step": meta["y/.zattrs"]["step"], "reference_system": crs.to_json_dict()},
        "time": {"type": "temporal", "extent": meta["time/.zattrs"]["actual_range"]},
    }  # fmt: skip
    variables = {}
    for key, doc in meta.items():
        if key.endswith("/.zarray") and len(doc["shape"]) == 3:
            name = key.split("/")[0]
            variables[name] = {
                "type": "data", "dimensions": meta[f"{name}/.zattrs"]["_ARRAY_DIMENSIONS"],
                "shape": doc["shape"], "chunks": doc["chunks"], "dtype": "float32",
            }  # fmt: skip
    return {"cube:dimensions": dims, "cube:variables": variables}


def count_tasks(est: dict, staging: dict) -> tuple[int, int, int]:
    """(regions, tasks, chunks ordered) by running staging's own generators over the plan."""
    from pcflow.staging import distributed
    from pcflow.staging import plan as splan
    from pcflow.staging.codec import ArrayMeta

    regions = tasks = ordered = 0
    region_mb = float(staging.get("region_mb", splan.DEFAULT_REGION_MB))
    for i, lay in enumerate(est["layouts"]):
        name = VARS[i]
        shape = tuple(lay["shape"])
        chunks = _chunks_of(lay, shape, staging)
        meta = ArrayMeta.from_zarray(_zarray(shape, chunks))
        if lay["mode"] == "encode":
            # The write order staging builds for a re-encoded array (one list per variable).
            ordered += len(splan.strip_order(meta.grid, chunks, (0, 0, 0), CHUNKS))
        var_regions = splan.regions_for(name, meta.nchunks, meta.chunk_nbytes, region_mb)
        regions += len(var_regions)
        task_mb = float(staging.get("task_mb", distributed.DEFAULT_TASK_MB))
        tasks += sum(1 for _ in distributed.batches(var_regions, {name: meta}, task_mb))
    return regions, tasks, ordered


def _chunks_of(lay: dict, shape: tuple[int, ...], staging: dict) -> tuple[int, ...]:
    from pcflow.staging import plan as splan

    if lay["mode"] == "copy":
        return tuple(min(c, n) for c, n in zip(CHUNKS, shape, strict=True))
    return splan.plan_chunks(("time", "y", "x"), shape, 4, float(staging.get("chunk_mb", 100)),
                             bool(staging.get("time_series_chunks", True)))  # fmt: skip


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,8,32,128")
    parser.add_argument("--memory-mb", type=float, default=2048)
    parser.add_argument("--keep", help="write the metadata store here and keep it")
    args = parser.parse_args()
    from pcflow import estimate
    from pcflow.staging import memory

    workers = [int(w) for w in args.workers.split(",")]
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pcflow-scale-"))
    store = tmp / "daymet-na-metadata.zarr"
    if store.exists():
        shutil.rmtree(store)
    size = write_metadata_store(store)
    print(f"metadata-only store {store}: {size / 1e3:.0f} kB, no chunk objects "
          f"(time {NT} x y {NY} x x {NX}, chunks {CHUNKS}, {len(VARS)} variables)")  # fmt: skip
    rss_imports = vm_hwm_mb()
    staging = {"memory_mb": args.memory_mb, "plan_workers": workers}
    scenarios = {
        # The whole record (41 years: the plan maps dates to 365-day years by proportion, so
        # only the whole record is sure to be year-aligned) copied chunk for chunk.
        "copy": {"bbox": NA_BBOX, "datetime": "1980-01-01/2020-12-30"},
        # 40 years over CONUS: not aligned with the source tiles, so re-encoded.
        "reencode": {"bbox": CONUS_BBOX, "datetime": "1981-01-01/2020-12-31"},
        # The same with spatially contiguous chunks (what the re-read warning suggests).
        "reencode_spatial": {
            "bbox": CONUS_BBOX,
            "datetime": "1981-01-01/2020-12-31",
            "_staging": {"time_series_chunks": False},
        },  # fmt: skip
    }
    t0 = time.perf_counter()
    out = {}
    cube = cube_from_metadata(store)
    for label, sel in scenarios.items():
        sel = dict(sel)
        scfg = {**staging, **sel.pop("_staging", {})}
        ds = {"collection": "daymet-daily-na", "kind": "zarr", "variables": list(VARS), **sel}
        est = estimate.estimate_zarr(ds, cube, scfg)
        tm = estimate.time_model(est, scfg)
        regions, tasks, ordered = count_tasks(est, scfg)
        out[label] = {"est": est, "tm": tm, "regions": regions, "tasks": tasks,
                      "ordered": ordered}  # fmt: skip
    plan_s = time.perf_counter() - t0
    peak = vm_hwm_mb()
    for label, r in out.items():
        est, tm = r["est"], r["tm"]
        modes = sorted({lay["mode"] for lay in est["layouts"]})
        print(f"\n{label} ({', '.join(modes)}), window {est['window']}:")
        print(f"  read {estimate.human(est['bytes_read'])} ({est['source_chunks']} source chunks), "
              f"write {estimate.human(est['bytes_write'])} "
              f"({sum(lay['target_chunks'] for lay in est['layouts'])} chunks, "
              f"{r['regions']} regions, {r['tasks']} tasks)")  # fmt: skip
        if r["ordered"]:
            print(f"  write order built for {r['ordered']} re-encoded chunks (strips)")
        for line in estimate.format_time_model(tm):
            print(line)
        assert r["tasks"] == tm["tasks"], "the time model's task count is staging's own"
    print(f"\nplanning: {plan_s:.2f} s; process peak RSS {peak:.0f} MB "
          f"({rss_imports:.0f} MB after imports); targets < 10 s, < 1024 MB; "
          f"memory overhead constant {memory.OVERHEAD_MB} MB")  # fmt: skip
    if not args.keep:
        shutil.rmtree(tmp)
    reenc = out["reencode"]
    summary = {
        "plan_s": round(plan_s, 3),
        "plan_peak_rss_MB": round(peak, 1),
        "tasks": out["copy"]["tasks"] + reenc["tasks"],
        "tasks_copy": out["copy"]["tasks"],
        "tasks_reencode": reenc["tasks"],
        "regions": out["copy"]["regions"] + reenc["regions"],
        "requests": out["copy"]["tm"]["requests"] + reenc["tm"]["requests"],
        "bytes_read_TB": {k: round(r["tm"]["bytes_read"] / 1e12, 2) for k, r in out.items()},
        "wall_s_reencode_spatial": out["reencode_spatial"]["tm"]["wall_s"],
        "wall_s_copy": out["copy"]["tm"]["wall_s"],
        "wall_s_reencode": reenc["tm"]["wall_s"],
        "memory_per_worker_MB": max(
            out["copy"]["tm"]["memory_per_worker_MB"], reenc["tm"]["memory_per_worker_MB"]
        ),  # fmt: skip
        "within_targets": plan_s < 10 and peak < 1024,
    }
    print(json.dumps(summary))
    if math.isnan(peak):
        sys.exit(1)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
