"""The real `kbatch` CLI works against the sandbox's kbatch with nothing but `pcflow sandbox env`.

On a hub the CLI finds its token in JUPYTERHUB_API_TOKEN (and the URL in KBATCH_URL); the sandbox
env must export the same, so the docs' commands for inspecting a run's jobs work as written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

KBATCH = Path(sys.executable).parent / "kbatch"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(KBATCH), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_kbatch_cli_lists_shows_logs_and_deletes_with_the_sandbox_env(sandbox, tmp_path):
    sandbox.up(services=("kbatch",), seed=False)
    # Only what `eval "$(pcflow sandbox env)"` gives, plus PATH; no kbatch config file
    # (XDG_CONFIG_HOME points at an empty dir) and no token typed by hand.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    env.update(sandbox.env())

    listed = _cli(env, "job", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr[-2000:]  # was 401 "Incorrect token"
    before = {j["metadata"]["name"] for j in json.loads(listed.stdout)["items"]}

    submitted = _cli(
        env,
        *("job", "submit", "--name", "cli-check", "--image", "local/cli-check:1"),
        *("--command", '["sh", "-c", "echo hello-from-cli"]', "-o", "name"),
    )
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    name = submitted.stdout.strip()
    try:
        listed = _cli(env, "job", "list", "-o", "json")
        names = {j["metadata"]["name"] for j in json.loads(listed.stdout)["items"]}
        assert names - before == {name}
        deadline = time.monotonic() + 120
        while True:
            logs = _cli(env, "job", "logs", name)
            if logs.returncode == 0 and "hello-from-cli" in logs.stdout:
                break
            assert time.monotonic() < deadline, logs.stdout + logs.stderr
            time.sleep(1)
    finally:
        deleted = _cli(env, "job", "delete", name)
    assert deleted.returncode == 0, deleted.stderr[-2000:]
