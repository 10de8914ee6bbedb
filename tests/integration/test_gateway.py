"""compute.cluster against a real local dask-gateway-server: no cluster survives the rule.

The server is `python -m pcflow.sandbox.gateway` (UnsafeLocalBackend + SimpleAuthenticator) on
free loopback ports. Each case runs the using process as a subprocess (success, exception,
SIGTERM while computing, SIGINT) and then checks, through the gateway API and /proc, that the
cluster it made is stopped and no scheduler/worker process of it is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from pcflow.sandbox import gateway as gateway_server
from tests.integration import gateway_helpers
from tests.integration.gateway_helpers import cluster_pids, running_gateway

pytestmark = pytest.mark.integration

VICTIM = textwrap.dedent(
    """
    import logging, sys, time
    import dask.array as da
    from pcflow import compute, reductions
    from pcflow.testing.synthetic import daymet_like

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    mode = sys.argv[1]
    cfg = {"backend": "gateway",
           "gateway": {"auth": "basic", "workers": 1,
                       "cluster_options": {"worker_cores": 1, "worker_memory": 1}}}
    if mode == "adapt":
        cfg["gateway"]["adapt"] = {"minimum": 1, "maximum": 2}
    with compute.cluster(cfg, logging.getLogger("pcflow.victim")) as client:
        print("CLUSTER", client.cluster.name if client.cluster else "", flush=True)
        if mode in ("ok", "adapt"):
            out = reductions.run("spatial_mean", daymet_like(years=(2019, 2020), ny=6, nx=5))
            print("RESULT", float(out["tmax"].mean()), flush=True)
        elif mode == "fail":
            raise RuntimeError("boom in the rule")
        else:
            slow = da.ones(40, chunks=1).map_blocks(lambda b: (time.sleep(1), b)[1])
            print("COMPUTING", flush=True)
            reductions.log.setLevel(logging.INFO)
            slow.sum().compute()
            print("FINISHED", flush=True)
    del client
    import gc
    gc.collect()  # collect the closed cluster now, not at exit: its clients' __del__ runs
    print("COLLECTED", flush=True)
    """
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("gateway")) as gw:
        yield {**gw, "env": {**os.environ, **gw["env"]}}


def _client(gw, password=None):
    return gateway_helpers.client(gw["url"], gw["env"], password)


def test_gateway_requires_the_password(gateway):
    """Any local user could otherwise run code as the sandbox owner (who holds the keys)."""
    import base64

    state = gateway["state"]
    secret_file = gateway_server.password_path(state)
    assert secret_file.stat().st_mode & 0o077 == 0 and state.stat().st_mode & 0o077 == 0
    assert (
        gateway["env"]["DASK_GATEWAY__AUTH__KWARGS__PASSWORD"]
        not in (state / gateway_server.CONFIG_NAME).read_text()
    )
    for password in ("", "wrong-password"):
        request = urllib.request.Request(
            f"{gateway['url']}/api/v1/clusters/",
            headers={
                "Authorization": "Basic "
                + base64.b64encode(f"someone:{password}".encode()).decode()
            },
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code in (401, 403)
    assert isinstance(_client(gateway).list_clusters(), list)  # the right password works


def _assert_gone(gw, name: str, timeout: float = 40) -> None:
    assert name, "the victim never reported its cluster"
    gateway = _client(gw)
    deadline = time.monotonic() + timeout
    while True:
        active = [c.name for c in gateway.list_clusters()]
        report = gateway.get_cluster(name)
        pids = cluster_pids(name)
        if name not in active and report.status.name in ("STOPPED", "FAILED") and not pids:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"cluster {name} survived: status {report.status.name}, pids {pids}")
        time.sleep(0.5)


def _start(gw, tmp_path, mode):
    script = tmp_path / "victim.py"
    script.write_text(VICTIM)
    return subprocess.Popen(
        [sys.executable, str(script), mode],
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / f"{mode}.err", "w"),  # noqa: SIM115
        env=gw["env"],
        text=True,
    )


def _read_until(proc, marker: str, timeout: float = 120) -> dict[str, str]:
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        key, _, value = line.strip().partition(" ")
        seen[key] = value
        if key == marker:
            return seen
    raise AssertionError(f"victim never printed {marker}; saw {seen}")


@pytest.mark.parametrize(("mode", "sizing"), [("ok", "1 worker(s)"), ("adapt", "adaptive 1..2")])
def test_success_runs_on_gateway_and_shuts_down(gateway, tmp_path, mode, sizing):
    proc = _start(gateway, tmp_path, mode)
    out, _ = proc.communicate(timeout=300)
    err = (tmp_path / f"{mode}.err").read_text()
    assert proc.returncode == 0, err[-3000:]
    lines = dict(line.partition(" ")[::2] for line in out.splitlines())
    assert 15 < float(lines["RESULT"]) < 25  # mean of ~20 degC synthetic tmax
    assert "cluster: GatewayCluster" in err and "dashboard http://127.0.0.1" in err
    assert sizing in err
    assert "COLLECTED" in lines
    assert "Exception ignored" not in err, err[-3000:]  # no traceback noise after shutdown
    _assert_gone(gateway, lines["CLUSTER"])


def test_exception_in_rule_shuts_down(gateway, tmp_path):
    proc = _start(gateway, tmp_path, "fail")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert "boom in the rule" in (tmp_path / "fail.err").read_text()
    name = next(line.split()[1] for line in out.splitlines() if line.startswith("CLUSTER"))
    _assert_gone(gateway, name)


@pytest.mark.parametrize(("sig", "expected_rc"), [(signal.SIGTERM, 143), (signal.SIGINT, None)])
def test_signal_while_computing_shuts_down(gateway, tmp_path, sig, expected_rc):
    proc = _start(gateway, tmp_path, "slow")
    seen = _read_until(proc, "COMPUTING")
    time.sleep(2)  # well inside the 40 s computation
    # the cluster is alive before the signal (the test can fail the other way)
    assert seen["CLUSTER"] in [c.name for c in _client(gateway).list_clusters()]
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=120)
    assert "FINISHED" not in rest
    if expected_rc is not None:
        assert proc.returncode == expected_rc
    else:
        assert proc.returncode != 0
    err = (tmp_path / "slow.err").read_text()
    assert f"received {sig.name}: cluster shut down" in err
    _assert_gone(gateway, seen["CLUSTER"])
