"""Provenance records: git state, determinism, hand-over to jobs, the kbatch clean-tree check."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pcflow import provenance as prov

CONFIG = {"stac_api": "http://x", "target": {"account_name": "abc", "container": "c1"}}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    """A small repo with a pushed commit (a bare 'origin' next to it)."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(origin), str(work))
    (work / "src").mkdir()
    (work / "src" / "code.py").write_text("x = 1\n")
    (work / "envs").mkdir()
    (work / "envs" / "requirements.lock").write_text("numpy==2.0\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "init")
    git(work, "push", "-q", "origin", "HEAD:main")
    return work


def test_strip_credentials():
    assert prov.strip_credentials("https://me:tok3n@github.com/o/r.git") == (
        "https://github.com/o/r.git"
    )
    assert "s3cret" not in prov.strip_credentials("https://h/r.git?token=s3cret&x=1")
    assert prov.strip_credentials("git@github.com:o/r.git") == "git@github.com:o/r.git"


def test_config_hash_ignores_key_order_but_not_values():
    a = {"x": 1, "y": {"b": 2, "a": [1, 2]}}
    b = {"y": {"a": [1, 2], "b": 2}, "x": 1}
    assert prov.config_hash(a) == prov.config_hash(b)
    assert prov.config_hash(a) != prov.config_hash({**a, "x": 2})


def test_git_state_clean_then_dirty(repo):
    head = git(repo, "rev-parse", "HEAD")
    clean = prov.git_state(repo)
    assert clean["commit"] == head and clean["dirty"] is False and clean["diff_sha256"] is None
    assert clean["remote"].endswith("origin.git")

    (repo / "src" / "code.py").write_text("x = 2\n")
    dirty = prov.git_state(repo)
    assert dirty["dirty"] is True and dirty["changed"] == ["src/code.py"]
    (repo / "src" / "code.py").write_text("x = 3\n")
    assert prov.git_state(repo)["diff_sha256"] != dirty["diff_sha256"]


def test_untracked_code_is_dirty_untracked_results_are_not(repo):
    (repo / "results").mkdir()
    (repo / "results" / "out.json").write_text("{}")
    assert prov.git_state(repo)["dirty"] is False
    (repo / "src" / "new.py").write_text("y = 1\n")
    state = prov.git_state(repo)
    assert state["dirty"] is True and "src/new.py (untracked)" in state["changed"]


def test_not_a_repo(tmp_path):
    assert prov.git_state(tmp_path)["commit"] is None


def test_build_is_deterministic_and_complete(repo):
    a = prov.build(CONFIG, repo, "local")
    b = prov.build(json.loads(json.dumps(CONFIG)), repo, "local")
    assert a == b
    assert a["git"]["commit"] == git(repo, "rev-parse", "HEAD")
    assert a["config"] == CONFIG and a["config_sha256"] == prov.config_hash(CONFIG)
    lock = (repo / "envs" / "requirements.lock").read_bytes()
    import hashlib

    assert a["environment"]["lock_sha256"] == hashlib.sha256(lock).hexdigest()
    assert a["environment"]["packages"]["xarray"] == xr.__version__
    assert a["snakemake"] and a["executor"] == "local"


def test_encode_decode_roundtrip_is_env_safe(repo):
    rec = prov.build(CONFIG, repo)
    value = prov.encode(rec)
    assert all(c.isalnum() or c in "-_=" for c in value)
    assert prov.decode(value) == rec
    assert prov.from_env({prov.ENV_VAR: value}) == rec
    assert prov.from_env({prov.ENV_VAR: "garbage!"}) is None


def test_main_process_ignores_inherited_record_jobs_use_it(repo):
    stale = {**prov.build(CONFIG, repo), "git": {"commit": "stale"}}
    env = {prov.ENV_VAR: prov.encode(stale)}
    main = prov.for_workflow(repo, CONFIG, main_process=True, argv=[], environ=env)
    assert main["git"]["commit"] == git(repo, "rev-parse", "HEAD")
    job = prov.for_workflow(repo, CONFIG, main_process=False, argv=[], environ=env)
    assert job["git"]["commit"] == "stale"


def test_record_in_a_job_takes_the_runs_record(repo, tmp_path, monkeypatch):
    run = prov.build(CONFIG, repo, "kbatch")
    monkeypatch.setenv(prov.ENV_VAR, prov.encode(run))
    # A job without .git (kbatch sources archive): the commit still comes from the run.
    got = prov.record(CONFIG, repo_path=tmp_path)
    assert got["git"]["commit"] == run["git"]["commit"] and got["executor"] == "kbatch"
    # A different config is not this run's: rebuilt from git, not mislabelled.
    other = prov.record({**CONFIG, "stac_api": "http://y"}, repo_path=tmp_path)
    assert other["git"]["commit"] is None


def test_detect_executor(tmp_path):
    assert prov.detect_executor(["snakemake", "--cores", "2"], {}) == "local"
    assert prov.detect_executor(["snakemake", "--executor", "kbatch"], {}) == "kbatch"
    assert prov.detect_executor(["snakemake", "-e", "kbatch"], {}) == "kbatch"
    profile = tmp_path / "kbatch"
    profile.mkdir()
    (profile / "config.yaml").write_text("executor: kbatch\njobs: 4\n")
    assert prov.detect_executor(["snakemake", "--profile", str(profile)], {}) == "kbatch"
    assert prov.detect_executor(["snakemake"], {"SNAKEMAKE_PROFILE": str(profile)}) == "kbatch"
    assert prov.detect_executor(["snakemake"], {prov.EXECUTOR_ENV: "slurm"}) == "slurm"
    # Relative to where snakemake started (PWD), although it has chdir'ed to --directory since.
    argv = ["snakemake", "--directory", "elsewhere", "--profile", "kbatch"]
    assert prov.detect_executor(argv, {"PWD": str(tmp_path)}) == "kbatch"


@pytest.mark.parametrize(
    ("argv", "dry", "plan"),
    [
        (["snakemake", "-n"], True, True),
        (["snakemake", "-np", "--cores", "1"], True, True),
        (["snakemake", "--dry-run"], True, True),
        (["snakemake", "--dag", "-n"], True, False),
        (["snakemake", "--cores", "2"], False, False),
        (["snakemake", "--report", "r.html"], True, False),
    ],
)
def test_dry_run_and_plan_detection(argv, dry, plan):
    assert prov.is_dry_run(argv) is dry
    assert prov.is_plan_request(argv, {}) is plan


def test_remote_check_accepts_clean_pushed_commit(repo):
    state = prov.check_clean_for_remote(repo, allow=False)
    assert state["override"] is False and state["problems"] == []


def test_remote_check_refuses_dirty_tree_and_says_why(repo):
    (repo / "src" / "code.py").write_text("x = 2\n")
    with pytest.raises(prov.RemoteRunRefused) as err:
        prov.check_clean_for_remote(repo, allow=False)
    msg = str(err.value)
    assert "uncommitted changes (src/code.py)" in msg and "PCFLOW_ALLOW_DIRTY=1" in msg
    state = prov.check_clean_for_remote(repo, allow=True)
    assert state["override"] is True and state["dirty"] is True


def test_remote_check_refuses_unpushed_commit(repo):
    (repo / "src" / "code.py").write_text("x = 5\n")
    git(repo, "commit", "-q", "-am", "local only")
    with pytest.raises(prov.RemoteRunRefused, match="not on any remote branch"):
        prov.check_clean_for_remote(repo, allow=False)
    git(repo, "push", "-q", "origin", "HEAD:main")
    git(repo, "fetch", "-q", "origin")
    assert prov.check_clean_for_remote(repo, allow=False)["override"] is False


def test_remote_check_refuses_repo_without_remote(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("1")
    git(tmp_path, "add", "f")
    git(tmp_path, "commit", "-q", "-m", "x")
    with pytest.raises(prov.RemoteRunRefused, match="no remote"):
        prov.check_clean_for_remote(tmp_path, allow=False)


def test_allow_dirty_env():
    assert prov.allow_dirty({prov.ALLOW_DIRTY_ENV: "1"})
    assert not prov.allow_dirty({prov.ALLOW_DIRTY_ENV: "0"})
    assert not prov.allow_dirty({})


def test_from_output_reads_netcdf_and_manifest(repo, tmp_path):
    rec = prov.build(CONFIG, repo)
    nc = tmp_path / "r.nc"
    ds = xr.Dataset({"v": ("t", np.arange(3.0))}, attrs={"provenance": json.dumps(rec)})
    ds.to_netcdf(nc)
    assert prov.from_output(nc) == rec
    manifest = tmp_path / "staged.json"
    manifest.write_text(json.dumps({"url": "az://c/p.zarr", "provenance": rec}))
    assert prov.from_output(manifest)["git"]["commit"] == rec["git"]["commit"]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="no pcflow provenance"):
        prov.from_output(tmp_path / "bad.json")


def test_with_stac_sorts_ids():
    doc = {"item_ids": ["b", "a"], "item_updated": {"a": "1", "b": "2"}, "collection": "c"}
    stac = prov.with_stac({"x": 1}, doc)["stac"]
    assert stac["item_ids"] == ["a", "b"] and stac["collection"] == "c"


def test_png_stamp_roundtrip_keeps_pixels(repo, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = tmp_path / "f.png"
    fig.savefig(png, format="png")
    plt.close(fig)
    with Image.open(png) as img:
        before = np.asarray(img).copy()
    rec = prov.build(CONFIG, repo)
    prov.stamp_png(png, rec)
    prov.stamp_png(png, rec)  # idempotent: one provenance chunk, same bytes
    first = png.read_bytes()
    prov.stamp_png(png, rec)
    assert png.read_bytes() == first
    assert prov.from_output(png) == rec
    with Image.open(png) as img:
        assert np.array_equal(np.asarray(img), before)


def test_record_copies_of_the_config_are_secret_free():
    from pcflow.provenance import secret_free, with_stac

    cfg = {
        "stac_api": "https://x.example/stac?subscription-key=abcdef0123456789",
        "compute": {"gateway": {"password": "hunter2-but-longer"}},
        "datasets": {"token-maps": {"query": {"s2:token": {"eq": 1}}, "bbox": [0, 0, 1, 1]}},
    }
    safe = secret_free(cfg)
    text = json.dumps(safe)
    assert "abcdef0123456789" not in text and "hunter2" not in text
    assert safe["datasets"]["token-maps"]["query"] == {"s2:token": {"eq": 1}}
    rec = with_stac({}, {"stac_api": "https://x/stac?sv=1&sig=abcdefabcdef0123", "item_ids": []})
    assert "abcdefabcdef0123" not in rec["stac"]["stac_api"]
