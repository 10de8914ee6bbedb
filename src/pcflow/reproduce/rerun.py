"""Setting up the re-run: the record to reproduce, the clone at its commit, the environment,
config and Snakemake targets of the re-run, and the user's go-ahead before any code runs."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from pcflow import provenance
from pcflow.reproduce.record import RUN_RECORD_SCHEMA, _manifest_url, netcdf_digests


class ReproduceError(RuntimeError):
    """A problem that stops the re-run; str() names it and the fix."""


def load_recorded(path: Path) -> dict[str, Any]:
    """The record to reproduce and what it says the results were.

    Returns {"provenance", "datasets": {name: {...}}, "netcdf": {name/reduction: Path}}.
    """
    path = path.resolve()
    if not path.exists():
        raise ReproduceError(
            f"{path}: no such file — pass a staged.json, NetCDF or provenance.json"
        )
    try:
        rec = provenance.from_output(path)
    except ValueError as err:
        raise ReproduceError(str(err)) from None
    if path.suffix == ".json":
        doc = json.loads(path.read_text())
        if doc.get("schema") == RUN_RECORD_SCHEMA:
            # NetCDF files next to the record that still hold the recorded values are compared
            # value by value (with the tolerance); the others by their recorded hashes.
            netcdf = {}
            for name, entry in doc["datasets"].items():
                for reduction, digests in (entry.get("results") or {}).items():
                    nc = path.parent / name / f"{reduction}.nc"
                    if nc.exists() and netcdf_digests(nc) == digests:
                        netcdf[f"{name}/{reduction}"] = nc
            return {"provenance": rec, "datasets": doc["datasets"], "netcdf": netcdf, "kind": "run"}
    dataset = path.parent.name
    entry: dict[str, Any] = {}
    if rec.get("stac") is not None:
        entry["stac"] = rec["stac"]
    if path.suffix == ".nc":
        return {
            "provenance": rec,
            "datasets": {dataset: entry},
            "netcdf": {f"{dataset}/{path.stem}": path},
            "kind": "netcdf",
        }
    manifest = json.loads(path.read_text())
    url = _manifest_url(manifest)
    if url:
        entry["zarr"] = {"url": url}
    return {"provenance": rec, "datasets": {dataset: entry}, "netcdf": {}, "kind": "manifest"}


def clone(url: str, rev: str, dest: Path) -> str:
    """Clone url into dest and check out rev; return the full commit."""
    import git

    try:
        repo = git.Repo.clone_from(url, dest, no_checkout=True)
    except git.GitCommandError as err:
        raise ReproduceError(f"cannot clone {url}: {err.stderr.strip()} — pass --repo") from None
    try:
        repo.git.checkout("--detach", rev)
    except git.GitCommandError:
        raise ReproduceError(
            f"commit {rev} is not in {url} (never pushed?) — push it, or pass --repo with a "
            "repository that has it"
        ) from None
    return repo.head.commit.hexsha


def choose_environment(recorded: Mapping[str, Any], clone_dir: Path, mode: str) -> tuple[str, str]:
    """(bin dir to run snakemake from, one line saying which environment and why)."""
    current_bin = Path(sys.executable).parent
    want = (recorded.get("environment") or {}).get("lock_sha256")
    have = provenance.lock_hash(clone_dir)
    versions = (recorded.get("environment") or {}).get("packages") or {}
    mismatched = []
    for name, version in versions.items():
        if name == "pcflow":
            continue  # comes from the clone's src/ (PYTHONPATH), whatever is installed
        try:
            if metadata.version(name) != version:
                mismatched.append(f"{name} {metadata.version(name)} (recorded {version})")
        except metadata.PackageNotFoundError:
            mismatched.append(f"{name} missing (recorded {version})")
    reusable = want is not None and want == have and not mismatched
    if mode == "reuse" or (mode == "auto" and reusable):
        why = (
            f"lock sha256 {str(want)[:12]} matches the clone's envs/requirements.lock and the "
            "key package versions match"
            if reusable
            else f"--install reuse (NOT matching: {', '.join(mismatched) or 'lock hash differs'})"
        )
        return str(current_bin), f"environment: reusing {current_bin.parent} ({why})"
    proc = subprocess.run(["make", "install"], cwd=clone_dir, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ReproduceError(f"`make install` failed in {clone_dir}:\n{proc.stderr[-2000:]}")
    why = "lock differs" if want != have else f"versions differ: {', '.join(mismatched)}"
    return str(
        clone_dir / ".venv" / "bin"
    ), f"environment: installed {clone_dir}/.venv with `make install` ({why})"


def rerun_targets(recorded: Mapping[str, Any], results_dir: str) -> list[str]:
    """Snakemake targets that re-make what the record describes, and no more.

    A NetCDF or a staged.json: that one file (Snakemake adds the jobs it depends on), so
    reproducing one result does not redo other datasets, plots and the report. A run record:
    [] (the workflow's default target, everything).
    """
    if recorded["kind"] == "netcdf":
        return [f"{results_dir}/{key}.nc" for key in sorted(recorded["netcdf"])]
    if recorded["kind"] == "manifest":
        return [f"{results_dir}/{name}/staged.json" for name in sorted(recorded["datasets"])]
    return []


def reproduce_config(
    recorded: Mapping[str, Any], commit: str, same_target: bool, token: str = ""
) -> dict[str, Any]:
    """The recorded config; staged under a separate prefix so the recorded store stays intact.

    token (from the work dir) keeps two re-runs of one commit from sharing a store.
    """
    cfg = json.loads(json.dumps(recorded.get("config") or {}))
    if not cfg:
        raise ReproduceError("the record holds no config content; pass --configfile")
    if not same_target:
        prefix = str(cfg["target"].get("prefix", "pcflow")).strip("/")
        suffix = f"-{token}" if token else ""
        cfg["target"]["prefix"] = f"{prefix}/reproduce-{commit[:12]}{suffix}"
    cfg.pop("results", None)
    return cfg


def confirm_plan(
    args: argparse.Namespace,
    recorded: Mapping[str, Any],
    repo_url: str,
    rev: str,
    workdir: Path,
    say: Any,
    stdin: Any = None,
) -> None:
    """Say what will be cloned and run; go on only with --yes, --repo or a 'y' on a terminal.

    The remote and commit come from the result file, which anyone could have written: cloning
    it runs that repository's Makefile (`make install`) and Snakefile with the user's
    credentials. A repository the user names with --repo is trusted as given.
    """
    stdin = sys.stdin if stdin is None else stdin
    source = "given with --repo" if args.repo else "named by the result file"
    results_dir = "results"
    if args.configfile:
        from pcflow import config as cfgmod

        results_dir = str(cfgmod.validate(cfgmod.read(args.configfile)).get("results"))
    targets = " ".join(rerun_targets(recorded, results_dir))
    say(f"will clone: {repo_url} ({source})")
    say(f"will check out: {rev}" + (" (given with --rev)" if args.rev else " (recorded)"))
    say(
        f"will run: `make install` in the clone if its lock differs from this environment "
        f"(--install {args.install}), then snakemake -s {workdir / 'repo' / 'Snakefile'} "
        f"--directory {workdir / 'run'} --configfile {workdir / 'config.yaml'} "
        f"--cores {args.cores} {targets}".rstrip()
    )
    if args.yes or args.repo:
        return
    if stdin.isatty():
        answer = input("run that repository's code on this machine? [y/N] ").strip().lower()
        if answer in ("y", "yes"):
            return
        raise ReproduceError("not confirmed; nothing was cloned")
    raise ReproduceError(
        f"the result file names the repository to clone ({repo_url}) and its code would run "
        "here — check it above, then pass --yes, or --repo PATH_OR_URL for one you chose"
    )
