from pcflow.workflow.steps import run_discover

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
run_discover(sm.wildcards.dataset, sm.config, sm.output[0], sm.log[0])
