"""End-to-end fixtures: one demo workflow run against the sandbox, shared by all e2e tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def run_snakemake(
    workdir: Path, configfile: Path, *args: str, env: dict | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the repo's Snakefile in workdir (results/, logs/ and .snakemake/ land there)."""
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--cores",
        "2",
        *args,
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env or os.environ.copy(), timeout=1200
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def demo_config(tmp_path_factory, sandbox) -> Path:
    """The demo config with its own target prefix, so e2e runs never see another run's store."""
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["target"]["prefix"] = "e2e"
    path = tmp_path_factory.mktemp("e2e-config") / "demo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, sandbox, demo_config):
    """Run the whole demo workflow once; tests inspect its outputs."""
    workdir = tmp_path_factory.mktemp("e2e-run")
    proc = run_snakemake(workdir, demo_config)
    return {
        "workdir": workdir,
        "config": demo_config,
        "proc": proc,
        "cfg": yaml.safe_load(demo_config.read_text()),
    }
