"""`pcflow reproduce RESULT`: re-run the workflow from a fresh clone at the recorded commit and
say whether the results are identical, or what differs and why (config, code, upstream data).

RESULT is anything carrying a provenance record: results/provenance.json (the run record, with
checksums of every result), a dataset's staged.json, or a reduction's NetCDF.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pcflow import provenance

RUN_RECORD_SCHEMA = "pcflow-run-record/1"
ZARR_METADATA = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
# Config keys that say where outputs go, not what they hold; reproduce moves them.
IGNORED_CONFIG = ("target.prefix", "results")


class ReproduceError(RuntimeError):
    """A problem that stops the re-run; str() names it and the fix."""


# -- checksums of results ---------------------------------------------------------------------


def _array_of(key: str) -> str:
    """The array a chunk key belongs to (v3 `var/c/0/0`, v2 `var/0.0`)."""
    if "/c/" in key or key.startswith("c/"):
        return key.split("/c/", 1)[0] if "/c/" in key else ""
    return key.rsplit("/", 1)[0] if "/" in key else ""


def is_chunk_key(key: str) -> bool:
    """Chunk objects only: not metadata (zarr.json, .zarray, ...) nor hidden state (.pcflow/)."""
    parts = key.split("/")
    return not any(p.startswith(".") for p in parts) and parts[-1] not in ZARR_METADATA


def zarr_digests(url: str, storage_options: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per array: number of chunk objects and a sha256 over (chunk key, chunk sha256), sorted.

    Metadata documents (zarr.json, .zattrs, ...) are left out: they carry the provenance
    record itself, which names the commit and so legitimately differs between runs.
    """
    from pcflow import storage

    fs = storage.filesystem(dict(storage_options))
    root = url.split("://", 1)[-1].rstrip("/")
    keys = sorted(k for k in (p[len(root) + 1 :] for p in fs.find(root)) if is_chunk_key(k))
    arrays: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), 64):
        batch = keys[start : start + 64]
        blobs = fs.cat([f"{root}/{k}" for k in batch])
        for key in batch:
            entry = arrays.setdefault(_array_of(key), {"chunks": 0, "_h": []})
            entry["chunks"] += 1
            entry["_h"].append(f"{key}:{hashlib.sha256(blobs[f'{root}/{key}']).hexdigest()}")
    for entry in arrays.values():
        entry["sha256"] = hashlib.sha256("\n".join(entry.pop("_h")).encode()).hexdigest()
    return arrays


def netcdf_digests(path: str | Path) -> dict[str, dict[str, Any]]:
    """Per variable and coordinate: dtype, shape and sha256 of the values (C order)."""
    import xarray as xr

    out = {}
    with xr.open_dataset(path) as ds:
        for name in sorted(map(str, ds.variables)):
            values = np.ascontiguousarray(ds[name].values)
            out[name] = {
                "dtype": str(values.dtype),
                "shape": list(values.shape),
                "sha256": hashlib.sha256(values.tobytes()).hexdigest(),
            }
    return out


def compare_netcdf(recorded: Path, new: Path, rtol: float, atol: float) -> list[str]:
    """Differences between two NetCDF results; equal within rtol/atol counts as the same."""
    import xarray as xr

    diffs = []
    with (
        xr.open_dataset(recorded) as a,
        xr.open_dataset(new) as b,
    ):
        for name in sorted(set(map(str, a.variables)) | set(map(str, b.variables))):
            if name not in a.variables or name not in b.variables:
                where = "re-run" if name not in b.variables else "recorded result"
                diffs.append(f"{new.name}: variable {name} missing from the {where}")
                continue
            va, vb = a[name].values, b[name].values
            if va.shape != vb.shape:
                diffs.append(f"{new.name}: {name} shape {va.shape} -> {vb.shape}")
                continue
            if va.dtype.kind in "fc":
                ok = np.allclose(va, vb, rtol=rtol, atol=atol, equal_nan=True)
                if not ok:
                    err = np.nanmax(np.abs(va.astype("f8") - vb.astype("f8")))
                    diffs.append(
                        f"{new.name}: {name} values differ (max abs diff {err:.6g} > "
                        f"rtol {rtol:g}, atol {atol:g})"
                    )
            elif not np.array_equal(va, vb):
                diffs.append(f"{new.name}: {name} values differ")
    return diffs


# -- comparing records ------------------------------------------------------------------------


