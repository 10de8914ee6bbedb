"""Provenance: which code, configuration, data and environment made an output.

One record per run, computed deterministically from the repository and the validated config
(no timestamps, no host names), so that the same code + config give the same record and the
same output bytes. The main Snakemake process computes it while parsing the workflow
(pcflow.workflow.run_setup) and hands it to every job through the environment variable
PCFLOW_PROVENANCE: local jobs inherit it, remote (kbatch) jobs get it because the workflow
registers it with `envvars`. Jobs never look at git themselves: a kbatch job runs from
Snakemake's sources archive, which has no .git.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re
import zlib
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import git

from pcflow.paths import REPO_ROOT

SCHEMA = "pcflow-provenance/1"
ENV_VAR = "PCFLOW_PROVENANCE"
ALLOW_DIRTY_ENV = "PCFLOW_ALLOW_DIRTY"
EXECUTOR_ENV = "PCFLOW_EXECUTOR"
LOCK_FILE = "envs/requirements.lock"
# The repository this pcflow package was imported from (pcflow.paths).
PACKAGE_REPO = REPO_ROOT
# Paths whose untracked files change what runs; untracked results/ or notes do not.
SOURCE_PATHS = ("Snakefile", "rules", "scripts", "src", "config", "envs", "report", "kbatch")

# Packages whose versions decide results; recorded in every output's provenance.
KEY_PACKAGES = (
    "pcflow",
    "snakemake",
    "xarray",
    "zarr",
    "numcodecs",
    "numpy",
    "dask",
    "distributed",
    "adlfs",
    "netcdf4",
    "pystac-client",
    "planetary-computer",
    "odc-stac",
    "rioxarray",
    "flox",
    "dask-gateway",
    "kbatch",
)


class RemoteRunRefused(RuntimeError):
    """A remote (kbatch) run from a tree that a clone could not reproduce; str() says why + fix."""


def strip_credentials(url: str) -> str:
    """A remote URL without user:password@, tokens in the query string or ssh passwords."""
    url = re.sub(r"(?<=://)[^/@]+@", "", url)
    return re.sub(r"([?&](?:token|sig|access_token|password)=)[^&]*", r"\1***", url)


def secret_free(doc: Any) -> Any:
    """A copy safe to store: values under secret-named keys and secrets inside strings hidden.

    Validation already refuses secrets in the config; this second net keeps a secret that got
    in some other way (an env override, a future key) out of every copy of the record.
    """
    from pcflow.config import FREE_FORM, _is_secret_key
    from pcflow.redaction import redact

    def _hidden(parent: str, key: str) -> bool:
        # Dataset names are names; STAC query/filter keys are data.
        return parent not in FREE_FORM and parent != "datasets" and _is_secret_key(key)

    def walk(node: Any, parent: str) -> Any:
        if isinstance(node, dict):
            return {k: "***" if _hidden(parent, str(k)) else walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, parent) for v in node]
        return redact(node) if isinstance(node, str) else node

    return walk(doc, "")


def canonical_json(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable hash of a configuration (key order does not matter)."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def _repo(path: str | Path) -> git.Repo | None:
    try:
        repo = git.Repo(path, search_parent_directories=True)
        repo.head.commit  # noqa: B018 (raises ValueError in a repo without commits)
        return repo
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return None


def _untracked_sources(repo: git.Repo) -> list[str]:
    return sorted(
        p for p in repo.untracked_files if p.split("/", 1)[0] in SOURCE_PATHS or p in SOURCE_PATHS
    )


def git_state(path: str | Path = PACKAGE_REPO) -> dict[str, Any]:
    """Commit, dirtiness (with a diff hash) and credential-free remote of the repo at path.

    Dirty means tracked files differ from HEAD, or untracked files exist where code and
    config live (SOURCE_PATHS): both change what runs but are not in the commit.
    """
    repo = _repo(path)
    if repo is None:
        return {"commit": None, "dirty": None, "diff_sha256": None, "remote": None, "changed": []}
    changed = sorted(
        {d.a_path for d in repo.index.diff(None)} | {d.a_path for d in repo.head.commit.diff()}
    )
    untracked = _untracked_sources(repo)
    dirty = bool(changed or untracked)
    diff_hash = None
    if dirty:
        h = hashlib.sha256(repo.git.diff("HEAD", "--no-color").encode())
        root = Path(repo.working_tree_dir)
        for rel in untracked:  # their content counts too: same names, other bytes = other code
            h.update(rel.encode() + b"\0" + (root / rel).read_bytes())
        diff_hash = h.hexdigest()
    return {
        "commit": repo.head.commit.hexsha,
        "dirty": dirty,
        "diff_sha256": diff_hash,
        "remote": remote_url(repo),
        "changed": (changed + [f"{p} (untracked)" for p in untracked])[:50],
    }


def remote_url(repo: git.Repo) -> str | None:
    """origin's URL (else the first remote's), credentials stripped."""
    if not repo.remotes:
        return None
    names = [r.name for r in repo.remotes]
    remote = repo.remotes["origin"] if "origin" in names else repo.remotes[0]
    return strip_credentials(remote.url)


def lock_hash(repo_root: str | Path = PACKAGE_REPO) -> str | None:
    lock = Path(repo_root) / LOCK_FILE
    return hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else None


def package_versions(names: Sequence[str] = KEY_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment(repo_root: str | Path = PACKAGE_REPO) -> dict[str, Any]:
    """The locked environment (lock file hash) and the versions actually imported here."""
    return {
        "lock_sha256": lock_hash(repo_root),
        "python": platform.python_version(),
        "packages": package_versions(),
    }


def build(
    config: Mapping[str, Any], repo_path: str | Path = PACKAGE_REPO, executor: str = "local"
) -> dict[str, Any]:
    """The run's provenance record, from the repository at repo_path and the validated config."""
    state = git_state(repo_path)
    repo = _repo(repo_path)
    root = Path(repo.working_tree_dir) if repo is not None else Path(repo_path)
    env = environment(root)
    return {
        "schema": SCHEMA,
        "git": state,
        "config_sha256": config_hash(config),
        "config": secret_free(json.loads(canonical_json(config))),
        "environment": env,
        "snakemake": env["packages"].get("snakemake"),
        "executor": executor,
    }


