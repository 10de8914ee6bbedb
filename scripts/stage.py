from pcflow.workflow.steps import run_stage

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
run_stage(
    sm.wildcards.dataset,
    sm.config,
    sm.input.discovered,
    sm.output.manifest,
    sm.output.collection,
    sm.log[0],
)
