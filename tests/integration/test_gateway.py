"""compute.cluster against a real local dask-gateway-server: no cluster survives the rule.

The server is `python -m pcflow.sandbox.gateway` (UnsafeLocalBackend + SimpleAuthenticator) on
free loopback ports. Each case runs the using process as a subprocess (success, exception,
SIGTERM while computing, SIGINT) and then checks, through the gateway API and /proc, that the
cluster it made is stopped and no scheduler/worker process of it is left.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pcflow.sandbox import gateway as gateway_server

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
    """
)


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    state = tmp_path_factory.mktemp("gateway")
    port = _free_port_pair()
    log = open(state / "server.log", "w")  # noqa: SIM115 (closed in teardown)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pcflow.sandbox.gateway",
            "--port",
            str(port),
            "--state-dir",
            str(state),
            "--idle-timeout",
            "0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/health", timeout=2)
            break
        except OSError as err:
            if proc.poll() is not None or time.monotonic() > deadline:
                log_text = (state / "server.log").read_text()
                raise RuntimeError(f"gateway did not start:\n{log_text}") from err
            time.sleep(0.3)
    env = {**os.environ, **gateway_server.env(port, state_dir=state)}
    yield {"url": url, "env": env, "state": state}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _client(gw, password=None):
    from dask_gateway import Gateway
    from dask_gateway.auth import BasicAuth

    password = gw["env"]["DASK_GATEWAY__AUTH__KWARGS__PASSWORD"] if password is None else password
    return Gateway(
        gw["url"],
        proxy_address=gw["env"]["DASK_GATEWAY__PROXY_ADDRESS"],
        auth=BasicAuth(password=password),
    )


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


def _cluster_pids(name: str) -> list[int]:
    """Live processes started for a gateway cluster (the backend puts its name in their env)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"DASK_GATEWAY_CLUSTER_NAME={name}".encode() in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def _assert_gone(gw, name: str, timeout: float = 40) -> None:
    assert name, "the victim never reported its cluster"
    gateway = _client(gw)
    deadline = time.monotonic() + timeout
    while True:
        active = [c.name for c in gateway.list_clusters()]
        report = gateway.get_cluster(name)
        pids = _cluster_pids(name)
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
