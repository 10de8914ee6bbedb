"""Shared pieces of the staging integration tests (not a test module)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from pcflow import discover, storage

DAYMET_CFG = {
    "collection": "daymet-daily-hi",
    "kind": "zarr",
    "asset": "zarr-abfs",
    "signing": "planetary-computer",
    "bbox": [-160.3056, 17.9539, -154.772, 23.5186],  # MPC's extent: the whole grid, aligned
    "datetime": "2019-01-01/2020-12-31",  # whole one-year chunks
    "variables": ["tmin", "tmax", "prcp"],
}
# Not aligned with anything: a bbox inside the grid and a time range inside year chunks.
# MPC's Daymet chunks are a year x the whole grid (242 MB decoded). A time-contiguous target
# chunk across two years needs both years' chunks at once (484 MB per variable): at the
# default memory_mb 1024 the decoded-source cache is smaller than that and each target chunk
# decodes its source chunks again (staging warns). The tests give staging room for one strip.
TEST_MEMORY_MB = 2000  # the workflow caps it at half the stage job's mem_mb (4000)
DAYMET_SUBSET = {"bbox": [-155.6, 19.5, -155.3, 19.8], "datetime": "2019-03-10/2020-07-01"}

RUNNER = """
import json, logging, sys
from pcflow import staging
logging.basicConfig(level=logging.INFO)
args = json.load(open(sys.argv[1]))
m = staging.stage(args["items"], args["name"], args["dataset"], args["target"], args["staging"],
                  args["provenance"], logging.getLogger("stage"))
json.dump(m, open(args["out"], "w"))
"""


def items_doc(dataset_cfg: dict[str, Any], name: str = "daymet-hi") -> dict[str, Any]:
    return discover.discover(name, dataset_cfg, os.environ["PCFLOW_STAC_API"])


def target(prefix: str | None = None) -> dict[str, Any]:
    return {
        "account_name": os.environ["PCFLOW_TARGET_ACCOUNT_NAME"],
        "container": "pcflow",
        "prefix": prefix or f"itest-{uuid.uuid4().hex[:8]}",
        "region": "westeurope",
    }


def log() -> logging.Logger:
    return logging.getLogger("test-staging")


PROVENANCE = {"git": {"commit": "0" * 40}, "config_hash": "test"}


def store_objects(tgt: dict[str, Any], dataset: str, state: bool = False) -> dict[str, str]:
    """{relative key: md5} of every object of a staged store (`.pcflow/` state optional)."""
    fs = storage.filesystem(storage.target_storage_options(tgt))
    root = storage.target_url(tgt, dataset).split("://", 1)[1]
    paths = fs.find(root)
    data = fs.cat(paths) if paths else {}
    out = {}
    for path, blob in data.items():
        key = path[len(root) + 1 :]
        if key.startswith(".pcflow/") and not state:
            continue
        out[key] = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return out


def run_stage_process(
    args: dict[str, Any], tmp: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start staging in a child process (so that it can be SIGKILLed); `env` adds variables."""
    script = tmp / "runner.py"
    script.write_text(RUNNER)
    argf = tmp / f"args-{uuid.uuid4().hex[:6]}.json"
    argf.write_text(json.dumps(args))
    return subprocess.Popen(
        [sys.executable, str(script), str(argf)],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "stage-child.log", "ab"),  # noqa: SIM115 - closed with the process
        env={**os.environ, **(env or {})},
    )
