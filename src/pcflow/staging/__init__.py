"""Staging: discovered MPC data → analysis-ready Zarr in the user's Azure container.

    manifest = stage(items_doc, "daymet-hi", dataset_cfg, target, staging_cfg, provenance, log)
    collection = stac_collection(manifest)          # STAC Collection (dict) for the staged Zarr
    ds = open_staged(manifest, target)              # refuses incomplete stores

See docs/staging.md for the write protocol (template, regions, markers, verification).
"""

from pcflow.staging.core import stage
from pcflow.staging.retry import StagingError
from pcflow.staging.stac_collection import stac_collection
from pcflow.staging.staged import IncompleteStoreError, check_unchanged, open_staged

__all__ = [
    "IncompleteStoreError",
    "StagingError",
    "check_unchanged",
    "open_staged",
    "stac_collection",
    "stage",
]
