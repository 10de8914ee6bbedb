rule reduce:
    """Reduce the staged Zarr with Dask (local cluster or Dask Gateway) to a small NetCDF."""
    input:
        manifest=f"{RESULTS}/{{dataset}}/staged.json",
    output:
        nc=f"{RESULTS}/{{dataset}}/{{reduction}}.nc",
    params:
        compute=config.get("compute", {}),
    log:
        "logs/reduce/{dataset}/{reduction}.log",
    threads: 2
    resources:
        mem_mb=4000,
    script:
        "../scripts/reduce.py"
