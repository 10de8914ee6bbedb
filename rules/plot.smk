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
    script:
        "../scripts/plot.py"
