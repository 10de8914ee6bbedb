"""`snakemake --profile kbatch` from a fresh clone: every rule a kbatch job, same results as local.

Runs last (slowest): the local kbatch (real kbatch-proxy over a subprocess job runner) executes
each rule in its own pod working dir from Snakemake's sources archive, sharing state only
through Azurite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kbatch_run(sandbox, demo_run, tmp_path_factory):
    sandbox.up(services=("kbatch",), seed=False)
    env = {**os.environ, **sandbox.env()}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    # The test config is an untracked file in the clone, hence the explicit override.
    env["PCFLOW_ALLOW_DIRTY"] = "1"
    clone = tmp_path_factory.mktemp("kbatch") / "pcflow"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["target"]["prefix"] = "kbatch-e2e"
    # The Daymet dataset with one reduction: still every rule (discover, stage, reduce, plot,
    # the run record) as a kbatch job; the whole demo runs locally in test_workflow.py.
    cfg["datasets"] = {
        "daymet-hi": {**cfg["datasets"]["daymet-hi"], "reductions": ["spatial_mean"]}
    }
    (clone / "config" / "kbatch-e2e.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        ["snakemake", "--profile", "kbatch", "--configfile", "config/kbatch-e2e.yaml"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return {"clone": clone, "env": env, "proc": proc}


def remote_file(path: str) -> bytes:
    from pcflow import storage

    options = storage.target_storage_options(
        {"account_name": os.environ["PCFLOW_TARGET_ACCOUNT_NAME"]}
    )
    return storage.filesystem(options).cat(path)


def test_every_rule_ran_as_a_kbatch_job(kbatch_run):
    logs = sorted(p.name for p in (kbatch_run["clone"] / ".snakemake" / "kbatch-logs").iterdir())
    rules = {re.match(r"smk-([a-z]+)-", name).group(1) for name in logs}
    assert {"discover", "stage", "reduce", "plot"} <= rules


def test_kbatch_results_equal_the_local_run(kbatch_run, demo_run, tmp_path):
    local = demo_run["workdir"] / "results" / "daymet-hi" / "spatial_mean.nc"
    remote = tmp_path / "spatial_mean.nc"
    remote.write_bytes(remote_file("snakemake/pcflow/results/daymet-hi/spatial_mean.nc"))
    with xr.open_dataset(local) as a, xr.open_dataset(remote) as b:
        for var in ("tmin", "tmax", "prcp"):
            assert np.array_equal(a[var].values, b[var].values), var


def test_no_kbatch_job_survives_the_run(kbatch_run):
    from kbatch import _core

    jobs = _core.list_jobs(
        kbatch_url=kbatch_run["env"]["KBATCH_URL"], token=kbatch_run["env"]["KBATCH_TOKEN"]
    )
    assert jobs["items"] == []


def test_no_secret_in_job_specs_or_logs_on_disk(kbatch_run, sandbox):
    secrets = [v.encode() for k, v in sandbox.env().items() if "KEY" in k or "TOKEN" in k]
    scanned = 0
    for root in (kbatch_run["clone"] / ".snakemake", sandbox.state_dir / "kbatch"):
        for path in root.rglob("*"):
            if path.is_file() and path.name != "kbatch-token" and path.stat().st_size < 5_000_000:
                data = path.read_bytes()
                scanned += 1
                for secret in secrets:
                    assert secret not in data, f"secret in {path}"
                assert not re.search(rb"sig=[A-Za-z0-9%/+]{20,}", data), f"SAS signature in {path}"
    assert scanned > 10


def test_dry_run_after_the_run_sees_the_stored_outputs(kbatch_run):
    """With the storage up, `-n` asks it (no offline assumption) and finds everything done."""
    proc = subprocess.run(
        ["snakemake", "--profile", "kbatch", "-n", "--configfile", "config/kbatch-e2e.yaml"],
        cwd=kbatch_run["clone"], env=kbatch_run["env"], capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "out of reach" not in out
    assert "Nothing to be done" in out, out[-3000:]
