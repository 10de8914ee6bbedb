rule plot:
    """Plot a reduction; figures go into the Snakemake report."""
    input:
        nc=f"{RESULTS}/{{dataset}}/{{reduction}}.nc",
    output:
        png=report(
            f"{RESULTS}/{{dataset}}/figures/{{reduction}}.png",
            caption="../report/reduction.rst",
            category="{dataset}",
            subcategory="{reduction}",
        ),
    log:
        "logs/plot/{dataset}/{reduction}.log",
    conda:
        "../envs/plot.yaml"
    container:
        CONTAINER
    resources:
        mem_mb=2000,
        runtime=15,
    script:
        "../scripts/plot.py"
