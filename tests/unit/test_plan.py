"""Dry-run plan: size estimates against the demo grid computed independently, job counting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyproj
import pytest

from pcflow import estimate as plan
from pcflow.sandbox import demo_data

REPO = Path(__file__).resolve().parents[2]
DS = {
    "collection": "daymet-daily-hi",
    "kind": "zarr",
    "bbox": [-156.1, 19.1, -154.8, 20.3],
    "datetime": "2019-01-01/2020-12-31",
    "variables": ["tmin", "tmax", "prcp"],
}


def test_zarr_estimate_matches_the_demo_grid():
    collection = demo_data.daymet_collection("https://127.0.0.1:1")
    est = plan.estimate_zarr(DS, collection, {"chunk_mb": 100})
    # Independently: grid cells whose centres fall in the bbox envelope, days in 2019-2020.
    x, y = demo_data.daymet_xy()
    to_grid = pyproj.Transformer.from_crs("EPSG:4326", demo_data.daymet_crs(), always_xy=True)
    xmin, ymin, xmax, ymax = to_grid.transform_bounds(*DS["bbox"], densify_pts=21)
    nx = int(np.count_nonzero((x >= xmin) & (x <= xmax)))
    ny = int(np.count_nonzero((y >= ymin) & (y <= ymax)))
    times = demo_data.daymet_time()
    nt = int(np.count_nonzero((times >= "2019-01-01") & (times <= "2020-12-31T23:59")))
    assert est["window"]["x"] == nx and est["window"]["y"] == ny
    assert est["bytes_write"] == 3 * nt * ny * nx * 4
    # Source chunks are one year x whole grid: 2 years touched per variable.
    assert est["source_chunks"] == 3 * 2
    assert est["bytes_read"] == 3 * 2 * 365 * demo_data.DAYMET_NY * demo_data.DAYMET_NX * 4
    # Each variable (~9 MB) is far below 100 MB: one chunk and one region each.
    assert nt * ny * nx * 4 < 100e6
    assert est["target_chunks"] == 3 and est["regions"] == 3


def test_egress_only_when_regions_differ(tmp_path):
    collection = demo_data.daymet_collection("https://127.0.0.1:1")
    config = {"datasets": {"d": DS}, "target": {"region": "westeurope"}, "staging": {}}
    same = plan.dataset_plan("d", config, tmp_path, collection)
    assert same["egress_bytes"] == 0 and same["discovered"] is False
    config["target"]["region"] = "eastus"
    far = plan.dataset_plan("d", config, tmp_path, collection)
    assert far["egress_bytes"] == far["estimate"]["bytes_read"] > 0
    text = plan.format_plan([far], {"discover": 1, "stage": 1}, "kbatch", {"discover"})
    assert "egress:" in text and "from westeurope to eastus" in text
    assert "kbatch: 1 jobs would be submitted (stage 1); local: discover" in text


def test_cog_plan_uses_discovered_items(tmp_path):
    items = [demo_data.s2_item(s, "https://127.0.0.1:1") for s in demo_data.s2_scenes()]
    ds = {
        "collection": "sentinel-2-l2a",
        "kind": "cog",
        "bbox": items[0]["bbox"],
        "datetime": "2020-06-01/2020-08-31",
        "assets": ["B04", "B08"],
        "crs": "EPSG:32605",
        "resolution": 10,
    }
    (tmp_path / "s2").mkdir()
    doc = {"item_ids": [i["id"] for i in items], "items": items, "msft:region": "westeurope"}
    (tmp_path / "s2" / "items.json").write_text(json.dumps(doc))
    config = {"datasets": {"s2": ds}, "target": {"region": "westeurope"}, "staging": {}}
    p = plan.dataset_plan("s2", config, tmp_path)
    assert p["discovered"] and p["items"] == len(items)
    assert p["estimate"]["bytes_read"] > 0 and p["estimate"]["bytes_write"] > 0
    dates = {i["properties"]["datetime"][:10] for i in items}
    assert p["estimate"]["window"]["dates"] == len(dates)
    assert p["estimate"]["regions"] >= len(ds["assets"])


def test_parse_job_stats():
    text = """Job stats:
job         count
--------  -------
discover        2
stage           2
all             1
total           5

Reasons:"""
    assert plan.parse_job_stats(text) == {"discover": 2, "stage": 2, "all": 1}


def test_local_rules_read_from_the_rule_files():
    local = plan.local_rules(REPO)
    assert "run_record" in local  # bookkeeping in the main process
    assert not {"discover", "stage", "reduce", "plot"} & local  # every data rule is a job


@pytest.mark.timeout(300)
def test_snakemake_dry_run_prints_the_plan(tmp_path):
    """`snakemake -n` itself prints the pcflow plan (hook in rules/provenance.smk)."""
    snakemake = Path(sys.executable).parent / "snakemake"
    cmd = [str(snakemake), "-s", str(REPO / "Snakefile"), "--configfile"]
    cmd += [str(REPO / "config" / "demo.yaml"), "-n", "--directory", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "pcflow plan" in out and "dataset daymet-hi" in out and "not discovered yet" in out
