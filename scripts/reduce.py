import workflow_src  # noqa: F401, I001 (first: this workflow's src/ before site-packages)
from pcflow.workflow.steps import run_reduce

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
run_reduce(
    sm.wildcards.dataset,
    sm.wildcards.reduction,
    sm.params.compute,
    sm.params.target,
    sm.input.manifest,
    sm.output.nc,
    sm.log[0],
    sm.config,
    threads=sm.threads,
    mem_mb=sm.resources.get("mem_mb"),
    ds_cfg=sm.params.dataset,
    incomplete=sm.params.incomplete,
)
