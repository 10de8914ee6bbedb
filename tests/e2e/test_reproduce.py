"""Reproducible re-runs from git clones (issue 6), against the sandbox.

The working tree is snapshotted into a temporary git repository ("origin", committed there,
never in the real repo); a clone of it makes the recorded run and `pcflow reproduce` clones it
again. Checks: the verdict is "identical"; two clones give bit-identical Zarr chunks and
NetCDF data (compared here byte by byte, not with reproduce's own checksums); every output
names the commit that made it; a changed config, code commit and upstream STAC collection are
each named in the verdict; `--profile kbatch` refuses a dirty tree unless overridden.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import xarray as xr
import yaml

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NOT_SOURCES = (".git", ".venv*", "node_modules", ".sandbox", ".snakemake", "results", "logs")
NOT_SOURCES += ("dag", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info", ".tmp*")
ZARR_METADATA = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}


def git(cwd: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=pcflow-test", "-c", "user.email=test@pcflow", *args]
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def snakemake(repo: Path, workdir: Path, config: Path, *args: str, env=None, check=True):
    cmd = [str(BIN / "snakemake"), "-s", str(repo / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", str(config), "--cores", "2", *args]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env or os.environ.copy(), timeout=1500
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


def reproduce(*args: str, env=None, yes: bool = True) -> subprocess.CompletedProcess:
    # --yes: these tests clone the test origin the records name (non-interactive runs refuse
    # a result file's remote without it; see test_reproduce_asks_before_running_the_files_remote).
    proc = subprocess.run(
        [str(BIN / "pcflow"), "reproduce", *args, *(["--yes"] if yes else [])],
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),
        timeout=1500,
    )
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    return proc


def verdict(proc: subprocess.CompletedProcess) -> list[str]:
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("verdict:"))
    return lines[start:]


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> dict:
    """A git repo holding a snapshot of the current working tree, committed (not in REPO)."""
    dest = tmp_path_factory.mktemp("origin") / "pcflow"
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*NOT_SOURCES), symlinks=True)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "snapshot of the working tree for reproduce tests")
    return {"path": dest, "commit": git(dest, "rev-parse", "HEAD")}


@pytest.fixture(scope="module")
def recorded(origin, sandbox, tmp_path_factory) -> dict:
    """The recorded run: a clone of origin runs the demo, plus the run record."""
    base = tmp_path_factory.mktemp("recorded")
    clone = base / "clone"
    git(base, "clone", "-q", str(origin["path"]), str(clone))
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["target"]["prefix"] = "repro-e2e"
    # One dataset and one reduction: every check here is about records and re-runs, not the
    # demo's breadth (tests/e2e/test_workflow.py runs the whole demo).
    daymet = {**cfg["datasets"]["daymet-hi"], "reductions": ["spatial_mean"]}
    cfg["datasets"] = {"daymet-hi": daymet}
    config = base / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run = base / "run"
    t0 = time.monotonic()
    snakemake(clone, run, config, "all", "results/provenance.json")
    print(f"recorded run: {time.monotonic() - t0:.0f} s")
    return {"clone": clone, "run": run, "config": config, "cfg": cfg, "commit": origin["commit"]}


@pytest.fixture(scope="module")
def reproduced(recorded, tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("reproduce") / "w"
    t0 = time.monotonic()
    proc = reproduce(
        str(recorded["run"] / "results" / "provenance.json"), "--workdir", str(workdir)
    )
    print(f"reproduce: {time.monotonic() - t0:.0f} s")
    return {"proc": proc, "workdir": workdir}


def target_fs():
    from pcflow import storage

    target = {"account_name": os.environ["PCFLOW_TARGET_ACCOUNT_NAME"]}
    return storage.filesystem(storage.target_storage_options(target))


def chunk_bytes(fs, root: str) -> dict[str, bytes]:
    """Every chunk object of a Zarr store, by relative key: metadata documents and hidden
    state (staging's .pcflow/ resume records) left out."""
    keys = [
        p
        for p in fs.find(root)
        if p.rsplit("/", 1)[-1] not in ZARR_METADATA
        and not any(part.startswith(".") for part in p[len(root) + 1 :].split("/"))
    ]
    blobs = fs.cat(keys)
    return {k[len(root) + 1 :]: blobs[k] for k in keys}


def test_reproduce_from_run_record_is_identical(reproduced):
    proc = reproduced["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert verdict(proc) == ["verdict: identical"]
    out = proc.stdout
    assert "clone:" in out and "environment: reusing" in out and "lock sha256" in out


def test_two_clones_give_bit_identical_zarr_chunks_and_netcdf(recorded, reproduced):
    assert reproduced["proc"].returncode == 0
    first = recorded["run"] / "results"
    second = reproduced["workdir"] / "run" / "results"
    fs = target_fs()
    compared = 0
    for name, ds in recorded["cfg"]["datasets"].items():
        url_a = json.loads((first / name / "staged.json").read_text())["url"]
        url_b = json.loads((second / name / "staged.json").read_text())["url"]
        assert url_a != url_b  # two stores, not one compared with itself
        a = chunk_bytes(fs, url_a.split("://", 1)[1])
        b = chunk_bytes(fs, url_b.split("://", 1)[1])
        assert len(a) >= len(ds.get("variables") or ds["assets"])
        assert sorted(a) == sorted(b)
        different = [k for k in a if a[k] != b[k]]
        assert different == [], f"{len(different)} chunks differ, e.g. {different[:3]}"
        compared += len(a)
        for reduction in ds["reductions"]:
            with (
                xr.open_dataset(first / name / f"{reduction}.nc") as x,
                xr.open_dataset(second / name / f"{reduction}.nc") as y,
            ):
                assert sorted(map(str, x.variables)) == sorted(map(str, y.variables))
                for var in x.variables:
                    assert x[var].dtype == y[var].dtype
                    assert x[var].values.tobytes() == y[var].values.tobytes(), var
    print(f"compared {compared} Zarr chunks byte for byte")


def test_every_output_names_the_commit_that_made_it(recorded):
    commit = recorded["commit"]
    results = recorded["run"] / "results"
    from PIL import Image

    for name, ds in recorded["cfg"]["datasets"].items():
        items = json.loads((results / name / "items.json").read_text())
        assert items["provenance"]["git"]["commit"] == commit
        staged = json.loads((results / name / "staged.json").read_text())
        assert staged["provenance"]["git"]["commit"] == commit
        assert staged["provenance"]["git"]["dirty"] is False
        assert staged["provenance"]["config"]["target"]["prefix"] == "repro-e2e"
        assert commit in (results / name / "collection.json").read_text()
        fs = target_fs()
        root = staged["url"].split("://", 1)[1]
        meta = [p for p in fs.find(root) if p.rsplit("/", 1)[-1] in {"zarr.json", ".zattrs"}]
        top = [p for p in meta if p.count("/") == root.count("/") + 1]
        assert top and any(commit in fs.cat(p).decode() for p in top), "Zarr group attrs"
        for reduction in ds["reductions"]:
            with xr.open_dataset(results / name / f"{reduction}.nc") as nc:
                assert json.loads(nc.attrs["provenance"])["git"]["commit"] == commit
            with Image.open(results / name / "figures" / f"{reduction}.png") as png:
                assert json.loads(png.text["provenance"])["git"]["commit"] == commit
    record = json.loads((results / "provenance.json").read_text())
    assert record["provenance"]["git"]["commit"] == commit
    # The report holds the run record with a caption naming the commit (targets given
    # explicitly until rule all lists results/provenance.json).
    report = recorded["run"] / "report.html"
    args = ["--report", str(report), "all", "results/provenance.json"]
    snakemake(recorded["clone"], recorded["run"], recorded["config"], *args)
    html = report.read_text(errors="replace")
    assert f'made from git commit <tt class=\\"docutils literal\\">{commit}</tt>' in html


def test_reproduce_names_a_changed_config(recorded, tmp_path):
    """From a NetCDF: a shorter period is named as a config change (and its values differ)."""
    cfg = json.loads(json.dumps(recorded["cfg"]))
    cfg["target"]["prefix"] = "repro-e2e-config"
    cfg["datasets"]["daymet-hi"]["datetime"] = "2019-01-01/2019-12-31"
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    nc = recorded["run"] / "results" / "daymet-hi" / "spatial_mean.nc"
    proc = reproduce(str(nc), "--workdir", str(tmp_path / "w"), "--configfile", str(changed))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = verdict(proc)
    assert lines[0] == "verdict: differs"
    assert any(
        "config changed: datasets.daymet-hi.datetime" in x and "2019-12-31" in x for x in lines
    )
    assert not any("code commit differs" in x or "upstream STAC" in x for x in lines)


def test_reproduce_names_a_changed_code_commit(recorded, origin, tmp_path):
    """From staged.json, at a later commit: named, although the data stay identical."""
    readme = origin["path"] / "README.md"
    readme.write_text(readme.read_text() + "\n<!-- a later commit -->\n")
    git(origin["path"], "commit", "-q", "-am", "a later commit")
    later = git(origin["path"], "rev-parse", "HEAD")
    manifest = recorded["run"] / "results" / "daymet-hi" / "staged.json"
    proc = reproduce(str(manifest), "--workdir", str(tmp_path / "w"), "--rev", later)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = verdict(proc)
    assert lines[0] == "verdict: differs"
    commit_lines = [x for x in lines if "code commit differs" in x]
    assert commit_lines and recorded["commit"] in commit_lines[0] and later in commit_lines[0]
    assert not any("chunks differ" in x or "config changed" in x for x in lines), lines


def test_reproduce_runs_the_code_of_the_checked_out_commit(recorded, origin, tmp_path):
    """A commit that doubles every reduction: the re-run's values must change, which they
    only do if the jobs import pcflow from the clone (not from this checkout's install)."""
    steps = origin["path"] / "src" / "pcflow" / "workflow" / "steps.py"
    text = steps.read_text()
    # Doubles the computed result right before the reduce step re-checks the store (one line
    # inserted at the same indent, so the patch survives reformatting of the call above it).
    anchor = re.search(r"^( +)staging\.check_unchanged\(ds, target\)$", text, re.M)
    assert anchor, "reduce step no longer re-checks the store: update this test's anchor"
    indent = anchor.group(1)
    patched = text.replace(anchor.group(0), f"{indent}result = result * 2\n{anchor.group(0)}", 1)
    steps.write_text(patched)
    git(origin["path"], "commit", "-q", "-am", "double every reduction")
    doubled = git(origin["path"], "rev-parse", "HEAD")
    git(origin["path"], "revert", "--no-edit", "HEAD")  # later tests see the old code
    nc = recorded["run"] / "results" / "daymet-hi" / "spatial_mean.nc"
    proc = reproduce(str(nc), "--workdir", str(tmp_path / "w"), "--rev", doubled)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = verdict(proc)
    assert any("code commit differs" in x and doubled in x for x in lines)
    for var in recorded["cfg"]["datasets"]["daymet-hi"]["variables"]:
        assert any(f"spatial_mean.nc: {var} values differ" in x for x in lines), lines


@pytest.fixture
def changed_stac_api(sandbox, tmp_path):
    """A second STAC API serving the sandbox's catalog with the Daymet collection updated."""
    from pcflow.sandbox import seed
    from pcflow.sandbox.services import rustac_bin

    files = []
    for path in seed.stac_files(Path(sandbox.state_dir) / "stac"):
        doc = json.loads(Path(path).read_text())
        if isinstance(doc, dict) and doc.get("id") == "daymet-daily-hi":
            doc["updated"] = "2030-01-01T00:00:00Z"
        out = tmp_path / "stac" / Path(path).name
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(doc))
        files.append(str(out))
    with socket.socket() as sock:  # a free loopback port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [str(rustac_bin()), "serve", "--addr", f"127.0.0.1:{port}", *files],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/collections/daymet-daily-hi", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_reproduce_names_changed_upstream_items(recorded, changed_stac_api, tmp_path):
    env = {**os.environ, "PCFLOW_STAC_API": changed_stac_api}
    record = recorded["run"] / "results" / "provenance.json"
    proc = reproduce(str(record), "--workdir", str(tmp_path / "w"), env=env)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = verdict(proc)
    upstream = [x for x in lines if "upstream STAC items changed since" in x]
    assert upstream and "2030-01-01T00:00:00Z" in upstream[0], lines
    assert not any("code commit differs" in x or "chunks differ" in x for x in lines)


def test_kbatch_profile_refuses_a_dirty_tree_unless_overridden(recorded, sandbox, tmp_path):
    """Run from inside a clone, as users do (kbatch ships the sources below the work dir)."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(recorded["clone"]), str(clone))
    edited = "src/pcflow/reductions/__init__.py"  # any tracked source file
    code = clone / edited
    code.write_text(code.read_text() + "\n# local edit\n")
    shutil.copy(recorded["config"], clone / "run-config.yaml")  # untracked, outside code paths
    # Only the discover rule, as one job on the local kbatch; its own storage prefix keeps it
    # apart from the other kbatch runs of the session.
    sandbox.up(services=("kbatch",), seed=False)
    prefix = "snakemake/dirty-tree-test"
    cmd = [str(BIN / "snakemake"), "--profile", "kbatch", "--configfile", "run-config.yaml"]
    cmd += ["--default-storage-prefix", f"az://{prefix}", "results/daymet-hi/items.json"]
    env = {k: v for k, v in {**os.environ, **sandbox.env()}.items() if k != "PCFLOW_ALLOW_DIRTY"}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"

    def run(env):
        return subprocess.run(cmd, cwd=clone, capture_output=True, text=True, env=env, timeout=600)

    refused = run(env)
    err = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "refusing a remote (kbatch) run" in err and edited in err
    assert "PCFLOW_ALLOW_DIRTY=1" in err
    assert not list(clone.rglob("items.json"))
    remote = f"{prefix}/results/daymet-hi/items.json"
    fs = target_fs()
    assert not fs.exists(remote)

    allowed = run({**env, "PCFLOW_ALLOW_DIRTY": "1"})
    out = allowed.stdout + allowed.stderr
    assert "refusing a remote" not in out
    assert allowed.returncode == 0, out[-4000:]
    # With the profile's default storage provider, the job wrote items.json to blob storage.
    assert fs.exists(remote), "discover did not run"
    items = json.loads(fs.cat(remote))
    assert items["provenance"]["git"]["dirty"] is True
    assert edited in items["provenance"]["git"]["changed"]
    assert items["provenance"]["executor"] == "kbatch"
    assert len(items["provenance"]["git"]["diff_sha256"]) == 64


def test_reproduce_asks_before_running_the_files_remote(recorded, tmp_path):
    """The remote in a result file is not trusted: without --yes nothing is cloned or run."""
    record = recorded["run"] / "results" / "provenance.json"
    proc = reproduce(str(record), "--workdir", str(tmp_path / "w"), yes=False)
    assert proc.returncode == 2
    remote = json.loads(record.read_text())["provenance"]["git"]["remote"]
    assert f"will clone: {remote}" in proc.stdout and recorded["commit"] in proc.stdout
    assert "will run:" in proc.stdout and "--yes" in proc.stderr
    assert not (tmp_path / "w" / "repo").exists() and not (tmp_path / "w" / "run").exists()
