"""Imported first by every rule script: this workflow's src/ comes before site-packages.

A job's Python may hold another pcflow (an editable install of a different checkout, or the
image's copy on kbatch); jobs must run the code of this workflow (clone, sources archive or
Snakemake module). Snakemake puts the script's folder on sys.path, so this module is found.
PYTHONPATH carries the same to the job's own subprocesses (Dask workers).
"""

import os
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parent.parent / "src")
if sys.path[:1] != [SRC]:
    sys.path.insert(0, SRC)
_paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
if _paths[0] != SRC:
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, *_paths) if p)
