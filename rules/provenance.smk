# Provenance: one record per run, built here in the main process from git + the validated config
# and handed to every job through the environment (src/pcflow/provenance.py explains why).
import os
import sys

from pcflow import provenance as _prov  # noqa: E402 (common.smk put this workflow's src/ first)

# `script:` jobs run in a new Python whose site-packages may hold another pcflow (an editable
# install of a different checkout, or the image's copy on kbatch). PYTHONPATH comes before
# site-packages, so every job imports pcflow from THIS workflow's sources (clone or archive).
_SRC = str(Path(workflow.basedir) / "src")
if os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] != _SRC:
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (_SRC, os.environ.get("PYTHONPATH", "")) if p
    )

PROVENANCE = _prov.for_workflow(
    workflow.basedir, config, main_process=workflow.is_main_process, argv=sys.argv
)

if workflow.is_main_process and PROVENANCE["executor"] == "kbatch":
    # Remote results must come from a commit anyone can clone (PCFLOW_ALLOW_DIRTY=1 overrides).
    try:
        _prov.check_clean_for_remote(workflow.basedir, allow=_prov.allow_dirty())
    except _prov.RemoteRunRefused as _err:
        if not _prov.is_dry_run(sys.argv):
            sys.exit(str(_err))
        print(f"(dry run) {_err}", file=sys.stderr)

os.environ[_prov.ENV_VAR] = _prov.encode(PROVENANCE)


envvars:
    _prov.ENV_VAR,


if workflow.is_main_process and _prov.is_plan_request(sys.argv):
    # `snakemake -n` also prints what the run would read, write and submit (pcflow.estimate).
    from pcflow import estimate as _plan

    _plan.print_plan(config, executor=PROVENANCE["executor"], file=sys.stderr)


def run_record_inputs(wildcards):
    return {
        "discovered": [f"{RESULTS}/{d}/items.json" for d in DATASETS],
        "manifests": [f"{RESULTS}/{d}/staged.json" for d in DATASETS],
        "netcdfs": [
            f"{RESULTS}/{d}/{r}.nc" for d in DATASETS for r in config["datasets"][d]["reductions"]
        ],
    }


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
    params:
        # For the report caption. Changing with the commit only re-runs this cheap last rule.
        commit=str(PROVENANCE["git"]["commit"]),
        state="with uncommitted changes" if PROVENANCE["git"]["dirty"] else "clean",
        remote=str(PROVENANCE["git"]["remote"]),
        config_sha256=PROVENANCE["config_sha256"],
        executor=PROVENANCE["executor"],
        snakemake=str(PROVENANCE["snakemake"]),
        lock_sha256=str(PROVENANCE["environment"]["lock_sha256"]),
    log:
        "logs/run_record.log",
    localrule: True
    run:
        from pcflow import reproduce

        reproduce.write_run_record(config, PROVENANCE, RESULTS, output[0], log[0])
