"""compute: backend choice, sizing, gateway settings precedence, and LocalCluster cleanup."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time

import pytest

from pcflow import compute

LOG = logging.getLogger("pcflow.test")


def test_local_sizing_from_rule_threads_and_mem():
    kw = compute.local_sizing({"threads": 3, "mem_mb": 6000})
    assert kw["n_workers"] == 1 and kw["threads_per_worker"] == 3
    assert kw["memory_limit"] == "6000MiB"
    assert kw["processes"] is False
    kw = compute.local_sizing(
        {"_cores": 4, "mem_mb": 8000, "local": {"n_workers": 2, "processes": True}}
    )
    assert (kw["n_workers"], kw["threads_per_worker"], kw["memory_limit"]) == (2, 2, "4000MiB")
    assert kw["host"] == "127.0.0.1"


def test_backend_env_override_and_bad_value(monkeypatch):
    assert compute.backend_name({}) == "local"
    monkeypatch.setenv(compute.BACKEND_ENV, "gateway")
    assert compute.backend_name({"backend": "local"}) == "gateway"
    monkeypatch.setenv(compute.BACKEND_ENV, "slurm")
    with pytest.raises(ValueError, match=r"compute.backend='slurm' is not supported"):
        compute.backend_name({})


def _clear_gateway_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("DASK_GATEWAY__"):
            monkeypatch.delenv(key)


def test_gateway_settings_env_overrides_yaml(monkeypatch):
    _clear_gateway_env(monkeypatch)
    cfg = {
        "gateway": {
            "address": "https://hub/services/dask-gateway",
            "proxy_address": "gateway://hub:80",
            "auth": "jupyterhub",
            "cluster_options": {"worker_cores": 2},
        }
    }
    s = compute.gateway_settings(cfg)
    assert s["address"] == "https://hub/services/dask-gateway"
    assert s["proxy-address"] == "gateway://hub:80"
    assert s["auth"] == {"type": "jupyterhub"}
    assert s["cluster"]["options"] == {"worker_cores": 2}
    monkeypatch.setenv("DASK_GATEWAY__ADDRESS", "http://127.0.0.1:10012")
    monkeypatch.setenv("DASK_GATEWAY__PROXY_ADDRESS", "gateway://127.0.0.1:10013")
    monkeypatch.setenv("DASK_GATEWAY__AUTH__TYPE", "basic")
    s = compute.gateway_settings(cfg)
    assert s["address"] == "http://127.0.0.1:10012"
    assert s["proxy-address"] == "gateway://127.0.0.1:10013"
    assert s["auth"]["type"] == "basic"
    assert s["cluster"]["options"] == {"worker_cores": 2}  # untouched by the env


def test_gateway_secret_in_config_is_refused(monkeypatch):
    _clear_gateway_env(monkeypatch)
    cfg = {
        "gateway": {"address": "http://x", "auth": {"type": "basic", "kwargs": {"password": "p"}}}
    }
    with pytest.raises(
        ValueError, match="compute.gateway.password: secrets must not be in the config"
    ):
        compute.gateway_settings(cfg)


def test_gateway_without_address_names_the_fix(monkeypatch):
    _clear_gateway_env(monkeypatch)
    with pytest.raises(
        ValueError, match="compute.gateway.address is not set.*DASK_GATEWAY__ADDRESS"
    ):
        compute.gateway_settings({"gateway": {}})


def test_scaling_adapt_scale_and_env(monkeypatch):
    monkeypatch.delenv("PCFLOW_GATEWAY_WORKERS", raising=False)
    assert compute._scaling({"gateway": {"adapt": {"minimum": 1, "maximum": 5}}}) == (
        "adapt",
        (1, 5),
    )
    assert compute._scaling({"gateway": {"workers": 3}}) == ("scale", 3)
    monkeypatch.setenv("PCFLOW_GATEWAY_WORKERS", "7")
    assert compute._scaling({"gateway": {"workers": 3}}) == ("scale", 7)


def test_local_cluster_closed_after_exception(caplog):
    caplog.set_level(logging.INFO, logger="pcflow")
    seen = {}
    with pytest.raises(RuntimeError, match="boom"):
        with compute.cluster({"threads": 1, "mem_mb": 500}, LOG) as client:
            seen["client"] = client
            assert client.submit(lambda: 41 + 1).result() == 42
            raise RuntimeError("boom")
    assert seen["client"].status == "closed"
    assert seen["client"].cluster.status.name == "closed"
    assert "cluster: LocalCluster" in caplog.text and "1 thread(s)" in caplog.text
    assert "LocalCluster shut down" in caplog.text


def test_local_cluster_sigterm_shuts_down_then_exits_143(tmp_path):
    script = tmp_path / "v.py"
    script.write_text(
        textwrap.dedent(
            """
            import logging, sys, time
            from pcflow import compute
            logging.basicConfig(level=logging.INFO, stream=sys.stderr)
            with compute.cluster({"threads": 1}, logging.getLogger("pcflow.v")) as client:
                print("READY", flush=True)
                client.submit(time.sleep, 60).result()
            print("NOT REACHED", flush=True)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "READY"
    time.sleep(0.5)
    start = time.monotonic()
    proc.terminate()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert "NOT REACHED" not in out
    assert "LocalCluster shut down" in err and "received SIGTERM" in err
    assert time.monotonic() - start < 25  # close gives up on a stuck task after 10 s
