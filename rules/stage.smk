rule stage:
    """Copy the discovered data into the target container as analysis-ready Zarr."""
    input:
        discovered=f"{RESULTS}/{{dataset}}/items.json",
    output:
        # staged.json is written last, only once the Zarr store is complete and verified.
        manifest=f"{RESULTS}/{{dataset}}/staged.json",
        collection=f"{RESULTS}/{{dataset}}/collection.json",
    params:
        target=config["target"],
        staging=config.get("staging", {}),
    log:
        "logs/stage/{dataset}.log",
    threads: 2
    resources:
        mem_mb=4000,
    script:
        "../scripts/stage.py"
