rule stage:
    """Copy the discovered data into the target container as analysis-ready Zarr."""
    input:
        discovered=f"{RESULTS}/{{dataset}}/items.json",
    output:
        # staged.json is written last, only once the Zarr store is complete and verified.
        manifest=f"{RESULTS}/{{dataset}}/staged.json",
        collection=f"{RESULTS}/{{dataset}}/collection.json",
    log:
        "logs/stage/{dataset}.log",
    conda:
        "../envs/stage.yaml"
    container:
        CONTAINER
    # The codec threads (staging.threads, else 2; `--set-threads stage=N` overrides).
    threads: lookup(dpath="staging/threads", within=config, default=2)
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        dataset=lookup(dpath="datasets/{dataset}", within=config),
        target=lookup(dpath="target", within=config),
        staging=lookup(dpath="staging", within=config, default={}),
    script:
        "../scripts/stage.py"
