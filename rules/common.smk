import sys
from pathlib import Path

# Jobs (local or kbatch) import pcflow from the workflow's own sources, not from an image.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from pcflow.config import ConfigError, validate  # noqa: E402

try:
    _validated = validate(config)
except ConfigError as err:
    sys.exit(f"pcflow: {err}")
config.clear()
config.update(_validated)

# A default storage (the kbatch profile) out of reach: `-n` plans anyway and says so; a real
# run stops with one line instead of retrying for minutes.
from pcflow.workflow.offline_storage import check_default_storage  # noqa: E402

_offline_notice = check_default_storage(workflow, sys.argv)
if _offline_notice:
    print(_offline_notice, file=sys.stderr)

RESULTS = config.get("results", "results")
DATASETS = sorted(config["datasets"])


wildcard_constraints:
    dataset="|".join(DATASETS),
    reduction="[a-z0-9_]+",


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def all_figures():
    return [
        f"{RESULTS}/{name}/figures/{reduction}.png"
        for name in DATASETS
        for reduction in config["datasets"][name]["reductions"]
    ]
