"""One repo-root helper (pcflow.paths): every module finds the checkout's files in the same place.

Before it, five modules each derived the root from their own `__file__`; after the move into
pcflow/sandbox/, pgstac's count was one folder short and looked for `src/.venv-pgstac`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pcflow import config, estimate, paths, provenance
from pcflow.sandbox import pgstac, services

# The checkout as git sees it, independent of pcflow's own path arithmetic.
REPO = Path(
    subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
).resolve()


def test_repo_root_is_the_checkout():
    assert paths.REPO_ROOT == REPO
    assert paths.in_checkout()


def test_every_module_uses_the_one_root(monkeypatch):
    monkeypatch.delenv("PCFLOW_PGSTAC_VENV", raising=False)
    assert pgstac.default_venv() == REPO / ".venv-pgstac"
    assert services.REPO_ROOT == REPO
    assert estimate.REPO == REPO
    assert provenance.PACKAGE_REPO == REPO


def test_schema_is_package_data_and_the_only_copy():
    packaged = paths.PACKAGE_DIR / "schema.yaml"
    assert config.load_schema() == config.load_schema(packaged)
    copies = [p for p in REPO.rglob("schema.yaml") if ".venv" not in p.parts]
    copies = [p for p in copies if "node_modules" not in p.parts and ".sandbox" not in p.parts]
    assert copies == [packaged]
