"""What Snakemake was asked to do, as the workflow sees it while it is being parsed.

Snakemake parses the workflow before it picks the executor plugin and before it knows whether a
DAG picture is wanted, so it exposes only part of the invocation on `workflow` at that point:
the dry-run flag (`workflow.output_settings.dryrun`, also right when pcflow is used as a
Snakemake `module`). The executor name and the picture/summary commands are read from the
command line here, in one place, and nowhere in the rules.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pcflow import provenance

# What `snakemake` prints without running anything. Not --summary or --report for planning
# offline: those are about what IS stored, so an assumption would be a wrong answer.
PICTURE_FLAGS = frozenset({"--dag", "--rulegraph", "--filegraph"})
# Commands that run no job (besides dry runs and pictures).
NO_JOB_FLAGS = PICTURE_FLAGS | {"--summary", "--detailed-summary", "--report", "--lint"}
NO_JOB_FLAGS |= {"--list-rules", "-l", "-D", "-S"}


@dataclass(frozen=True)
class Invocation:
    """executor: the executor's name; dry_run: `-n`; pictures: --dag/--rulegraph/--filegraph;
    no_jobs: nothing will run (dry run, pictures, summaries, report, lint); pcflow_plan: a plain
    `-n` that also prints pcflow's plan (not with pictures/summaries, nor with PCFLOW_PLAN=0)."""

    executor: str
    dry_run: bool
    pictures: bool
    no_jobs: bool
    pcflow_plan: bool

    @property
    def plan_only(self) -> bool:
        """A dry run or a DAG picture: a plan that may assume nothing is stored yet."""
        return self.dry_run or self.pictures


def _pictures(argv: Sequence[str]) -> bool:
    return any(a in PICTURE_FLAGS or a.startswith("--dag=") for a in argv)


def of(
    workflow: Any, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Invocation:
    """The invocation of the Snakemake run that is parsing `workflow`."""
    argv = sys.argv if argv is None else argv
    output = getattr(workflow, "output_settings", None)
    dry_run = bool(getattr(output, "dryrun", False))
    pictures = _pictures(argv)
    other_commands = any(a in NO_JOB_FLAGS or a.startswith("--dag=") for a in argv)
    env = os.environ if environ is None else environ
    return Invocation(
        executor=provenance.detect_executor(argv, env),
        dry_run=dry_run,
        pictures=pictures,
        no_jobs=dry_run or other_commands,
        pcflow_plan=dry_run and not other_commands and env.get("PCFLOW_PLAN", "1") != "0",
    )
