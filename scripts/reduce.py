from pcflow.workflow.steps import run_reduce

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
run_reduce(
    sm.wildcards.dataset,
    sm.wildcards.reduction,
    sm.config,
    sm.input.manifest,
    sm.output.nc,
    sm.log[0],
    threads=sm.threads,
    mem_mb=sm.resources.get("mem_mb"),
)
