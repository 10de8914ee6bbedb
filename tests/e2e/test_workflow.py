"""The whole demo workflow against the sandbox: outputs, numbers, no-op re-run, report, secrets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

from tests.e2e.conftest import run_snakemake
from tests.integration.gateway_helpers import active_clusters

pytestmark = pytest.mark.e2e


def results(run, *parts):
    return run["workdir"].joinpath("results", *parts)


def test_outputs_exist(demo_run):
    for dataset, ds in demo_run["cfg"]["datasets"].items():
        for name in ("items.json", "staged.json", "collection.json"):
            assert results(demo_run, dataset, name).stat().st_size > 0
        for reduction in ds.get("reductions", ["spatial_mean"]):
            assert results(demo_run, dataset, f"{reduction}.nc").stat().st_size > 0
            png = results(demo_run, dataset, "figures", f"{reduction}.png")
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def open_source_store(sandbox) -> xr.Dataset:
    """The sandbox's daymet-daily-hi store read directly with xarray, the MPC way (signed)."""
    import planetary_computer
    import pystac_client

    env = sandbox.env()
    client = pystac_client.Client.open(
        env["PCFLOW_STAC_API"], modifier=planetary_computer.sign_inplace
    )
    asset = client.get_collection("daymet-daily-hi").assets["zarr-abfs"]
    so = dict(asset.extra_fields["xarray:storage_options"])
    so["account_host"] = env["PCFLOW_AZURE_ACCOUNT_HOST"].format(account_name=so["account_name"])
    return xr.open_zarr(asset.href, **asset.extra_fields["xarray:open_kwargs"], storage_options=so)


def bbox_cells(source: xr.Dataset, bbox: list[float]) -> np.ndarray:
    """(y, x) bool: source cells whose 2-D lat/lon lie in the bbox (independent of pcflow)."""
    lon, lat = source["lon"].values, source["lat"].values
    return (lon >= bbox[0]) & (lon <= bbox[2]) & (lat >= bbox[1]) & (lat <= bbox[3])


@pytest.fixture(scope="module")
def source_in_bbox(demo_run, sandbox):
    """Source values of the demo's period at the cells whose lat/lon lie in its bbox."""
    ds_cfg = demo_run["cfg"]["datasets"]["daymet-hi"]
    start, end = ds_cfg["datetime"].split("/")
    source = open_source_store(sandbox)
    inside = bbox_cells(source, ds_cfg["bbox"])
    rows, cols = np.nonzero(inside)
    box = {"y": slice(rows.min(), rows.max() + 1), "x": slice(cols.min(), cols.max() + 1)}
    window = source.sel(time=slice(start, f"{end}T23:59")).isel(box)
    values = {v: window[v].values for v in ds_cfg["variables"]}
    return {"inside": inside[box["y"], box["x"]], "values": values, "time": window.time.values}


def test_spatial_mean_is_the_mean_over_the_bbox(demo_run, source_in_bbox):
    """The workflow's spatial mean equals a NumPy mean over the source cells whose lat/lon lie
    in the bbox (xarray straight from the source store), to float precision. Before the region
    mask it averaged the whole rectangular native window (about twice the bbox on Daymet's
    rotated grid)."""
    inside = source_in_bbox["inside"]
    assert 0 < inside.sum() < inside.size
    with xr.open_dataset(results(demo_run, "daymet-hi", "spatial_mean.nc")) as got:
        np.testing.assert_array_equal(got["time"].values, source_in_bbox["time"])
        for var, values in source_in_bbox["values"].items():
            expected = np.nanmean(values[:, inside].astype("float64"), axis=1)
            np.testing.assert_allclose(got[var].values, expected, rtol=1e-9)
        assert got.attrs["region_cells"] == inside.sum()


def test_annual_precipitation_is_nan_over_the_ocean(demo_run, source_in_bbox):
    """The demo bbox holds coast: ocean cells have no data, so their annual totals are NaN
    (a plain sum gave 0 mm); land totals equal the source's sums."""
    prcp = source_in_bbox["values"]["prcp"].astype("float64")
    no_data = np.isnan(prcp).all(axis=0)
    ocean, land = no_data & source_in_bbox["inside"], ~no_data & source_in_bbox["inside"]
    assert ocean.sum() > 10 and land.sum() > 10, "the demo bbox must cover land and ocean"
    years = np.asarray(source_in_bbox["time"], dtype="datetime64[Y]").astype(int) + 1970
    with xr.open_dataset(results(demo_run, "daymet-hi", "annual.nc")) as annual:
        assert [str(t)[:4] for t in annual["time"].values] == ["2019", "2020"]
        in_region = annual["region_mask"].transpose("y", "x").values == 1
        assert in_region.sum() == source_in_bbox["inside"].sum()
        for i, year in enumerate((2019, 2020)):
            cells = annual["prcp"].isel(time=i).transpose("y", "x").values[in_region]
            assert np.isnan(cells).sum() == ocean.sum()  # ocean: NaN, not 0 mm
            expected = np.sort(prcp[years == year][:, land].sum(axis=0))
            np.testing.assert_allclose(np.sort(cells[np.isfinite(cells)]), expected, rtol=1e-6)


