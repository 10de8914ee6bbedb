"""Staging's region writes on a real dask-gateway-server: same bytes as local staging.

The gateway (`python -m pcflow.sandbox.gateway`, UnsafeLocalBackend) is started after the
sandbox, so its worker processes inherit the sandbox's endpoints (SAS endpoint, Azurite host,
CA). Workers sign the source themselves and get a container SAS for the target.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from pcflow import staging, storage
from tests.integration.gateway_helpers import active_clusters, cluster_pids, running_gateway
from tests.integration.staging_helpers import (
    DAYMET_CFG,
    DAYMET_SUBSET,
    PROVENANCE,
    TEST_MEMORY_MB,
    items_doc,
    log,
    store_objects,
    target,
)

pytestmark = pytest.mark.integration

# Many small regions (re-encoded subset) so that a worker can be killed between them, in
# tasks of ~10 regions: each task decodes the source chunks its regions need (242 MB each, the
# real Daymet-HI chunking), so one task per region spent its time decoding (88 s vs 13 s local).
SMALL = {"chunk_mb": 0.2, "region_mb": 0.2, "concurrency": 4, "task_mb": 2,
         "memory_mb": TEST_MEMORY_MB}  # fmt: skip


@pytest.fixture(scope="module")
def cluster_gateway(sandbox, tmp_path_factory):
    """A gateway started after the sandbox (workers inherit its endpoints); its client settings
    are put in os.environ, where staging's cluster code reads them."""
    with running_gateway(tmp_path_factory.mktemp("stage-gateway"), "--log-level", "WARN") as gw:
        saved = {k: os.environ.get(k) for k in gw["env"]}
        os.environ.update(gw["env"])
        try:
            yield gw
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="module")
def daymet_items(sandbox):
    return items_doc(DAYMET_CFG)


SUBSET = {**DAYMET_CFG, **DAYMET_SUBSET}


@pytest.fixture(scope="module")
def local_subset(daymet_items):
    """The re-encoded subset staged in-process: the reference both cluster tests compare to."""
    tgt = target()
    manifest = staging.stage(daymet_items, "daymet-hi", SUBSET, tgt, SMALL, PROVENANCE, log())
    return tgt, manifest


def _gateway_cfg(workers: int) -> dict:
    return {
        "cluster": {"backend": "gateway", "gateway": {
            "auth": "basic", "cluster_options": {"worker_cores": 1, "worker_memory": 1}}},
        "cluster_workers": workers,
    }  # fmt: skip


def _active_clusters(gw) -> list[str]:
    return active_clusters(gw["url"], gw["env"])


def _no_cluster_left(gw, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _active_clusters(gw):
        assert time.monotonic() < deadline, f"clusters left: {_active_clusters(gw)}"
        time.sleep(0.5)


def _cluster_name(caplog) -> str:
    for rec in caplog.records:
        msg = rec.getMessage()
        if msg.startswith("cluster: GatewayCluster ") and " created at " in msg:
            return msg.split()[2]
    raise AssertionError("no GatewayCluster was created")


@pytest.mark.parametrize("cfg", [DAYMET_CFG, SUBSET], ids=["aligned-copy", "subset-reencode"])
def test_two_gateway_workers_stage_the_same_bytes_as_local(
    cluster_gateway, daymet_items, local_subset, cfg, caplog
):
    caplog.set_level(logging.INFO)
    cluster_tgt = target()
    if cfg is SUBSET:
        local_tgt, ref = local_subset
    else:
        local_tgt = target()
        ref = staging.stage(daymet_items, "daymet-hi", cfg, local_tgt, SMALL, PROVENANCE, log())
    got = staging.stage(
        daymet_items, "daymet-hi", cfg, cluster_tgt, {**SMALL, **_gateway_cfg(2)}, PROVENANCE,
        log(),
    )  # fmt: skip
    assert got["run"]["cluster_workers"] == 2
    assert got["run"]["cluster_tasks"] >= 2
    assert (
        "regions_written" in got["run"]
        and got["run"]["regions_written"] == ref["run"]["regions_written"]
    )
    # Every object (chunks, metadata; not the .pcflow state) has the same MD5 as local staging.
    local_objects = store_objects(local_tgt, "daymet-hi")
    assert (
        len([k for k in local_objects if "/" in k and not k.endswith((".zarray", ".zattrs"))]) > 3
    )
    assert store_objects(cluster_tgt, "daymet-hi") == local_objects
    assert got["checksums"] == ref["checksums"]
    _no_cluster_left(cluster_gateway)


def _worker_pids(name: str) -> list[int]:
    pids = []
    for pid in cluster_pids(name):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"dask_worker" in cmd:
            pids.append(pid)
    return pids


def test_killed_worker_mid_stage_still_gives_the_same_store(
    cluster_gateway, daymet_items, local_subset, caplog
):
    caplog.set_level(logging.INFO)
    cfg = SUBSET
    local_tgt, ref = local_subset
    cluster_tgt = target()
    assert ref["run"]["regions_total"] >= 30
    result: dict = {}

    def run() -> None:
        try:
            result["manifest"] = staging.stage(
                daymet_items, "daymet-hi", cfg, cluster_tgt,
                {**SMALL, "concurrency": 1, **_gateway_cfg(2)}, PROVENANCE, log(),
            )  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            result["error"] = exc

    fs = storage.filesystem(storage.target_storage_options(cluster_tgt))
    regions_dir = storage.target_url(cluster_tgt, "daymet-hi").split("://", 1)[1] + "/.pcflow"
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    killed, name = None, None
    deadline = time.monotonic() + 300
    while thread.is_alive() and killed is None and time.monotonic() < deadline:
        try:
            name = name or _cluster_name(caplog)
        except AssertionError:
            time.sleep(0.2)
            continue
        try:
            markers = [p for p in fs.find(regions_dir) if "/regions/" in p]
        except FileNotFoundError:
            markers = []
        workers = _worker_pids(name)
        if markers and len(workers) >= 2:
            os.kill(workers[0], signal.SIGKILL)  # a worker lost mid-stage, without warning
            killed = (workers[0], len(markers))
        time.sleep(0.05)
    thread.join(timeout=600)
    assert killed is not None, "no worker was killed mid-stage"
    assert "error" not in result, result.get("error")
    got = result["manifest"]
    assert killed[1] < ref["run"]["regions_total"], "the kill came after the last region"
    assert store_objects(cluster_tgt, "daymet-hi") == store_objects(local_tgt, "daymet-hi")
    assert got["checksums"] == ref["checksums"]
    _no_cluster_left(cluster_gateway)
