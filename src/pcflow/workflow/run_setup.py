"""The main process's part of a run, done once while the workflow is parsed (rules/common.smk).

It builds the run's provenance record and hands it to every job through the environment,
refuses remote runs a clone could not reproduce, and prints pcflow's plan on `snakemake -n`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pcflow import provenance
from pcflow.workflow.invocation import Invocation


def start(
    workflow: Any, config: dict[str, Any], basedir: str | Path, inv: Invocation
) -> dict[str, Any]:
    """The run's provenance record (also exported as PCFLOW_PROVENANCE for the jobs)."""
    main = bool(workflow.is_main_process)
    record = provenance.for_workflow(basedir, config, main_process=main, executor=inv.executor)
    if main and record["executor"] == "kbatch":
        # Remote results must come from a commit anyone can clone (PCFLOW_ALLOW_DIRTY=1 overrides).
        try:
            provenance.check_clean_for_remote(basedir, allow=provenance.allow_dirty())
        except provenance.RemoteRunRefused as err:
            if not inv.no_jobs:
                raise SystemExit(str(err)) from None
            print(f"(dry run) {err}", file=sys.stderr)
    os.environ[provenance.ENV_VAR] = provenance.encode(record)
    if main and inv.pcflow_plan:
        # `snakemake -n` also prints what the run would read, write and submit (pcflow.estimate).
        from pcflow import estimate

        estimate.print_plan(config, executor=record["executor"], file=sys.stderr)
    return record
