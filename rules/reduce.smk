rule reduce:
    """Reduce the staged Zarr with Dask (local cluster or Dask Gateway) to a small NetCDF."""
    input:
        manifest=f"{RESULTS}/{{dataset}}/staged.json",
    output:
        nc=f"{RESULTS}/{{dataset}}/{{reduction}}.nc",
    log:
        "logs/reduce/{dataset}/{reduction}.log",
    conda:
        "../envs/reduce.yaml"
    container:
        CONTAINER
    # The LocalCluster's threads (compute.threads, else 2; `--set-threads reduce=N` overrides).
    threads: lookup(dpath="compute/threads", within=config, default=2)
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        compute=lookup(dpath="compute", within=config, default={}),
        target=lookup(dpath="target", within=config),
        dataset=lookup(dpath="datasets/{dataset}", within=config),
        incomplete=lookup(dpath="reductions_incomplete", within=config, default="drop"),
    script:
        "../scripts/reduce.py"
