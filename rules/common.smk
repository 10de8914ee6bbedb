import sys
from pathlib import Path

# This workflow's checkout: the folder above rules/ (not workflow.basedir, which is the outer
# workflow's when pcflow is used as a Snakemake module).
PCFLOW_DIR = Path(workflow.current_basedir.get_path_or_uri(secret_free=True)).parent
# The main process imports pcflow from this workflow's sources, not from an installed copy
# (rule scripts do the same, scripts/workflow_src.py).
sys.path.insert(0, str(PCFLOW_DIR / "src"))

from pcflow.config import ConfigError, validate  # noqa: E402
from pcflow.provenance import ENV_VAR as PROVENANCE_ENV  # noqa: E402
from pcflow.workflow import invocation, run_setup  # noqa: E402
from pcflow.workflow.offline_storage import check_default_storage  # noqa: E402

try:
    _validated = validate(config)
except ConfigError as err:
    sys.exit(f"pcflow: {err}")
config.clear()
config.update(_validated)

# What Snakemake was asked to do (dry run, picture, executor), known before any job is planned.
INVOCATION = invocation.of(workflow)

# A default storage (the kbatch profile) out of reach: `-n` plans anyway and says so; a real
# run stops with one line instead of retrying for minutes.
_offline_notice = check_default_storage(workflow, plan_only=INVOCATION.plan_only)
if _offline_notice:
    print(_offline_notice, file=sys.stderr)

# One provenance record per run, built in the main process from git + the validated config and
# handed to every job through the environment (src/pcflow/provenance.py explains why).
PROVENANCE = run_setup.start(workflow, config, PCFLOW_DIR, INVOCATION)

RESULTS = config.get("results", "results")
DATASETS = sorted(config["datasets"])
# The image every job runs in with --software-deployment-method apptainer (built from
# envs/Dockerfile; the kbatch profile's image, a test checks they agree).
CONTAINER = "docker://pcflow/kbatch-job:0.1.0"


wildcard_constraints:
    dataset="|".join(DATASETS),
    reduction="[a-z0-9_]+",


def all_figures():
    return [
        f"{RESULTS}/{name}/figures/{reduction}.png"
        for name in DATASETS
        for reduction in config["datasets"][name]["reductions"]
    ]


def run_record_inputs(wildcards):
    return {
        "discovered": [f"{RESULTS}/{d}/items.json" for d in DATASETS],
        "manifests": [f"{RESULTS}/{d}/staged.json" for d in DATASETS],
        "netcdfs": [
            f"{RESULTS}/{d}/{r}.nc"
            for d in DATASETS
            for r in config["datasets"][d]["reductions"]
        ],
    }