def encode(record: Mapping[str, Any]) -> str:
    """Compact, shell- and YAML-safe form for an environment variable (kbatch Job env)."""
    return base64.urlsafe_b64encode(zlib.compress(canonical_json(record).encode(), 9)).decode()


def decode(value: str) -> dict[str, Any]:
    return json.loads(zlib.decompress(base64.urlsafe_b64decode(value.encode())))


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    env = os.environ if environ is None else environ
    value = env.get(ENV_VAR)
    if not value:
        return None
    try:
        return decode(value)
    except (ValueError, zlib.error):
        return None


def record(
    config: Mapping[str, Any],
    repo_path: str | Path | None = None,
    executor: str | None = None,
) -> dict[str, Any]:
    """The provenance record for an output made with `config`.

    Inside a workflow job this is the run's record (PCFLOW_PROVENANCE, set by the main process);
    the environment part is re-read here because a remote job's image is what computed the
    output. Outside a workflow (or if the job's config is not the run's), it is built from git.
    """
    rec = from_env()
    if rec is None or rec.get("config_sha256") != config_hash(config):
        rec = build(config, repo_path or PACKAGE_REPO, executor or "local")
    else:
        rec = dict(rec)
        rec["environment"] = {**environment(), "lock_sha256": rec["environment"]["lock_sha256"]}
    if executor:
        rec["executor"] = executor
    return rec


def redact_url(url: Any) -> Any:
    """A URL with secret query values (sig=, subscription-key=) hidden; non-strings as given."""
    from pcflow.redaction import redact

    return redact(url) if isinstance(url, str) else url


