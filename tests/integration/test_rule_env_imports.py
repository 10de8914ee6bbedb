"""Each rule's conda env (envs/<rule>.yaml) holds every distribution its code imports.

Imports the rule's modules in a fresh Python (as its job would), lists the distributions that
loaded, and checks the env pins them at the lock's version. Lazy imports inside functions are
not seen. No services needed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("rule_envs", REPO / "scripts" / "rule_envs.py")
rule_envs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rule_envs)

# What each rule's step (pcflow.workflow.steps) imports when it runs.
RULE_MODULES = {
    "discover": ["pcflow.workflow.steps"],
    "stage": ["pcflow.workflow.steps", "pcflow.staging"],
    "reduce": ["pcflow.workflow.steps", "pcflow.compute", "pcflow.reductions", "pcflow.staging"],
    "plot": ["pcflow.workflow.steps", "pcflow.plotting", "netCDF4"],
}


def _pins(rule: str) -> dict[str, str]:
    doc = yaml.safe_load((REPO / "envs" / f"{rule}.yaml").read_text())
    pip = next(d["pip"] for d in doc["dependencies"] if isinstance(d, dict))
    return dict(line.split("==") for line in pip)


@pytest.mark.parametrize("rule", sorted(RULE_MODULES))
def test_env_holds_what_the_rule_imports(rule):
    """Import the rule's modules in a fresh Python and list the distributions they loaded."""
    code = (
        "import importlib, json, sys\n"
        "from importlib.metadata import packages_distributions\n"
        f"for m in {RULE_MODULES[rule]!r}: importlib.import_module(m)\n"
        "dists = packages_distributions()\n"
        "top = {n.split('.')[0] for n in sys.modules}\n"
        "print(json.dumps(sorted({d for t in top for d in dists.get(t, [])})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {rule_envs._norm(d) for d in json.loads(proc.stdout.strip().splitlines()[-1])}
    # pcflow itself comes from the workflow's src/; the test tooling is not the rule's.
    loaded -= {"pcflow", "pytest", "snakemake-executor-plugin-kbatch", "setuptools", "pip"}
    pins = _pins(rule)
    lock = rule_envs.read_lock((REPO / "envs" / "requirements.lock").read_text())[0]
    missing = sorted(d for d in loaded if d in lock and d not in pins)
    assert not missing, f"envs/{rule}.yaml lacks {missing}: add them to RULE_NEEDS"
    assert all(lock[name] == version for name, version in pins.items())
