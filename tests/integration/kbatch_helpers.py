"""A local kbatch (the real kbatch-proxy app over pcflow's job runner) for the kbatch tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

# The hub token the local kbatch accepts; tests pass it as KBATCH_TOKEN (never on a command line).
TOKEN = "local-kbatch-test-token-" + uuid.uuid4().hex


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_kbatch(state: Path) -> Iterator[str]:
    """Start local kbatch on a free port with its state in `state`; yields its URL. Stopped (with
    its jobs) on exit."""
    import httpx

    port = _free_port()
    env = {**os.environ, "PCFLOW_KBATCH_TOKEN": TOKEN}
    cmd = [sys.executable, "-m", "pcflow.sandbox.kbatch"]
    cmd += ["--port", str(port), "--state-dir", str(state)]
    with (state / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            deadline = time.monotonic() + 180  # imports alone take minutes on a loaded machine
            while True:
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, (state / "server.log").read_text()
                assert time.monotonic() < deadline, "local kbatch did not start"
                time.sleep(0.2)
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def jobs(url: str) -> list[str]:
    """Names of the Jobs kbatch lists now."""
    import kbatch

    return [j["metadata"]["name"] for j in kbatch.list_jobs(kbatch_url=url, token=TOKEN)["items"]]


def processes_with(marker: str) -> list[psutil.Process]:
    """Processes (not this one) whose command line contains `marker` (a job's state dir)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []) and p.pid != os.getpid():
                found.append(p)
        except psutil.Error:
            pass
    return found
