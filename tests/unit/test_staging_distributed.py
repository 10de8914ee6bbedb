"""Cluster staging's pieces that need no cluster: config, task batches, worker credentials."""

from __future__ import annotations

import base64
import time
from types import SimpleNamespace
from urllib.parse import parse_qs

import pytest

from pcflow.staging import distributed
from pcflow.staging.codec import ArrayMeta
from pcflow.staging.plan import regions_for
from pcflow.staging.retry import StagingError

KEY = base64.b64encode(b"k" * 64).decode()


def test_cluster_true_reuses_compute_and_sizes_it():
    compute = {"backend": "gateway", "gateway": {"address": "http://gw", "adapt": {"maximum": 9}}}
    cfg = distributed.cluster_config({"cluster": True, "cluster_workers": 3}, compute)
    assert cfg["backend"] == "gateway" and cfg["gateway"]["address"] == "http://gw"
    assert cfg["gateway"]["workers"] == 3 and "adapt" not in cfg["gateway"]
    assert cfg["local"] == {"processes": True, "n_workers": 3}
    assert distributed.cluster_config({}) is None
    assert distributed.cluster_config({"cluster": False}) is None
    with pytest.raises(StagingError, match="staging.cluster="):
        distributed.cluster_config({"cluster": "yes"})


def test_resolve_takes_compute_from_the_config():
    got = distributed.resolve({"staging": {"cluster": True}, "compute": {"backend": "local"}})
    assert distributed.cluster_config(got) == {"backend": "local", "local": {"processes": True}}


def test_batches_group_regions_by_bytes_and_variable():
    meta = ArrayMeta(shape=(100,), chunks=(10,), dtype="<f4", compressor=None, filters=(),
                     fill_value=None)  # fmt: skip
    regions = regions_for("a", 10, 40, 0.00008) + regions_for("b", 4, 40, 0.00008)
    out = list(distributed.batches(iter(regions), {"a": meta, "b": meta}, 0.00025))
    # 2 chunks (80 B) per region, 250 B per task -> 3 regions per task; never across variables
    assert [[r.id for r in b] for b in out] == [
        ["a/0", "a/1", "a/2"], ["a/3", "a/4"], ["b/0", "b/1"]]  # fmt: skip


def test_workers_get_a_container_sas_never_the_key():
    log = SimpleNamespace(info=lambda *a, **k: None)
    cred = distributed.TargetCredential(
        {"account_name": "acct", "account_key": KEY, "account_host": "127.0.0.1:1/acct"}, "box", log
    )
    opts = cred.worker_options()
    assert set(opts) == {"account_name", "sas_token", "account_host"}
    assert KEY not in str(opts)
    q = parse_qs(opts["sas_token"])
    assert q["sr"] == ["c"] and set(q["sp"][0]) <= set("racwdl")  # container scope only
    # Re-signed when less than the margin is left; not before.
    assert cred.worker_options()["sas_token"] == opts["sas_token"] and cred.signed == 1
    cred._expiry = time.time() + distributed.RESIGN_MARGIN_S - 1
    cred.worker_options()
    assert cred.signed == 2


def test_cluster_job_refuses_to_ship_an_account_key():
    auth = SimpleNamespace(
        asset={"href": "abfs://c/s.zarr", "xarray:storage_options": {"account_key": "k"}},
        signing="none",
    )
    with pytest.raises(StagingError, match="account_key, which must not be sent to workers"):
        distributed.make_job(auth, "c/p", {}, set(), 1, {}, None)
