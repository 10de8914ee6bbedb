"""pyproject's dependencies are what src/pcflow imports (plus named runtime-only needs)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Needed at run time without an import statement in src/pcflow (pyproject says why).
RUNTIME_ONLY = {
    "netcdf4",
    "flox",
    "rustac",
    "snakemake-storage-plugin-azure",
    "snakemake",
    "snakemake-executor-plugin-kbatch",  # found by Snakemake by module name, never imported
}
# Imported only inside a try/except ImportError (optional).
OPTIONAL = {"bokeh"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return {_norm(re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0]) for d in deps}


def _imported() -> set[str]:
    """Distributions of the top-level modules src/pcflow imports (AST, not the code's own say)."""
    tops = set()
    for path in (REPO / "src" / "pcflow").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops.add(node.module.split(".")[0])
    tops -= set(sys.stdlib_module_names) | {"pcflow", "__future__"} | OPTIONAL
    dists = packages_distributions()
    found = set()
    for top in tops:
        names = {_norm(d) for d in dists.get(top, [top])}
        # A namespace shared by several distributions (azure, odc, pystac): the declared ones.
        found |= names & _declared() or names
    return found


def test_every_import_is_declared():
    missing = sorted(_imported() - _declared())
    assert not missing, f"src/pcflow imports {missing}: add them to pyproject dependencies"


def test_every_declared_dependency_is_imported_or_named_runtime_only():
    unused = sorted(_declared() - _imported() - RUNTIME_ONLY)
    assert not unused, f"pyproject declares {unused} that src/pcflow does not import"
