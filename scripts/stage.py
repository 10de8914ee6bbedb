import workflow_src  # noqa: F401, I001 (first: this workflow's src/ before site-packages)
from pcflow.workflow.steps import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
run_stage(
    sm.wildcards.dataset,
    sm.params.dataset,
    sm.params.target,
    sm.params.staging,
    sm.input.discovered,
    sm.output.manifest,
    sm.output.collection,
    sm.log[0],
    sm.config,
    threads=sm.threads,
    mem_mb=sm.resources.get("mem_mb"),
)
