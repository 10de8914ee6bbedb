# pcflow: STAC discovery -> Zarr staging (Azure) -> Dask reductions -> figures and report.
# Logic lives in src/pcflow; rules stay thin. Run `snakemake -n` for the plan, `make dag` for pictures.
from snakemake.utils import min_version

min_version("9.0")


# config/config.yaml is the default; `--configfile X` REPLACES it (Snakemake would otherwise
# merge the two, silently adding your datasets to the demo's).
if not workflow.overwrite_configfiles:
    # Snakemake's YAML error names neither line nor fix; pcflow's one line does, so the file is
    # read once first. (A bad `--configfile X` is read by Snakemake before this file runs:
    # `pcflow plan --configfile X` gives the same one line for it, see config/README.md.)
    import sys
    from pathlib import Path

    # The directive looks in the working directory.
    if Path("config/config.yaml").is_file():
        sys.path.insert(0, str(Path(workflow.basedir) / "src"))
        from pcflow.config import ConfigError, read

        try:
            read("config/config.yaml")
        except ConfigError as err:
            sys.exit(f"pcflow: {err}")

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/provenance.smk"
include: "rules/discover.smk"
include: "rules/stage.smk"
include: "rules/reduce.smk"
include: "rules/plot.smk"


rule all:
    default_target: True
    input:
        all_figures(),
        # The run record (provenance + checksums of every result) for `pcflow reproduce`.
        f"{RESULTS}/provenance.json",
