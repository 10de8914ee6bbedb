"""Provenance: which code, configuration and environment made an output."""

from __future__ import annotations

import hashlib
import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import git

# Packages whose versions decide results; recorded in every output's provenance.
KEY_PACKAGES = (
    "pcflow",
    "snakemake",
    "xarray",
    "zarr",
    "dask",
    "distributed",
    "numpy",
    "adlfs",
    "pystac-client",
    "planetary-computer",
    "odc-stac",
    "flox",
    "dask-gateway",
    "kbatch",
)


def strip_credentials(url: str) -> str:
    """A remote URL without user:password@ or tokens."""
    return re.sub(r"(?<=://)[^/@]+@", "", url)


def config_hash(config: dict[str, Any]) -> str:
    """Stable hash of a configuration (key order does not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def git_state(path: str | Path = ".") -> dict[str, Any]:
    """Commit, dirtiness (with a diff hash) and credential-free remote of the repo at path."""
    try:
        repo = git.Repo(path, search_parent_directories=True)
        commit = repo.head.commit.hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return {"commit": None, "dirty": None, "diff_sha256": None, "remote": None}
    dirty = repo.is_dirty(untracked_files=False)
    diff_hash = hashlib.sha256(repo.git.diff("HEAD").encode()).hexdigest() if dirty else None
    remote = strip_credentials(repo.remotes[0].url) if repo.remotes else None
    return {"commit": commit, "dirty": dirty, "diff_sha256": diff_hash, "remote": remote}


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def record(config: dict[str, Any], repo_path: str | Path = ".", executor: str = "local") -> dict:
    """The provenance record attached to outputs (deterministic for the same code and config)."""
    return {
        "git": git_state(repo_path),
        "config_sha256": config_hash(config),
        "packages": package_versions(),
        "executor": executor,
    }
