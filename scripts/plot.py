import workflow_src  # noqa: F401, I001 (first: this workflow's src/ before site-packages)
from pcflow.workflow.steps import run_plot

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
run_plot(sm.wildcards.dataset, sm.wildcards.reduction, sm.input.nc, sm.output.png, sm.log[0])