def with_stac(rec: Mapping[str, Any], items_doc: Mapping[str, Any]) -> dict[str, Any]:
    """The record plus what discovery found: query, collection `updated`, item ids + `updated`."""
    keys = ("stac_api", "collection", "query", "collection_updated", "item_ids", "item_updated")
    stac = {k: items_doc.get(k) for k in keys}
    if isinstance(stac["stac_api"], str):
        stac["stac_api"] = strip_credentials(redact_url(stac["stac_api"]))
    stac["item_ids"] = sorted(stac["item_ids"] or [])
    return {**rec, "stac": stac}


# -- the workflow's side: computed once in the main process, passed to every job ------------


def detect_executor(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> str:
    """Executor named on the Snakemake command line (--executor/-e, or a profile's `executor:`).

    The workflow is parsed before Snakemake picks the executor plugin, so the command line is
    the only place to learn it then. PCFLOW_EXECUTOR wins (set it when calling the Python API).
    """
    env = os.environ if environ is None else environ
    if env.get(EXECUTOR_ENV):
        return env[EXECUTOR_ENV]
    value = _option(argv, ("--executor", "-e"))
    if value:
        return value
    profile = _option(argv, ("--profile", "--workflow-profile")) or env.get("SNAKEMAKE_PROFILE")
    if profile:
        import yaml

        # Snakemake resolves a profile against the directory it was started in (it has chdir'ed
        # to --directory by now; the shell's PWD still names the start), then its config dirs.
        bases = [Path.cwd(), Path(env.get("PWD", ".")), Path.home() / ".config" / "snakemake"]
        bases.append(Path("/etc/xdg/snakemake"))
        for base in bases:
            for name in ("config.v8+.yaml", "config.yaml"):
                cfg = base / profile / name
                if cfg.exists():
                    doc = yaml.safe_load(cfg.read_text()) or {}
                    return str(doc.get("executor", "local"))
    return "local"


def is_dry_run_flag(arg: str) -> bool:
    """`--dry-run`/`--dryrun`, or a short-option bundle holding n (-n, -np, -pn)."""
    short_bundle = arg.startswith("-") and not arg.startswith("--") and arg[1:].isalpha()
    return arg in ("--dry-run", "--dryrun") or (short_bundle and "n" in arg[1:])


def is_dry_run(argv: Sequence[str]) -> bool:
    """True when Snakemake will not run jobs (dry run, DAG/summary/report/lint commands)."""
    flags = {"--summary", "--detailed-summary", "--dag", "--report"}
    flags |= {"--rulegraph", "--filegraph", "--lint", "--list-rules", "-l", "-D", "-S"}
    return any(arg in flags or is_dry_run_flag(arg) for arg in argv)


def _option(argv: Sequence[str], names: tuple[str, ...]) -> str | None:
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def allow_dirty(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(ALLOW_DIRTY_ENV, "").strip().lower() in {"1", "true", "yes"}


def check_clean_for_remote(repo_path: str | Path, allow: bool) -> dict[str, Any]:
    """Refuse a remote run that a clone could not reproduce, unless allowed; say why.

    Refused: uncommitted or untracked source changes, a commit no remote branch contains
    (as far as the local remote-tracking refs know: no network here), or no remote at all.
    Returns the git state (with "override": True when a problem was let through).
    """
    state = git_state(repo_path)
    problems = []
    if state["commit"] is None:
        problems.append(f"{repo_path} is not a git repository with a commit")
    else:
        if state["dirty"]:
            shown = ", ".join(state["changed"][:5]) + (" ..." if len(state["changed"]) > 5 else "")
            problems.append(f"the working tree has uncommitted changes ({shown})")
        repo = _repo(repo_path)
        if not repo.remotes:
            problems.append("the repository has no remote to clone the commit from")
        elif not repo.git.branch("-r", "--contains", state["commit"]).strip():
            problems.append(f"commit {state['commit'][:12]} is not on any remote branch (unpushed)")
    if problems and not allow:
        raise RemoteRunRefused(
            "pcflow: refusing a remote (kbatch) run: "
            + "; ".join(problems)
            + ". Remote results must be reproducible from a pushed commit: commit and push, "
            + f"or set {ALLOW_DIRTY_ENV}=1 to run anyway (outputs are then marked dirty)."
        )
    return {**state, "override": bool(problems), "problems": problems}


def for_workflow(
    basedir: str | Path,
    config: Mapping[str, Any],
    main_process: bool,
    argv: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    executor: str | None = None,
) -> dict[str, Any]:
    """The run's record as the Snakefile sees it (pcflow.workflow.run_setup).

    The main process builds it from git (a record inherited from a calling shell is ignored);
    job processes (local subprocess or remote kbatch) take the main process's record from
    PCFLOW_PROVENANCE and only fall back to git when it is missing.
    """
    if not main_process:
        inherited = from_env(environ)
        if inherited is not None:
            return inherited
    return build(config, basedir, executor or detect_executor(argv, environ))


# -- reading records back from outputs --------------------------------------------------------


def from_output(path: str | Path) -> dict[str, Any]:
    """The provenance record stored in an output: staged.json, collection.json, run record
    (provenance.json), items.json, NetCDF attrs or PNG text chunk."""
    path = Path(path)
    if path.suffix == ".nc":
        import xarray as xr

        with xr.open_dataset(path) as ds:
            raw = ds.attrs.get("provenance")
        if not raw:
            raise ValueError(f"{path}: no `provenance` attribute in the NetCDF")
        return json.loads(raw)
    if path.suffix == ".png":
        from PIL import Image

        with Image.open(path) as img:
            raw = img.text.get("provenance") if hasattr(img, "text") else None
        if not raw:
            raise ValueError(f"{path}: no `provenance` text chunk in the PNG")
        return json.loads(raw)
    doc = json.loads(path.read_text())
    for candidate in (
        doc.get("provenance") if isinstance(doc, dict) else None,
        (doc.get("summaries") or {}).get("pcflow:provenance") if isinstance(doc, dict) else None,
        doc.get("pcflow:provenance") if isinstance(doc, dict) else None,
        doc,
    ):
        if isinstance(candidate, str):
            candidate = json.loads(candidate)
        if isinstance(candidate, dict) and candidate.get("schema") == SCHEMA:
            return candidate
        if isinstance(candidate, dict) and "git" in candidate and "config_sha256" in candidate:
            return candidate
    raise ValueError(f"{path}: no pcflow provenance record found (expected key `provenance`)")


def summary(rec: Mapping[str, Any]) -> str:
    """One line: commit (dirty?), config hash, executor."""
    g = rec.get("git", {})
    commit = (g.get("commit") or "no-commit")[:12]
    dirty = f" dirty (diff {g['diff_sha256'][:12]})" if g.get("dirty") else " clean"
    return (
        f"commit {commit}{dirty}, config {rec.get('config_sha256', '')[:12]}, "
        f"executor {rec.get('executor')}, snakemake {rec.get('snakemake')}"
    )


def is_plan_request(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> bool:
    """`snakemake -n` (not --dag/--summary/...): print the pcflow plan too (PCFLOW_PLAN=0: no)."""
    env = os.environ if environ is None else environ
    if env.get("PCFLOW_PLAN", "1") == "0":
        return False
    graph = {"--dag", "--rulegraph", "--filegraph", "--summary", "--detailed-summary", "-S", "-D"}
    if any(a in graph or a.startswith("--dag=") for a in argv):
        return False
    return any(is_dry_run_flag(a) for a in argv)


def stamp_png(path: str | Path, rec: Mapping[str, Any]) -> None:
    """Add the record as a PNG text chunk `provenance` (pixels untouched, no timestamp)."""
    from PIL import Image, PngImagePlugin

    with Image.open(path) as img:
        img.load()
        info = PngImagePlugin.PngInfo()
        for key, value in getattr(img, "text", {}).items():
            if key != "provenance":
                info.add_text(key, value)
        info.add_text("provenance", canonical_json(rec), zip=True)
        img.save(path, format="PNG", pnginfo=info)
