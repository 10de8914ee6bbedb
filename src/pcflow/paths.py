"""Where pcflow's files are: the one place that derives them from this package's location.

In a checkout (src layout) the repository is two folders above the package: the Snakefile,
envs/, node_modules/ and .venv-pgstac/ live there. Installed as a wheel there is no checkout
(`in_checkout()` is False): git state and the workflow's files are then simply not found.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# <repo>/src/pcflow -> <repo>
REPO_ROOT = PACKAGE_DIR.parent.parent


def in_checkout() -> bool:
    """True when pcflow is imported from a checkout (its Snakefile beside src/)."""
    return (REPO_ROOT / "Snakefile").is_file()