def test_plan_window_is_the_staged_window(demo_run):
    """`pcflow plan` (what `snakemake -n` reports) plans exactly the window staging wrote."""
    proc = subprocess.run(
        [sys.executable, "-m", "pcflow.cli", "plan", "--configfile", str(demo_run["config"]),
         "--no-jobs", "--json"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300,
        cwd=demo_run["workdir"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    plans = {p["dataset"]: p for p in json.loads(proc.stdout)["datasets"]}
    window = plans["daymet-hi"]["estimate"]["window"]
    staged = json.loads(results(demo_run, "daymet-hi", "staged.json").read_text())
    nt, ny, nx = staged["variables"]["tmax"]["shape"]
    assert (window["y"], window["x"]) == (ny, nx)


def test_staged_zarr_reopens_in_fresh_process_the_mpc_way(demo_run):
    """Open the staged store from collection.json exactly like the MPC quickstart opens MPC data."""
    collection = results(demo_run, "daymet-hi", "collection.json")
    code = textwrap.dedent(f"""
        import json, pystac, xarray as xr
        from pcflow.storage import with_account_host
        col = pystac.Collection.from_file({str(collection)!r})
        asset = col.assets["zarr-abfs"]
        so = dict(asset.extra_fields["xarray:storage_options"])
        import os
        so["account_key"] = os.environ["PCFLOW_TARGET_ACCOUNT_KEY"]
        ds = xr.open_zarr(asset.href, **asset.extra_fields["xarray:open_kwargs"],
                          storage_options=with_account_host(so))
        print(json.dumps({{"vars": sorted(ds.data_vars), "sizes": dict(ds.sizes)}}))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    opened = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"tmin", "tmax", "prcp"} <= set(opened["vars"])
    assert opened["sizes"]["time"] == 730  # 2019 + 2020 in Daymet's 365-day calendar


def test_rerun_is_a_no_op(demo_run):
    proc = run_snakemake(demo_run["workdir"], demo_run["config"], "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_report_holds_the_figures(demo_run):
    report = demo_run["workdir"] / "report.html"
    run_snakemake(demo_run["workdir"], demo_run["config"], "--report", str(report))
    html = report.read_text(errors="replace")
    assert "spatial_mean" in html and len(html) > 10_000


SECRET_PATTERNS = [
    re.compile(rb"sig(?:=|%3D)[A-Za-z0-9%/+]{20,}"),
    re.compile(rb"AccountKey=[A-Za-z0-9+/=]{20,}"),
    re.compile(rb"[Ss]ubscription-[Kk]ey=[A-Za-z0-9]{16,}"),
    re.compile(rb"Bearer [A-Za-z0-9._-]{16,}"),
]


def _png_texts(data: bytes) -> list[bytes]:
    """The text of a PNG's tEXt/zTXt/iTXt chunks, zlib-compressed ones decompressed."""
    import struct
    import zlib

    texts, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"tEXt":
            texts.append(body)
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            texts.append(key + b"\0" + zlib.decompress(rest[1:]))
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed, text = rest[0], rest[2:].split(b"\0", 2)[-1]
            texts.append(key + b"\0" + (zlib.decompress(text) if compressed else text))
    return texts


def _stored_metadata(sandbox, prefix: str) -> dict[str, bytes]:
    """Every metadata blob (.zattrs, .zmetadata, .zarray, .pcflow/*) of the e2e stores."""
    from azure.storage.blob import BlobServiceClient

    env = sandbox.env()
    container = BlobServiceClient.from_connection_string(
        env["AZURITE_CONNECTION_STRING"]
    ).get_container_client("pcflow")
    blobs = {}
    for blob in container.list_blobs(name_starts_with=prefix + "/"):
        name = blob.name
        if name.rsplit("/", 1)[-1].startswith(".") or "/.pcflow/" in name:
            blobs[name] = container.download_blob(name).readall()
    return blobs


def _scan(where: str, data: bytes, secrets: list[bytes]) -> None:
    for secret in secrets:
        assert secret not in data, f"secret value in {where}"
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(data), f"{pattern.pattern} in {where}"


def test_no_secret_in_results_logs_or_git(demo_run, sandbox):
    secrets = [
        v.encode()
        for k, v in sandbox.env().items()
        if any(w in k for w in ("KEY", "TOKEN", "PASSWORD"))
    ]
    assert secrets, "the sandbox must export at least the target account key"
    scanned = pngs = 0
    report = demo_run["workdir"] / "report.html"
    if not report.exists():
        run_snakemake(demo_run["workdir"], demo_run["config"], "--report", str(report))
    files = [report] + [
        path
        for folder in ("results", "logs", ".snakemake/log")
        for path in (demo_run["workdir"] / folder).rglob("*")
        if path.is_file()
    ]
    for path in files:
        data = path.read_bytes()
        scanned += 1
        _scan(str(path), data, secrets)
        if path.suffix == ".png":
            texts = _png_texts(data)
            pngs += bool(texts)
            for text in texts:
                _scan(f"{path} (PNG text chunk)", text, secrets)
    assert pngs >= 1, "no PNG text chunk (matplotlib writes at least Software) was read"
    stored = _stored_metadata(sandbox, demo_run["cfg"]["target"]["prefix"])
    assert any(name.endswith("/.zattrs") for name in stored), sorted(stored)[:5]
    for name, data in stored.items():
        _scan(f"blob {name}", data, secrets)
    assert scanned >= 8
    tracked = subprocess.run(
        ["git", "grep", "-I", "-l", "-E", r"sig=[A-Za-z0-9%/+]{20,}"],
        capture_output=True,
        text=True,
    )
    assert tracked.stdout.strip() == ""


def test_cog_path_honours_the_query_and_yields_monthly_ndvi(demo_run, sandbox):
    """Sentinel-2-like COGs: the cloud-cover query drops scenes; NDVI has one map per month."""
    import pystac_client

    ds_cfg = demo_run["cfg"]["datasets"]["s2-hilo"]
    limit = ds_cfg["query"]["eo:cloud_cover"]["lt"]
    client = pystac_client.Client.open(sandbox.env()["PCFLOW_STAC_API"])
    all_items = list(client.search(collections=["sentinel-2-l2a"]).items())
    expected = sorted(i.id for i in all_items if i.properties["eo:cloud_cover"] < limit)
    assert 0 < len(expected) < len(all_items)
    items_doc = json.loads(results(demo_run, "s2-hilo", "items.json").read_text())
    assert sorted(items_doc["item_ids"]) == expected
    months = sorted({i.datetime.strftime("%Y-%m") for i in all_items if i.id in expected})
    with xr.open_dataset(results(demo_run, "s2-hilo", "ndvi_monthly.nc")) as ndvi:
        assert [str(t)[:7] for t in ndvi["time"].values] == months
        values = ndvi["ndvi"].values
        assert np.isfinite(values).any() and np.nanmin(values) >= -1 and np.nanmax(values) <= 1


def test_gateway_backed_reduction_matches_local_and_leaves_no_cluster(demo_run, sandbox, tmp_path):
    """The same reduction on a Dask Gateway cluster (real dask-gateway-server) gives the same
    numbers, its workers read the staged Zarr from Azurite, and no cluster outlives the rule."""
    sandbox.up(services=("gateway",), seed=False)
    env = {**os.environ, **sandbox.env(), "PCFLOW_COMPUTE_BACKEND": "gateway"}
    target = "results/daymet-hi/spatial_mean.nc"
    run_snakemake(tmp_path, demo_run["config"], target, env=env)
    log = (tmp_path / "logs" / "reduce" / "daymet-hi" / "spatial_mean.log").read_text()
    assert "GatewayCluster" in log and "shut down" in log
    with (
        xr.open_dataset(tmp_path / target) as got,
        xr.open_dataset(results(demo_run, "daymet-hi", "spatial_mean.nc")) as local,
    ):
        for var in ("tmin", "tmax", "prcp"):
            np.testing.assert_allclose(got[var].values, local[var].values, rtol=1e-6)
    # Authenticated with the sandbox gateway's password (this process's dask config predates it).
    assert active_clusters(env["DASK_GATEWAY__ADDRESS"], env) == []
