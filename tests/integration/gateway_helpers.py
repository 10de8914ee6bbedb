"""A private dask-gateway-server for a test module, its authenticated client, its processes.

One place for what the gateway tests, the cluster-staging tests and the e2e Gateway case need:
start `python -m pcflow.sandbox.gateway` on free loopback ports with its own state directory
(and so its own password), wait for health with a deadline, stop it on exit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pcflow.sandbox import gateway as gateway_server

START_DEADLINE_S = 60


def free_port_pair() -> int:
    """A free loopback port whose successor is free too (the gateway's API + scheduler proxy)."""
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


@contextmanager
def running_gateway(state: Path, *args: str) -> Iterator[dict[str, Any]]:
    """Run a gateway server with state in `state`; yields url, port, state and the client env.

    The server inherits this process's environment (its workers then see the sandbox's
    endpoints). `env` holds only the gateway's client settings, password included.
    """
    port = free_port_pair()
    log_path = state / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pcflow.sandbox.gateway", "--port", str(port),
             "--state-dir", str(state), "--idle-timeout", "0", *args],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, proc, log_path)
            yield {"url": url, "port": port, "state": state,
                   "env": gateway_server.env(port, state_dir=state)}  # fmt: skip
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)


def _wait_healthy(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/health", timeout=2)
            return
        except OSError as err:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"gateway did not start within {START_DEADLINE_S} s; log {log_path}:\n"
                    f"{log_path.read_text()[-3000:]}"
                ) from err
            time.sleep(0.3)


def client(url: str, env: dict[str, str], password: str | None = None) -> Any:
    """A dask_gateway.Gateway authenticated with the password in `env` (or the one given).

    Passed explicitly: dask reads DASK_GATEWAY__* into its config once, at import.
    """
    from dask_gateway import BasicAuth, Gateway

    password = env["DASK_GATEWAY__AUTH__KWARGS__PASSWORD"] if password is None else password
    return Gateway(
        url, proxy_address=env["DASK_GATEWAY__PROXY_ADDRESS"], auth=BasicAuth(password=password)
    )


def active_clusters(url: str, env: dict[str, str]) -> list[str]:
    """Names of the gateway's running clusters."""
    gw = client(url, env)
    try:
        return [c.name for c in gw.list_clusters()]
    finally:
        gw.close()


def cluster_pids(name: str) -> list[int]:
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
