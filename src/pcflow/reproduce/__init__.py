"""`pcflow reproduce RESULT`: re-run the workflow from a fresh clone at the recorded commit and
say whether the results are identical, or what differs and why (config, code, upstream data).

RESULT is anything carrying a provenance record: results/provenance.json (the run record, with
checksums of every result), a dataset's staged.json, or a reduction's NetCDF.

The package: `record` (the run record and result checksums), `rerun` (record, clone,
environment, config, targets, confirmation), `verdict` (what differs); `run` here ties them
together.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from pcflow import provenance
from pcflow.reproduce.record import (
    RUN_RECORD_SCHEMA,
    ZARR_METADATA,
    _array_of,
    dataset_results,
    is_chunk_key,
    netcdf_digests,
    write_run_record,
    zarr_digests,
)
from pcflow.reproduce.rerun import (
    ReproduceError,
    choose_environment,
    clone,
    confirm_plan,
    load_recorded,
    reproduce_config,
    rerun_targets,
)
from pcflow.reproduce.verdict import (
    IGNORED_CONFIG,
    compare,
    compare_netcdf,
    config_diff,
    record_diff,
    stac_diff,
)

__all__ = [
    "IGNORED_CONFIG",
    "RUN_RECORD_SCHEMA",
    "ZARR_METADATA",
    "ReproduceError",
    "_array_of",
    "add_arguments",
    "choose_environment",
    "cli_run",
    "clone",
    "compare",
    "compare_netcdf",
    "config_diff",
    "confirm_plan",
    "dataset_results",
    "is_chunk_key",
    "load_recorded",
    "main",
    "netcdf_digests",
    "record_diff",
    "reproduce_config",
    "rerun_targets",
    "run",
    "stac_diff",
    "write_run_record",
    "zarr_digests",
]


def run(args: argparse.Namespace, out=sys.stdout) -> int:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    recorded = load_recorded(Path(args.result))
    rec = recorded["provenance"]
    say(f"record: {args.result} ({recorded['kind']}): {provenance.summary(rec)}")
    if (rec.get("git") or {}).get("dirty"):
        say("note: the recorded run had uncommitted changes; a clone cannot contain them")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="pcflow-reproduce-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    repo_url = args.repo or (rec.get("git") or {}).get("remote")
    if not repo_url:
        raise ReproduceError("the record names no git remote — pass --repo PATH_OR_URL to clone")
    rev = args.rev or (rec.get("git") or {}).get("commit")
    if not rev:
        raise ReproduceError("the record names no commit — pass --rev")
    clone_dir = workdir / "repo"
    if clone_dir.exists():
        raise ReproduceError(f"{clone_dir} exists — pass an empty --workdir")
    confirm_plan(args, recorded, repo_url, rev, workdir, say)
    commit = clone(repo_url, rev, clone_dir)
    say(f"clone: {clone_dir} at {commit} (from {repo_url})")
    bin_dir, env_line = choose_environment(rec, clone_dir, args.install)
    say(env_line)
    if args.configfile:
        cfg = yaml.safe_load(Path(args.configfile).read_text())
        say(f"config: {args.configfile} (given with --configfile, not the recorded one)")
    else:
        token = hashlib.sha256(str(workdir).encode()).hexdigest()[:6]
        cfg = reproduce_config(rec, commit, args.same_target, token)
        say(
            "config: the recorded config (sha256 "
            f"{str(rec.get('config_sha256'))[:12]}), staged under target prefix "
            f"{cfg['target'].get('prefix')!r}"
        )
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=True))
    from pcflow import config as cfgmod

    new_config = cfgmod.validate(cfg)
    results_dir = str(new_config.get("results", "results"))  # relative to the run directory
    run_dir = workdir / "run"
    run_dir.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(clone_dir / "src")}
    env.pop(provenance.ENV_VAR, None)
    cmd = [
        str(Path(bin_dir) / "snakemake"),
        "-s",
        str(clone_dir / "Snakefile"),
        "--directory",
        str(run_dir),
        "--configfile",
        str(config_path),
        "--cores",
        str(args.cores),
        *rerun_targets(recorded, results_dir),
    ]
    say("run: " + " ".join(cmd))
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    (workdir / "snakemake.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        say(f"run failed after {time.monotonic() - t0:.0f} s; log: {workdir / 'snakemake.log'}")
        say(proc.stderr[-3000:])
        return 2
    say(f"run: done in {time.monotonic() - t0:.0f} s")
    diffs = compare(recorded, run_dir / results_dir, new_config, args.rtol, args.atol)
    say(
        f"compared: Zarr chunk checksums, NetCDF values (rtol {args.rtol:g}, atol {args.atol:g}),"
        " STAC item ids/updated, config, commit, environment"
    )
    if diffs:
        say("verdict: differs")
        for line in diffs:
            say(f"  - {line}")
        return 1
    say("verdict: identical")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("result", help="results/provenance.json, a staged.json or a reduction's .nc")
    p.add_argument("--workdir", help="where to clone and run (default: a new temporary folder)")
    p.add_argument("--repo", help="clone from here instead of the recorded remote")
    p.add_argument(
        "--yes",
        action="store_true",
        help="clone and run the remote named in the result file without asking",
    )
    p.add_argument("--rev", help="check out this revision instead of the recorded commit")
    p.add_argument("--configfile", help="run with this config instead of the recorded one")
    p.add_argument(
        "--install",
        choices=["auto", "reuse", "make"],
        default="auto",
        help="auto: reuse this environment when the lock hash matches, else `make install`",
    )
    p.add_argument(
        "--same-target",
        action="store_true",
        help="stage into the recorded target prefix (overwrites the recorded store)",
    )
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--rtol", type=float, default=0.0, help="NetCDF relative tolerance (default 0)")
    p.add_argument("--atol", type=float, default=0.0, help="NetCDF absolute tolerance (default 0)")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pcflow reproduce", description=__doc__.splitlines()[0])
    add_arguments(p)
    return cli_run(p.parse_args(argv))


def cli_run(args: argparse.Namespace) -> int:
    from pcflow.config import ConfigError

    try:
        return run(args)
    except (ReproduceError, ConfigError) as err:  # a bad --configfile is named before any run
        print(f"pcflow reproduce: error: {err}", file=sys.stderr)
        return 2
