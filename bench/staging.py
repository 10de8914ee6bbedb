"""Staging throughput and memory on the sandbox, side by side with the ceiling and the naive way.

    eval "$(pcflow sandbox env)"     # sandbox up first
    python bench/staging.py [--sizes 96,192] [--mem-sizes 192,384] [--keep]

For a Daymet-shaped source (float32 (time, y, x), 3 variables, one-year chunks, Lambert
conformal grid) uploaded to the sandbox, it measures in one run:
  raw blob upload of the same bytes (the ceiling), pcflow staging of (a) an aligned full copy and
  (b) a bbox+time subset that needs re-encoding, the naive `xr.open_zarr(src).to_zarr(dst)` for
  both, and peak RSS of pcflow staging (child processes) for two dataset sizes >= 4x apart.
Throughput = stored (compressed) bytes of the result / wall-clock seconds of the whole step.
The last line is one JSON object with the headline numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONTAINER = "pcflow"
YEARS = 3
VARS = ("tmin", "tmax", "prcp")
CHUNK_XY = 96
# The peak-RSS runs use sources with 48-cell tiles: the decoded-source cache's working set is
# bounded by a strip of source columns (plan.strip_order), so memory stops growing once a dataset
# is wider than a strip; with 48-cell tiles both default sizes are (with 96 the larger one would
# need n=768, 7.7 GB).
MEM_CHUNK_XY = 48
PCFLOW_MODES = ("subset", "aligned")
# Chunks smaller than the 100 MB default so that both bench sizes span several target chunks:
# memory is bounded by chunk size x concurrency, and that is what the two sizes must show.
BENCH_STAGING = {"chunk_mb": 16, "concurrency": 8}


def target_cfg(prefix: str) -> dict[str, Any]:
    return {
        "account_name": os.environ["PCFLOW_TARGET_ACCOUNT_NAME"],
        "container": CONTAINER,
        "prefix": prefix,
        "region": "westeurope",
    }


def source_asset(name: str) -> dict[str, Any]:
    """The bench source lives in the target account (its key is the one the bench has)."""
    return {
        "href": f"abfs://{CONTAINER}/bench-src/{name}.zarr",
        "type": "application/vnd+zarr",
        "xarray:open_kwargs": {"consolidated": True},
        # In memory only (never written): the bench reads its own source with the target key.
        "xarray:storage_options": {
            "account_name": os.environ["PCFLOW_TARGET_ACCOUNT_NAME"],
            "account_key": os.environ["PCFLOW_TARGET_ACCOUNT_KEY"],
        },
    }


def sas_items_doc(name: str) -> dict[str, Any]:
    """items_doc with a read/list SAS for the bench container instead of the key: what cluster
    workers may receive (staging refuses to ship an account key)."""
    import datetime as dt

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    token = generate_container_sas(
        os.environ["PCFLOW_TARGET_ACCOUNT_NAME"], CONTAINER,
        account_key=os.environ["PCFLOW_TARGET_ACCOUNT_KEY"],
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2),
    )  # fmt: skip
    doc = items_doc(name)
    doc["asset"]["xarray:storage_options"] = {
        "account_name": os.environ["PCFLOW_TARGET_ACCOUNT_NAME"], "sas_token": token,
    }  # fmt: skip
    return doc


def items_doc(name: str) -> dict[str, Any]:
    return {
        "dataset": name, "kind": "zarr", "collection": "bench", "signing": "none",
        "msft:region": "westeurope", "asset": source_asset(name), "items": [],
        "item_ids": [], "item_updated": {},
    }  # fmt: skip


def make_source(n: int, tile: int = CHUNK_XY) -> tuple[str, int]:
    """A Daymet-shaped store with an n x n grid in tile x tile chunks, uploaded once; returns
    (name, stored bytes)."""
    import numcodecs
    import pandas as pd
    import xarray as xr

    from pcflow import storage
    from pcflow.sandbox import demo_data

    name = f"daymet-{n}-c{tile}"
    fs = storage.filesystem(storage.target_storage_options(target_cfg("x")))
    root = f"{CONTAINER}/bench-src/{name}.zarr"
    if fs.exists(f"{root}/.zmetadata"):
        return name, sum(fs.du(root, total=False).values())
    days = [pd.date_range(f"{2018 + i}-01-01T12:00", periods=365, freq="D") for i in range(YEARS)]
    time_index = days[0].append(days[1:])
    x = demo_data.DAYMET_X0 + 1000.0 * np.arange(n)
    y = demo_data.DAYMET_Y0 - 1000.0 * np.arange(n)
    rng = np.random.default_rng(n)
    shape = (time_index.size, n, n)
    base = 20 + 5 * np.sin(np.arange(shape[0]) / 58.0)[:, None, None]
    data_vars = {
        v: (("time", "y", "x"),
            np.round(base + rng.normal(0, 2, shape), 1).astype("float32"),
            {"grid_mapping": "lambert_conformal_conic", "units": "degrees C"})
        for v in VARS
    }  # fmt: skip
    data_vars["lambert_conformal_conic"] = ((), np.int16(0), dict(demo_data.LCC_ATTRS))
    ds = xr.Dataset(data_vars, coords={"time": time_index, "y": y, "x": x})
    comp = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    # Fixed chunk shape (like MPC's stores): a bigger dataset has more chunks, not bigger ones.
    enc = {v: {"chunks": (365, min(n, tile), min(n, tile)), "compressors": (comp,)} for v in VARS}
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "s.zarr"
        ds.to_zarr(local, zarr_format=2, consolidated=True, encoding=enc)
        fs.put(str(local), root, recursive=True)
    return name, sum(fs.du(root, total=False).values())


# Daymet-HI's real grid size and chunking: 584 x 284 cells, one-year chunks of 242 MB decoded.
REAL_NY, REAL_NX = 584, 284
REAL_MEMORY_MB = (1024, 2048)


def make_real_source() -> tuple[str, int]:
    """One variable (tmax) on Daymet-HI's real grid size in its real (365, 584, 284) chunks,
    2 years, ocean (~half the cells) NaN; written chunk by chunk (never the whole array)."""
    import numcodecs
    import pandas as pd
    import xarray as xr

    from pcflow import storage
    from pcflow.sandbox import demo_data

    name = "daymet-real-chunks"
    fs = storage.filesystem(storage.target_storage_options(target_cfg("x")))
    root = f"{CONTAINER}/bench-src/{name}.zarr"
    if fs.exists(f"{root}/.zmetadata"):
        return name, sum(fs.du(root, total=False).values())
    days = pd.date_range("2019-01-01T12:00", periods=730, freq="D")
    x = demo_data.DAYMET_X0 + 1000.0 * np.arange(REAL_NX)
    y = demo_data.DAYMET_Y0 - 1000.0 * np.arange(REAL_NY)
    yy, xx = np.mgrid[0:REAL_NY, 0:REAL_NX]
    ocean = ((yy - REAL_NY / 2) / (REAL_NY / 2)) ** 2 + (
        (xx - REAL_NX / 2) / (REAL_NX / 2)
    ) ** 2 > 0.6
    comp = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    attrs = {"grid_mapping": "lambert_conformal_conic", "units": "degrees C"}
    template = xr.Dataset(
        {"tmax": (("time", "y", "x"), np.zeros((730, REAL_NY, REAL_NX), "float32"), attrs),
         "lambert_conformal_conic": ((), np.int16(0), dict(demo_data.LCC_ATTRS))},
        coords={"time": days, "y": y, "x": x},
    ).chunk({"time": 365})  # fmt: skip
    enc = {"tmax": {"chunks": (365, REAL_NY, REAL_NX), "compressors": (comp,),
                    "_FillValue": np.float32("nan")}}  # fmt: skip
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "s.zarr"
        template.to_zarr(local, zarr_format=2, compute=False, encoding=enc)
        for year in range(2):
            block = (20 + rng.normal(0, 2, (365, REAL_NY, REAL_NX))).astype("float32")
            block[:, ocean] = np.nan
            part = xr.Dataset({"tmax": (("time", "y", "x"), np.round(block, 1))})
            part.to_zarr(local, region={"time": slice(365 * year, 365 * (year + 1))})
            del block, part
        import zarr

        zarr.consolidate_metadata(str(local))
        fs.put(str(local), root, recursive=True)
    return name, sum(fs.du(root, total=False).values())


def real_subset_cfg() -> dict[str, Any]:
    """A bbox inside the grid (not aligned with its single tile) and a time cut through years."""
    import pyproj

    from pcflow.sandbox import demo_data

    x = demo_data.DAYMET_X0 + 1000.0 * np.array([60, 200])
    y = demo_data.DAYMET_Y0 - 1000.0 * np.array([150, 450])
    tr = pyproj.Transformer.from_crs(demo_data.daymet_crs(), "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(x, y)
    return {"kind": "zarr", "signing": "none", "variables": ["tmax"],
            "bbox": [float(min(lon)), float(min(lat)), float(max(lon)), float(max(lat))],
            "datetime": "2019-03-10/2020-07-01"}  # fmt: skip


def real_child(name: str, memory_mb: float, keep: bool) -> None:
    """Stage the real-size subset once in this (fresh) process; print peak and baseline RSS."""
    from pcflow import staging  # noqa: F401 - the libraries a staging process holds
    from pcflow.staging import memory

    warm_up_imports()
    baseline = current_rss_mb()
    prefix = f"bench-mem/{uuid.uuid4().hex[:8]}"
    out = run_pcflow(name, real_subset_cfg(), prefix, {"memory_mb": memory_mb})
    if not keep:
        remove_prefix(prefix)
    run = out["run"]
    print(json.dumps({
        "peak_rss_MB": peak_rss_self_mb(), "baseline_rss_MB": baseline,
        "seconds": out["seconds"], "concurrency": run.get("concurrency"),
        "cache_peak_MB": run.get("source_cache_peak_mb"),
        "cache_cap_MB": run.get("source_cache_cap_mb"),
        "source_MB": round((run.get("source_bytes") or 0) / 1e6, 1),
        "overhead_MB": memory.OVERHEAD_MB,
    }))  # fmt: skip


def warm_up_imports() -> None:
    """Import what staging imports lazily (xarray backends, adlfs, the codecs, pyproj)."""
    import adlfs  # noqa: F401
    import numcodecs  # noqa: F401
    import pyproj

    pyproj.CRS.from_epsg(4326)


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cluster_stage_s(name: str, n: int, workers: int, keep: bool) -> dict:
    """Stage the bench subset with its region writes on a cluster of `workers` workers: the
    sandbox's Dask Gateway when DASK_GATEWAY__ADDRESS is set, else a LocalCluster."""
    backend = "gateway" if os.environ.get("DASK_GATEWAY__ADDRESS") else "local"
    cluster = {"backend": backend, "gateway": {
        "auth": "basic", "cluster_options": {"worker_cores": 1, "worker_memory": 2}}}  # fmt: skip
    prefix = f"bench-cluster/{uuid.uuid4().hex[:8]}"
    cfg = {**BENCH_STAGING, "cluster": cluster, "cluster_workers": workers, "task_mb": 64}
    from pcflow import staging

    t0 = time.perf_counter()
    manifest = staging.stage(
        sas_items_doc(name), name, subset_cfg(n), target_cfg(prefix), cfg, {},
        logging.getLogger("bench"),
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    if not keep:
        remove_prefix(prefix)
    return {"seconds": seconds, "backend": backend, "run": manifest["run"],
            "checksum": manifest["checksum"]}  # fmt: skip


def remove_prefix(prefix: str) -> None:
    """Delete what a run wrote (the sources stay for the next run): left behind, every run's
    outputs pile up in Azurite's store and slow the sandbox down."""
    from pcflow import storage

    fs = storage.filesystem(storage.target_storage_options(target_cfg("x")))
    try:
        fs.rm(f"{CONTAINER}/{prefix}", recursive=True)
    except FileNotFoundError:
        pass


def stored_bytes(prefix: str, dataset: str, count: bool = False) -> int:
    """Bytes (or number) of the chunk objects of a staged store (no metadata, no .pcflow)."""
    from pcflow import storage

    tgt = target_cfg(prefix)
    fs = storage.filesystem(storage.target_storage_options(tgt))
    root = storage.target_url(tgt, dataset).split("://", 1)[1]
    sizes = fs.du(root, total=False)
    chunks = [
        s
        for k, s in sizes.items()
        if "/.pcflow/" not in k and not k.rsplit("/", 1)[-1].startswith(".")
    ]
    return len(chunks) if count else sum(chunks)


def raw_upload(nbytes: int, object_size: int, concurrency: int = 8) -> float:
    """Seconds to upload nbytes as objects of object_size with bounded concurrency."""
    import fsspec.asyn

    from pcflow import storage
    from pcflow.staging.retry import blob_service_client

    fs = storage.filesystem(storage.target_storage_options(target_cfg("x")))
    client = blob_service_client(fs)
    payload = np.random.default_rng(0).bytes(object_size)
    count = max(1, round(nbytes / object_size))
    prefix = f"bench-raw/{uuid.uuid4().hex[:8]}"

    async def run() -> float:
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                bc = client.get_blob_client(CONTAINER, f"{prefix}/{i}")
                await bc.upload_blob(payload, overwrite=True, max_concurrency=1)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        seconds = time.perf_counter() - t0
        await client.close()
        return seconds

    seconds = fsspec.asyn.sync(fs.loop, run)
    fs.rm(f"{CONTAINER}/{prefix}", recursive=True)
    return seconds * (nbytes / (count * object_size))


def io_floor(src_name: str, up_bytes: int, up_objects: int, concurrency: int = 8) -> float:
    """Seconds to download every source chunk object and upload up_bytes, concurrently, with no
    decode/encode/checksum: what any re-encoding staging of this subset must at least move (the
    bench's subset touches every source chunk). The best speedup over naive is naive / this."""
    import fsspec.asyn

    from pcflow import storage
    from pcflow.staging.retry import blob_service_client

    fs = storage.filesystem(storage.target_storage_options(target_cfg("x")))
    root = f"{CONTAINER}/bench-src/{src_name}.zarr"
    blobs = [p.split("/", 1)[1] for p in fs.find(root) if not p.rsplit("/", 1)[-1].startswith(".")]
    client = blob_service_client(fs)
    size = max(1, up_bytes // max(1, up_objects))
    payload = np.random.default_rng(1).bytes(size)
    prefix = f"bench-floor/{uuid.uuid4().hex[:8]}"

    async def run() -> float:
        sem = asyncio.Semaphore(concurrency)

        async def down(name: str) -> None:
            async with sem:
                stream = await client.get_blob_client(CONTAINER, name).download_blob()
                await stream.readall()

        async def up(i: int) -> None:
            async with sem:
                bc = client.get_blob_client(CONTAINER, f"{prefix}/{i}")
                await bc.upload_blob(payload, overwrite=True, max_concurrency=1)

        t0 = time.perf_counter()
        await asyncio.gather(*(down(b) for b in blobs), *(up(i) for i in range(up_objects)))
        seconds = time.perf_counter() - t0
        await client.close()
        return seconds

    seconds = fsspec.asyn.sync(fs.loop, run)
    fs.rm(f"{CONTAINER}/{prefix}", recursive=True)
    return seconds


def warm_up(name: str, n: int) -> None:
    """Imports and one-off initialisation (xarray/zarr/adlfs, pyproj's CRS grammar, the asset
    signer: ~1.5 s in a fresh process) before any timing, so that whichever step runs first is
    not charged the process start-up."""
    import xarray as xr

    from pcflow import staging, storage  # noqa: F401
    from pcflow.staging import plan
    from pcflow.staging.zarr_source import SourceAuth

    SourceAuth(source_asset(name), "none", logging.getLogger("bench"))  # imports the signer

    asset = source_asset(name)
    so = storage.source_storage_options(asset["xarray:storage_options"])
    ds = xr.open_zarr(asset["href"], storage_options=so, consolidated=True)
    plan.subset_indexers(ds, subset_cfg(n)["bbox"], subset_cfg(n)["datetime"])


def subset_cfg(n: int) -> dict[str, Any]:
    """A bbox of the grid's central ~60% and a time range cutting through year chunks."""
    import pyproj

    from pcflow.sandbox import demo_data

    x = demo_data.DAYMET_X0 + 1000.0 * np.array([0.2 * n, 0.8 * n])
    y = demo_data.DAYMET_Y0 - 1000.0 * np.array([0.2 * n, 0.8 * n])
    tr = pyproj.Transformer.from_crs(demo_data.daymet_crs(), "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(x, y)
    bbox = [float(min(lon)), float(min(lat)), float(max(lon)), float(max(lat))]
    return {"kind": "zarr", "signing": "none", "bbox": bbox, "datetime": "2018-03-01/2020-10-31",
            "variables": list(VARS)}  # fmt: skip


def full_cfg() -> dict[str, Any]:
    return {"kind": "zarr", "signing": "none", "variables": list(VARS)}


def azurite_cpu_s() -> float | None:
    """CPU seconds Azurite (the sandbox's blob server, on the same cores) has used so far."""
    try:
        state = Path(os.environ["PCFLOW_SANDBOX_DIR"]) / "pids" / "azurite.pid"
        pid = json.loads(state.read_text())["pid"]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (KeyError, OSError, ValueError, IndexError):
        return None


class Cpu:
    """CPU seconds of this process (all threads) and of Azurite over a block."""

    def __enter__(self) -> Cpu:
        self.client0, self.server0 = time.process_time(), azurite_cpu_s()
        return self

    def __exit__(self, *exc: object) -> None:
        server1 = azurite_cpu_s()
        self.client = time.process_time() - self.client0
        self.server = None if server1 is None or self.server0 is None else server1 - self.server0


def run_pcflow(name: str, cfg: dict[str, Any], prefix: str, staging_cfg: dict[str, Any]) -> dict:
    from pcflow import staging

    log = logging.getLogger("bench")
    t0 = time.perf_counter()
    with Cpu() as cpu:
        manifest = staging.stage(
            items_doc(name), name, cfg, target_cfg(prefix), staging_cfg, {}, log
        )
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "cpu_s": cpu.client,
        "server_cpu_s": cpu.server,
        "bytes": stored_bytes(prefix, name),
        "run": manifest["run"],
        "variables": manifest["variables"],
    }


def run_naive(name: str, cfg: dict[str, Any], prefix: str) -> dict:
    """What a user writes without pcflow: open, (subset), to_zarr."""
    import xarray as xr

    from pcflow import storage
    from pcflow.staging import plan

    asset = source_asset(name)
    src_so = storage.source_storage_options(asset["xarray:storage_options"])
    tgt = target_cfg(prefix)
    dst = storage.target_url(tgt, name)
    t0 = time.perf_counter()
    cpu = Cpu().__enter__()
    ds = xr.open_zarr(asset["href"], storage_options=src_so, consolidated=True)
    if cfg.get("bbox") or cfg.get("datetime"):
        ds = ds.isel(plan.subset_indexers(ds, cfg.get("bbox"), cfg.get("datetime")))[list(VARS)]
        # to_zarr needs uniform chunks after the cut: the usual user fix is to rechunk.
        ds = ds.chunk({"time": 365, "y": CHUNK_XY, "x": CHUNK_XY})
        for v in ds.variables.values():
            v.encoding.pop("chunks", None)
            v.encoding.pop("preferred_chunks", None)
    ds.to_zarr(dst, mode="w", zarr_format=2, consolidated=True,
               storage_options=storage.target_storage_options(tgt))  # fmt: skip
    cpu.__exit__()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "cpu_s": cpu.client, "server_cpu_s": cpu.server,
            "bytes": stored_bytes(prefix, name)}  # fmt: skip


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def child(mode: str, name: str, n: int, keep: bool = False) -> None:
    """Run one staging in this (child) process and print its peak RSS."""
    prefix = f"bench-mem/{uuid.uuid4().hex[:8]}"
    cfg = subset_cfg(n) if mode == "subset" else full_cfg()
    if mode == "naive":
        out = run_naive(name, subset_cfg(n), prefix)
    else:
        out = run_pcflow(name, cfg, prefix, BENCH_STAGING)
    if not keep:
        remove_prefix(prefix)
    run = out.get("run", {})
    chunks = sum(
        math.prod(math.ceil(s / c) for s, c in zip(v["shape"], v["chunks"], strict=True))
        for v in out.get("variables", {}).values()
    )
    print(json.dumps({
        "peak_rss_MB": peak_rss_self_mb(), "seconds": out["seconds"],
        "chunks": chunks, "concurrency": run.get("concurrency"),
        "cache_peak_MB": run.get("source_cache_peak_mb"),
        "cache_cap_MB": run.get("source_cache_cap_mb"),
    }))  # fmt: skip


def peak_rss_self_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the
    parent across fork+exec, so a child would report the (bigger) parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(mode: str, name: str, n: int, keep: bool) -> dict:
    res = subprocess.run(
        [sys.executable, __file__, "--child", mode, name, str(n), *(["--keep"] if keep else [])],
        capture_output=True, text=True, check=False, env=dict(os.environ),
    )  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"child {mode} {name} failed: {res.stderr[-1500:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def phase_times(run: dict[str, Any]) -> str:
    """Where a staging run's time went, from its manifest's `run` record."""
    phases = ("open_seconds", "template_seconds", "write_seconds", "verify_seconds")
    return ", ".join(f"{k}={run.get(k)}" for k in phases)


def ratios_only(n: int, keep: bool) -> None:
    """The two client-path figures alone (a minute, not the whole bench): the aligned copy
    through the client vs the raw upload, and the re-encoding subset vs its I/O floor."""
    name, _ = make_source(n)
    warm_up(name, n)
    run_id = uuid.uuid4().hex[:8]
    client = run_pcflow(
        name, full_cfg(), f"bench-{run_id}/aligned-client", {"server_side_copy": False}
    )
    n_objects = len(VARS) * YEARS * math.ceil(n / CHUNK_XY) ** 2
    with Cpu() as raw_cpu:
        raw_s = raw_upload(client["bytes"], client["bytes"] // n_objects)
    subset = run_pcflow(name, subset_cfg(n), f"bench-{run_id}/subset", BENCH_STAGING)
    with Cpu() as floor_cpu:
        floor_s = io_floor(
            name, subset["bytes"], stored_bytes(f"bench-{run_id}/subset", name, True)
        )
    if not keep:
        remove_prefix(f"bench-{run_id}")
    for label, r in (("aligned copy (client)", client), ("subset (re-encode)", subset)):
        print(f"  {label:22s} {r['bytes'] / 1e6:7.1f} MB {r['seconds']:6.2f} s  CPU s: client "
              f"{r['cpu_s']:.2f} Azurite {_round(r['server_cpu_s'])}")  # fmt: skip
        print("    " + phase_times(r["run"]))
    print(f"  raw upload {raw_s:.2f} s (CPU s: client {raw_cpu.client:.2f} Azurite "
          f"{_round(raw_cpu.server)}), subset I/O floor {floor_s:.2f} s (CPU s: client "
          f"{floor_cpu.client:.2f} Azurite {_round(floor_cpu.server)})")  # fmt: skip
    # Azurite serves requests on one Node.js thread, so when Azurite is the bottleneck each step
    # takes its Azurite CPU seconds: the ratio of those bounds the figure (the copy makes Azurite
    # serve a download besides the upload). On a shared machine wall time follows the CPU both
    # use, so (client + Azurite) CPU of the reference / of the step is the other bound.
    srv = client["server_cpu_s"], subset["server_cpu_s"], raw_cpu.server, floor_cpu.server
    bounds = {}
    if None not in srv:
        bounds = {
            "aligned_client_azurite_bound": raw_cpu.server / client["server_cpu_s"],
            "aligned_client_cpu_bound": (raw_cpu.client + raw_cpu.server)
            / (client["cpu_s"] + client["server_cpu_s"]),
            "subset_floor_azurite_bound": floor_cpu.server / subset["server_cpu_s"],
            "subset_floor_cpu_bound": (floor_cpu.client + floor_cpu.server)
            / (subset["cpu_s"] + subset["server_cpu_s"]),
        }
    print(json.dumps({
        "subset_floor_ratio": round(floor_s / subset["seconds"], 3),
        "aligned_client_ratio": round(raw_s / client["seconds"], 3),
        "subset_s": round(subset["seconds"], 3), "subset_io_floor_s": round(floor_s, 3),
        "aligned_client_s": round(client["seconds"], 3), "raw_upload_s": round(raw_s, 3),
        "subset_cpu_s": [_round(subset["cpu_s"]), _round(subset["server_cpu_s"])],
        "aligned_client_cpu_s": [_round(client["cpu_s"]), _round(client["server_cpu_s"])],
        "raw_upload_cpu_s": [_round(raw_cpu.client), _round(raw_cpu.server)],
        "subset_io_floor_cpu_s": [_round(floor_cpu.client), _round(floor_cpu.server)],
        **{k: round(v, 3) for k, v in bounds.items()},
        "n": n,
    }))  # fmt: skip


def cluster_only(n: int, keep: bool) -> None:
    """The subset staged in-process, then with its region writes on 1 and 2 cluster workers
    (the sandbox's Gateway when its env is exported), with where the cluster runs' time goes."""
    name, _ = make_source(n)
    warm_up(name, n)
    run_id = uuid.uuid4().hex[:8]
    local = run_pcflow(name, subset_cfg(n), f"bench-{run_id}/subset", BENCH_STAGING)
    clustered = {w: cluster_stage_s(name, n, w, keep) for w in (1, 2)}
    if not keep:
        remove_prefix(f"bench-{run_id}")
    print(f"  in-process subset {local['seconds']:.1f} s: {phase_times(local['run'])}")
    for w, c in clustered.items():
        print(f"  cluster ({c['backend']}) {w} worker(s): {c['seconds']:.1f} s, "
              f"{c['run'].get('cluster_tasks')} tasks: {phase_times(c['run'])}")  # fmt: skip
    print(json.dumps({
        "cluster_stage_s_1w": round(clustered[1]["seconds"], 2),
        "cluster_stage_s_2w": round(clustered[2]["seconds"], 2),
        "cluster_backend": clustered[1]["backend"],
        "cluster_same_checksum": clustered[1]["checksum"] == clustered[2]["checksum"],
        "in_process_stage_s": round(local["seconds"], 2),
        "n": n,
    }))  # fmt: skip


def main() -> None:
    from pcflow.staging import plan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="96,192", help="grid sizes n (n x n cells), small,large")
    parser.add_argument(
        "--mem-sizes",
        default="192,384",
        help=f"grid sizes for the peak-RSS runs (sources in {MEM_CHUNK_XY}-cell tiles)",
    )
    parser.add_argument("--keep", action="store_true", help="keep what the runs wrote")
    parser.add_argument(
        "--ratios-only",
        action="store_true",
        help="quick mode: only subset_floor_ratio and aligned_client_ratio (n = the large size)",
    )
    parser.add_argument(
        "--cluster-only",
        action="store_true",
        help="quick mode: only cluster_stage_s_1w/_2w, beside the same subset in-process",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--real-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.real_child:
        real_child(args.real_child[0], float(args.real_child[1]), args.keep)
        return
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.keep)
        return
    if "PCFLOW_TARGET_ACCOUNT_NAME" not in os.environ:
        sys.exit('run `eval "$(pcflow sandbox env)"` first (the sandbox must be up)')
    small, large = (int(s) for s in args.sizes.split(","))
    if args.ratios_only:
        ratios_only(large, args.keep)
        return
    if args.cluster_only:
        cluster_only(large, args.keep)
        return
    mem_small, mem_large = (int(s) for s in args.mem_sizes.split(","))
    run_id = uuid.uuid4().hex[:8]
    print(f"sources: Daymet-shaped float32 (time={365 * YEARS}, y=n, x=n) x {len(VARS)} vars")
    sources, mem_sources = {}, {}
    for n in sorted({small, large}):
        sources[n], nbytes = make_source(n)
        print(f"  n={n}: {sources[n]} {nbytes / 1e6:.1f} MB stored")
    for n in (mem_small, mem_large):
        mem_sources[n], nbytes = make_source(n, MEM_CHUNK_XY)
        print(f"  n={n}: {mem_sources[n]} {nbytes / 1e6:.1f} MB stored (peak-RSS runs)")
    n = large
    name = sources[n]
    warm_up(name, n)

    rows = []
    aligned = run_pcflow(name, full_cfg(), f"bench-{run_id}/aligned", {})
    aligned_client = run_pcflow(
        name, full_cfg(), f"bench-{run_id}/aligned-client", {"server_side_copy": False}
    )
    # The ceiling uploads the same bytes in objects of the staged chunk objects' mean size.
    n_objects = len(VARS) * YEARS * math.ceil(n / CHUNK_XY) ** 2
    raw_s = raw_upload(aligned["bytes"], aligned["bytes"] // n_objects)
    raw = {"seconds": raw_s, "bytes": aligned["bytes"]}
    naive = run_naive(name, full_cfg(), f"bench-{run_id}/naive")
    subset = run_pcflow(name, subset_cfg(n), f"bench-{run_id}/subset", BENCH_STAGING)
    naive_subset = run_naive(name, subset_cfg(n), f"bench-{run_id}/naive-subset")
    floor_s = io_floor(name, subset["bytes"], stored_bytes(f"bench-{run_id}/subset", name, True))
    src_stored = aligned["bytes"]

    def mbps(r: dict) -> float:
        return r["bytes"] / 1e6 / r["seconds"]

    rows = [
        ("raw blob upload (ceiling)", raw),
        ("(a) pcflow aligned copy (server-side copy)", aligned),
        ("(a) pcflow aligned copy (through client)", aligned_client),
        ("(a) naive open_zarr().to_zarr()", naive),
        ("(b) pcflow bbox+time subset (re-encode)", subset),
        ("(b) naive open_zarr().isel().to_zarr()", naive_subset),
    ]
    for label, r in (("aligned", aligned), ("subset", subset)):
        keys = (
            "seconds",
            "open_seconds",
            "template_seconds",
            "write_seconds",
            "verify_seconds",
            "server_side_copies",
            "bytes_written",
            "source_bytes",
        )
        print(f"  pcflow {label}: " + ", ".join(f"{k}={r['run'].get(k)}" for k in keys))
    read = (subset["run"].get("source_bytes") or 0) / src_stored
    print(f"  subset read {read:.2f}x the source's stored bytes (write + verification)")
    print(
        f"  I/O floor of the subset (download the source + upload the result, no codec): "
        f"{floor_s:.2f} s -> best possible speedup over naive "
        f"{naive_subset['seconds'] / floor_s:.2f}"
    )
    print(f"\nthroughput, n={n} ({aligned['bytes'] / 1e6:.0f} MB stored):")
    cores = os.cpu_count() or 1
    print(f"  {'step':46s} {'MB':>8s} {'s':>7s} {'MB/s':>8s}   CPU s: client  Azurite  "
          f"(both)/{cores} cores")  # fmt: skip
    for label, r in rows:
        cpu = ""
        if r.get("server_cpu_s") is not None:
            floor = (r["cpu_s"] + r["server_cpu_s"]) / cores
            cpu = f"{r['cpu_s']:14.2f} {r['server_cpu_s']:8.2f} {floor:10.2f}"
        print(f"  {label:46s} {r['bytes'] / 1e6:8.1f} {r['seconds']:7.2f} {mbps(r):8.1f} {cpu}")
    print("  (a step cannot take less than its CPU seconds / cores: client and server share them)")

    mem = {}
    small, large = mem_small, mem_large
    for size in (small, large):
        modes = ("subset", "aligned", "naive")
        mem[size] = {m: peak_rss(m, mem_sources[size], size, args.keep) for m in modes}
    print("\npeak RSS of one staging in a child process (MB):")
    print(f"  {'n':>5s} {'pcflow subset':>14s} {'pcflow aligned':>15s} {'naive subset':>13s}"
          f"  subset chunks written / in flight, decoded-source cache peak / cap")  # fmt: skip
    for size in (small, large):
        m = mem[size]
        print(
            f"  {size:5d} {m['subset']['peak_rss_MB']:14.0f} {m['aligned']['peak_rss_MB']:15.0f} "
            f"{m['naive']['peak_rss_MB']:13.0f}  {m['subset'].get('chunks')} / "
            f"{m['subset'].get('concurrency')}, {m['subset'].get('cache_peak_MB')} / "
            f"{m['subset'].get('cache_cap_MB')} MB"
        )
    strip = plan.STRIP_SOURCE_CHUNKS
    print("  (memory: chunks in flight + the decoded-source cache, whose working set is a strip")
    print(f"   of {strip} source columns: flat once both datasets fill the pipeline and a strip;")
    print("   the aligned copy and the naive run are for reference)")
    # Real-size (242 MB) source chunks: peak RSS at two budgets, each in a fresh process.
    real_name, real_bytes = make_real_source()
    print(f"\nreal-size chunks: {real_name} (365 x {REAL_NY} x {REAL_NX} float32 chunks, "
          f"{real_bytes / 1e6:.0f} MB stored), subset {real_subset_cfg()['bbox']}")  # fmt: skip
    real = {}
    for mem_mb in REAL_MEMORY_MB:
        res = subprocess.run(
            [sys.executable, __file__, "--real-child", real_name, str(mem_mb),
             *(["--keep"] if args.keep else [])],
            capture_output=True, text=True, check=False, env=dict(os.environ),
        )  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"real-chunk child {mem_mb} failed: {res.stderr[-1500:]}")
        real[mem_mb] = json.loads(res.stdout.strip().splitlines()[-1])
        r = real[mem_mb]
        limit = (mem_mb + r["overhead_MB"]) * 1e6 / 2**20
        print(
            f"  memory_mb={mem_mb}: peak RSS {r['peak_rss_MB']:.0f} MiB (baseline after "
            f"imports {r['baseline_rss_MB']:.0f} MiB; budget + overhead {limit:.0f} MiB), "
            f"{r['concurrency']} in flight, cache peak/cap {r['cache_peak_MB']}/"
            f"{r['cache_cap_MB']} MB, source read {r['source_MB']} MB, {r['seconds']:.1f} s"
        )

    # Region writes on a cluster (1 and 2 workers), same subset as (b).
    clustered = {w: cluster_stage_s(name, n, w, args.keep) for w in (1, 2)}
    for w, c in clustered.items():
        print(f"  cluster ({c['backend']}) {w} worker(s): {c['seconds']:.1f} s "
              f"({c['run'].get('cluster_tasks')} tasks; in-process subset: "
              f"{subset['seconds']:.1f} s)")  # fmt: skip
    same = clustered[1]["checksum"] == clustered[2]["checksum"]

    summary = {
        "peak_rss_MB_real_chunks_1024": round(real[1024]["peak_rss_MB"], 1),
        "peak_rss_MB_real_chunks_2048": round(real[2048]["peak_rss_MB"], 1),
        "real_chunks_baseline_rss_MB": round(real[1024]["baseline_rss_MB"], 1),
        "memory_overhead_MB": real[1024]["overhead_MB"],
        "cluster_stage_s_1w": round(clustered[1]["seconds"], 2),
        "cluster_stage_s_2w": round(clustered[2]["seconds"], 2),
        "cluster_backend": clustered[1]["backend"],
        "cluster_same_checksum": same,
        "subset_floor_ratio": round(floor_s / subset["seconds"], 3),
        "raw_upload_MBps": round(mbps(raw), 2),
        "aligned_copy_MBps": round(mbps(aligned), 2),
        "aligned_client_copy_MBps": round(mbps(aligned_client), 2),
        "subset_MBps": round(mbps(subset), 2),
        "naive_MBps": round(mbps(naive), 2),
        "naive_subset_MBps": round(mbps(naive_subset), 2),
        "aligned_ratio": round(mbps(aligned) / mbps(raw), 3),
        "aligned_client_ratio": round(mbps(aligned_client) / mbps(raw), 3),
        "subset_speedup": round(naive_subset["seconds"] / subset["seconds"], 2),
        # [client, Azurite] CPU seconds of the subset step
        "subset_cpu_s": [_round(subset["cpu_s"]), _round(subset["server_cpu_s"])],
        "naive_subset_cpu_s": [_round(naive_subset["cpu_s"]), _round(naive_subset["server_cpu_s"])],
        "subset_io_floor_s": round(floor_s, 3),
        "subset_speedup_ceiling": round(naive_subset["seconds"] / floor_s, 2),
        "subset_source_read_ratio": round(read, 2),
        "peak_rss_MB_small": round(max(mem[small][m]["peak_rss_MB"] for m in PCFLOW_MODES), 1),
        "peak_rss_MB_large": round(max(mem[large][m]["peak_rss_MB"] for m in PCFLOW_MODES), 1),
        "subset_cache_peak_MB_small": mem[small]["subset"].get("cache_peak_MB"),
        "subset_cache_peak_MB_large": mem[large]["subset"].get("cache_peak_MB"),
        "naive_peak_rss_MB_small": round(mem[small]["naive"]["peak_rss_MB"], 1),
        "naive_peak_rss_MB_large": round(mem[large]["naive"]["peak_rss_MB"], 1),
        "sizes": [int(x) for x in args.sizes.split(",")],
        "mem_sizes": [small, large],
    }  # fmt: skip
    if not args.keep:
        remove_prefix(f"bench-{run_id}")
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