def _flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(doc, Mapping):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: doc}


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """`key: old -> new` for every changed config value, except where outputs are placed."""
    a, b = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(a) | set(b)):
        if key in IGNORED_CONFIG or a.get(key) == b.get(key):
            continue
        lines.append(f"{key}: {json.dumps(a.get(key))} -> {json.dumps(b.get(key))}")
    return lines


def stac_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """What changed upstream: items added, removed or updated; the collection's `updated`."""
    old, new = old or {}, new or {}
    out = []
    a_up, b_up = old.get("item_updated") or {}, new.get("item_updated") or {}
    a_ids = set(old.get("item_ids") or a_up)
    b_ids = set(new.get("item_ids") or b_up)
    added, removed = sorted(b_ids - a_ids), sorted(a_ids - b_ids)
    updated = sorted(i for i in a_ids & b_ids if a_up.get(i) != b_up.get(i))
    if added or removed or updated:
        parts = []
        for label, ids in (("added", added), ("removed", removed), ("updated", updated)):
            if ids:
                shown = ", ".join(ids[:5]) + (f" (+{len(ids) - 5} more)" if len(ids) > 5 else "")
                parts.append(f"{label} {shown}")
        out.append("; ".join(parts))
    if old.get("collection_updated") != new.get("collection_updated"):
        out.append(
            f"collection {new.get('collection') or old.get('collection')} updated "
            f"{old.get('collection_updated')} -> {new.get('collection_updated')}"
        )
    return out


def record_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Verdict lines for two provenance records (config, code, environment, upstream items)."""
    lines = []
    changes = config_diff(old.get("config") or {}, new.get("config") or {})
    if changes:
        lines.append("config changed: " + "; ".join(changes))
    og, ng = old.get("git") or {}, new.get("git") or {}
    if og.get("commit") != ng.get("commit"):
        lines.append(f"code commit differs: recorded {og.get('commit')}, re-run {ng.get('commit')}")
    elif og.get("dirty") != ng.get("dirty") or og.get("diff_sha256") != ng.get("diff_sha256"):
        lines.append(
            f"code commit differs: both at {og.get('commit')}, but uncommitted changes differ "
            f"(recorded dirty={og.get('dirty')} diff {str(og.get('diff_sha256'))[:12]}, "
            f"re-run dirty={ng.get('dirty')} diff {str(ng.get('diff_sha256'))[:12]})"
        )
    oe, ne = old.get("environment") or {}, new.get("environment") or {}
    if oe.get("lock_sha256") != ne.get("lock_sha256"):
        lines.append(
            f"environment differs: lock sha256 {str(oe.get('lock_sha256'))[:12]} -> "
            f"{str(ne.get('lock_sha256'))[:12]}"
        )
    op, np_ = oe.get("packages") or {}, ne.get("packages") or {}
    pk = [
        f"{k} {op.get(k)} -> {np_.get(k)}"
        for k in sorted(set(op) | set(np_))
        if op.get(k) != np_.get(k)
    ]
    if pk:
        lines.append("environment differs: " + ", ".join(pk))
    if old.get("stac") is not None or new.get("stac") is not None:
        upstream = stac_diff(old.get("stac"), new.get("stac"))
        if upstream:
            lines.append("upstream STAC items changed since: " + "; ".join(upstream))
    return lines


# -- the run record (results/provenance.json) --------------------------------------------------


def _manifest_url(manifest: Mapping[str, Any]) -> str | None:
    for key in ("url", "store", "zarr_url", "href"):
        if isinstance(manifest.get(key), str):
            return manifest[key]
    return None


def dataset_results(
    config: Mapping[str, Any], results: Path, name: str, hash_zarr: bool = True
) -> dict[str, Any]:
    """What one dataset's outputs hold: STAC items, Zarr chunk checksums, NetCDF value hashes."""
    from pcflow import storage

    out: dict[str, Any] = {}
    items = results / name / "items.json"
    if items.exists():
        out["stac"] = provenance.with_stac({}, json.loads(items.read_text()))["stac"]
    manifest_path = results / name / "staged.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        url = _manifest_url(manifest) or storage.target_url(config["target"], name)
        out["zarr"] = {"url": url}
        if hash_zarr:
            opts = storage.target_storage_options(dict(config["target"]))
            out["zarr"]["arrays"] = zarr_digests(url, opts)
    out["results"] = {}
    made_by = {}  # outputs kept from an earlier run name their own commit
    for path in (items, manifest_path):
        if path.exists():
            made_by[path.name] = (json.loads(path.read_text()).get("provenance") or {}).get("git")
    for reduction in config["datasets"][name].get("reductions", []):
        nc = results / name / f"{reduction}.nc"
        if nc.exists():
            out["results"][reduction] = netcdf_digests(nc)
            made_by[nc.name] = provenance.from_output(nc).get("git")
    out["made_by"] = {k: (v or {}).get("commit") for k, v in made_by.items()}
    return out


