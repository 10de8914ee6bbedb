rule discover:
    """Search the STAC API; record matched items with unsigned hrefs."""
    output:
        f"{RESULTS}/{{dataset}}/items.json",
    log:
        "logs/discover/{dataset}.log",
    conda:
        "../envs/discover.yaml"
    container:
        CONTAINER
    resources:
        mem_mb=1000,
        runtime=15,
    params:
        # Re-run discovery when the dataset's query changes (Snakemake's params trigger).
        query=lookup(dpath="datasets/{dataset}", within=config),
        api=lookup(dpath="stac_api", within=config),
        stac=lookup(dpath="stac", within=config, default={}),
    script:
        "../scripts/discover.py"
