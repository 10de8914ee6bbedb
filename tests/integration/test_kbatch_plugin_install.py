"""The kbatch executor plugin stands alone: a clean venv with Snakemake and the plugin folder only.

Installs (uv, the lock's pinned versions as constraints, so it works from the uv cache) Snakemake
and `./snakemake-executor-plugin-kbatch` into a fresh venv without pcflow, then checks that
`snakemake --executor kbatch --help` lists every plugin setting and that the plugin's own
mocked-API tests pass there. Slowish (~1 min): it builds a venv.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "snakemake-executor-plugin-kbatch"
UV = REPO / ".venv-tools" / "bin" / "uv"


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_plugin_installs_alone_shows_its_settings_and_passes_its_mocked_tests(tmp_path):
    assert UV.exists(), f"{UV} missing: run `make install`"
    # A copy: building in place would leave build/ in the checkout (and race other runs).
    src = tmp_path / "plugin"
    shutil.copytree(
        PLUGIN, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    made = _run([str(UV), "venv", "-q", "--python", "3.11", str(venv)], tmp_path)
    assert made.returncode == 0, made.stderr
    lock = REPO / "envs" / "requirements.lock"
    install = [str(UV), "pip", "install", "-q", "--python", str(python), "-c", str(lock)]
    done = _run([*install, "snakemake", str(src), "pytest"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    # Nothing of pcflow came along: the plugin needs none of it.
    assert _run([str(python), "-c", "import pcflow"], tmp_path).returncode != 0

    helped = _run([str(venv / "bin" / "snakemake"), "--executor", "kbatch", "--help"], tmp_path)
    assert helped.returncode == 0, helped.stderr[-3000:]
    from snakemake_executor_plugin_kbatch import ExecutorSettings

    names = [f.name for f in dataclasses.fields(ExecutorSettings)]
    assert len(names) >= 10
    for name in names:
        assert f"--kbatch-{name.replace('_', '-')}" in helped.stdout, name
    assert "SNAKEMAKE_KBATCH_URL" in helped.stdout  # settings readable from env vars
    assert "--container-image" in helped.stdout  # Snakemake's own image setting
    assert "--kbatch-image" not in helped.stdout and "PCFLOW" not in helped.stdout

    tested = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], src)
    assert tested.returncode == 0, tested.stdout[-4000:]
    summary = tested.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, summary
