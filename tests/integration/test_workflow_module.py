"""pcflow used as a Snakemake `module` by another workflow (no services: a dry run).

The module's rules resolve against pcflow's checkout, and the run's
provenance is pcflow's git state, not the outer workflow's folder (`workflow.basedir` there).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import git

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
RULES = ("discover", "stage", "reduce", "plot", "run_record", "all")

OUTER = """\
module pcflow:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from pcflow as pcflow_*

print("pcflow-commit:", rules.pcflow_run_record.params.commit)
"""


def test_outer_workflow_dry_runs_pcflow_as_a_module(tmp_path):
    (tmp_path / "Snakefile").write_text(OUTER.format(snakefile=REPO / "Snakefile"))
    proc = subprocess.run(
        [str(SNAKEMAKE), "-n", "--cores", "1", "--configfile", str(REPO / "config/demo.yaml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for rule in RULES:
        assert f"pcflow_{rule}" in out
    assert "pcflow plan" in out  # the main-process setup ran inside the module too
    head = git.Repo(REPO).head.commit.hexsha
    assert f"pcflow-commit: {head}" in out
