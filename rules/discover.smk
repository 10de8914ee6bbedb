rule discover:
    """Search the STAC API; record matched items with unsigned hrefs."""
    output:
        f"{RESULTS}/{{dataset}}/items.json",
    params:
        # Re-run discovery when the dataset's query changes (Snakemake's params trigger).
        query=dataset_config,
        api=config["stac_api"],
    log:
        "logs/discover/{dataset}.log",
    script:
        "../scripts/discover.py"
