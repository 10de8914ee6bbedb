import workflow_src  # noqa: F401, I001 (first: this workflow's src/ before site-packages)
from pcflow.workflow.steps import run_discover

sm = snakemake  # noqa: F821 (injected by Snakemake's script directive)
run_discover(
    sm.wildcards.dataset,
    sm.params.query,
    sm.params.api,
    sm.output[0],
    sm.log[0],
    sm.config,
    stac_cfg=sm.params.stac,
)