def write_run_record(
    config: Mapping[str, Any],
    record: Mapping[str, Any],
    results: str | Path,
    out: str | Path,
    log_path: str | None = None,
) -> dict[str, Any]:
    """Write results/provenance.json: the run's provenance + per-dataset result checksums."""
    from pcflow.workflow.steps import write_json

    results = Path(results)
    doc = {
        "schema": RUN_RECORD_SCHEMA,
        "provenance": dict(record),
        "datasets": {
            name: dataset_results(config, results, name) for name in sorted(config["datasets"])
        },
    }
    write_json(out, doc)
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text(f"wrote {out}: {provenance.summary(record)}\n")
    return doc


# -- reproduce ---------------------------------------------------------------------------------


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


def compare(
    recorded: Mapping[str, Any],
    new_results: Path,
    new_config: Mapping[str, Any],
    rtol: float,
    atol: float,
) -> list[str]:
    """All differences between the recorded results and the re-run's (empty: identical)."""
    from pcflow import storage

    diffs: list[str] = []
    new_rec = None
    for name in sorted(recorded["datasets"]):
        manifest = new_results / name / "staged.json"
        if manifest.exists():
            new_rec = provenance.from_output(manifest)
            break
    if new_rec is None:
        ncs = sorted(new_results.glob("*/*.nc"))
        new_rec = provenance.from_output(ncs[0]) if ncs else {}
    diffs += record_diff(
        {**recorded["provenance"], "stac": None},
        {**new_rec, "stac": None},
    )
    opts = storage.target_storage_options(dict(new_config["target"]))
    for name, old in sorted(recorded["datasets"].items()):
        new = dataset_results(new_config, new_results, name, hash_zarr=False)
        if "stac" in old or "stac" in new:
            upstream = stac_diff(old.get("stac"), new.get("stac"))
            if upstream:
                diffs.append(f"upstream STAC items changed since ({name}): " + "; ".join(upstream))
        if "zarr" in old and "zarr" in new:
            old_arrays = old["zarr"].get("arrays")
            if old_arrays is None:  # a manifest: hash the recorded store if it still exists
                old_opts = storage.target_storage_options(
                    dict(recorded["provenance"]["config"]["target"])
                )
                old_arrays = zarr_digests(old["zarr"]["url"], old_opts)
            new_arrays = zarr_digests(new["zarr"]["url"], opts)
            for arr in sorted(set(old_arrays) | set(new_arrays)):
                a, b = old_arrays.get(arr), new_arrays.get(arr)
                if a is None or b is None:
                    diffs.append(
                        f"zarr {name}: array {arr!r} only in the "
                        + ("re-run" if a is None else "record")
                    )
                elif a["sha256"] != b["sha256"]:
                    diffs.append(
                        f"zarr {name}: array {arr!r} chunks differ "
                        f"({a['chunks']} -> {b['chunks']} chunks)"
                    )
        for reduction, old_vars in sorted((old.get("results") or {}).items()):
            if f"{name}/{reduction}" in recorded["netcdf"]:
                continue  # compared below, value by value
            new_vars = (new.get("results") or {}).get(reduction)
            if new_vars is None:
                diffs.append(f"{name}/{reduction}.nc: missing from the re-run")
                continue
            for var in sorted(set(old_vars) | set(new_vars)):
                if (old_vars.get(var) or {}).get("sha256") != (new_vars.get(var) or {}).get(
                    "sha256"
                ):
                    diffs.append(f"{name}/{reduction}.nc: {var} values differ (bitwise)")
    for key, old_nc in sorted(recorded["netcdf"].items()):
        new_nc = new_results / f"{key}.nc"
        if not new_nc.exists():
            diffs.append(f"{key}.nc: missing from the re-run")
            continue
        diffs += compare_netcdf(Path(old_nc), new_nc, rtol, atol)
    return diffs


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


if __name__ == "__main__":
    sys.exit(main())
