# The run record. PROVENANCE is built in rules/common.smk (pcflow.workflow.run_setup) and
# reaches every job, local or remote, through this environment variable.


envvars:
    PROVENANCE_ENV,


rule run_record:
    """The run record for `pcflow reproduce`: provenance plus checksums of every result."""
    input:
        unpack(run_record_inputs),
    output:
        report(
            f"{RESULTS}/provenance.json",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    log:
        "logs/run_record.log",
    localrule: True
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        # For the report caption. Changing with the commit only re-runs this cheap last rule.
        commit=str(PROVENANCE["git"]["commit"]),
        state="with uncommitted changes" if PROVENANCE["git"]["dirty"] else "clean",
        remote=str(PROVENANCE["git"]["remote"]),
        config_sha256=PROVENANCE["config_sha256"],
        executor=PROVENANCE["executor"],
        snakemake=str(PROVENANCE["snakemake"]),
        lock_sha256=str(PROVENANCE["environment"]["lock_sha256"]),
    run:
        from pcflow import reproduce

        reproduce.write_run_record(config, PROVENANCE, RESULTS, output[0], log[0])
