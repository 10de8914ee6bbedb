"""Verdict logic of `pcflow reproduce`: each kind of change is named; identical means identical."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import xarray as xr

from pcflow import provenance as prov
from pcflow import reproduce as rp

CONFIG = {
    "stac_api": "http://x",
    "target": {"account_name": "abc", "container": "c1", "prefix": "demo"},
    "datasets": {"d": {"bbox": [1, 2, 3, 4], "reductions": ["spatial_mean"]}},
}


def record(**changes):
    rec = {
        "schema": prov.SCHEMA,
        "git": {"commit": "a" * 40, "dirty": False, "diff_sha256": None, "remote": "/r"},
        "config": json.loads(json.dumps(CONFIG)),
        "config_sha256": prov.config_hash(CONFIG),
        "environment": {"lock_sha256": "l1", "packages": {"numpy": "2.0"}},
        "executor": "local",
        "stac": {
            "collection": "c",
            "collection_updated": "2024-01-01",
            "item_ids": ["i1", "i2", "i3"],
            "item_updated": {"i1": "t1", "i2": "t2", "i3": "t3"},
        },
    }
    for key, value in changes.items():
        rec[key] = value
    return rec


def test_identical_records_have_no_differences():
    assert rp.record_diff(record(), record()) == []


def test_config_change_is_named_with_old_and_new_value():
    cfg = json.loads(json.dumps(CONFIG))
    cfg["datasets"]["d"]["bbox"] = [1, 2, 3, 5]
    lines = rp.record_diff(record(), record(config=cfg))
    assert lines == ["config changed: datasets.d.bbox: [1, 2, 3, 4] -> [1, 2, 3, 5]"]


def test_moved_target_prefix_is_not_a_config_change():
    cfg = json.loads(json.dumps(CONFIG))
    cfg["target"]["prefix"] = "demo/reproduce-abc"
    cfg["results"] = "elsewhere"
    assert rp.record_diff(record(), record(config=cfg)) == []


def test_code_commit_change_is_named():
    git = {"commit": "b" * 40, "dirty": False, "diff_sha256": None}
    (line,) = rp.record_diff(record(), record(git=git))
    assert line.startswith("code commit differs:") and "a" * 40 in line and "b" * 40 in line


def test_uncommitted_changes_are_a_code_difference():
    git = {"commit": "a" * 40, "dirty": True, "diff_sha256": "d" * 64}
    (line,) = rp.record_diff(record(git=git), record())
    assert line.startswith("code commit differs:") and "uncommitted" in line


def test_upstream_items_added_removed_updated():
    new_stac = {
        "collection": "c",
        "collection_updated": "2024-01-01",
        "item_ids": ["i2", "i3", "i4"],
        "item_updated": {"i2": "t2", "i3": "t3-new", "i4": "t4"},
    }
    (line,) = rp.record_diff(record(), record(stac=new_stac))
    assert line == "upstream STAC items changed since: added i4; removed i1; updated i3"


def test_collection_update_is_upstream_change():
    stac = {**record()["stac"], "collection_updated": "2025-02-02"}
    (line,) = rp.record_diff(record(), record(stac=stac))
    assert "2024-01-01 -> 2025-02-02" in line


def test_environment_change_is_named():
    env = {"lock_sha256": "l2", "packages": {"numpy": "2.1"}}
    lines = rp.record_diff(record(), record(environment=env))
    assert any("lock sha256" in x for x in lines) and any("numpy 2.0 -> 2.1" in x for x in lines)


@pytest.fixture
def nc_pair(tmp_path):
    data = np.linspace(0, 1, 10, dtype="float32")
    base = xr.Dataset({"tmin": ("time", data)}, coords={"time": np.arange(10)})
    a, b = tmp_path / "a" / "spatial_mean.nc", tmp_path / "b" / "spatial_mean.nc"
    a.parent.mkdir()
    b.parent.mkdir()
    base.to_netcdf(a)
    return base, a, b


def test_netcdf_identical(nc_pair):
    base, a, b = nc_pair
    base.to_netcdf(b)
    assert rp.compare_netcdf(a, b, 0, 0) == []
    assert rp.netcdf_digests(a) == rp.netcdf_digests(b)


def test_netcdf_tolerance(nc_pair):
    base, a, b = nc_pair
    changed = base.copy(deep=True)
    changed["tmin"].values[3] += np.float32(1e-6)
    changed.to_netcdf(b)
    (line,) = rp.compare_netcdf(a, b, 0, 0)
    assert "tmin values differ" in line and "max abs diff" in line
    assert rp.compare_netcdf(a, b, 0, 1e-5) == []
    assert rp.netcdf_digests(a)["tmin"]["sha256"] != rp.netcdf_digests(b)["tmin"]["sha256"]


def test_netcdf_missing_variable(nc_pair):
    base, a, b = nc_pair
    base.assign(tmax=base["tmin"] + 1).to_netcdf(b)
    (line,) = rp.compare_netcdf(a, b, 0, 0)
    assert "tmax missing from the recorded result" in line


@pytest.mark.parametrize(
    ("key", "array"),
    [("tmin/c/0/0/0", "tmin"), ("tmin/0.0.0", "tmin"), ("g/tmin/c/1/2", "g/tmin"), ("x/0", "x")],
)
def test_chunk_keys_map_to_arrays(key, array):
    assert rp._array_of(key) == array
    assert rp.is_chunk_key(key)


@pytest.mark.parametrize(
    "key", ["zarr.json", "tmin/zarr.json", ".zmetadata", "tmin/.zarray", ".pcflow/complete.json"]
)
def test_metadata_and_state_are_not_chunks(key):
    assert not rp.is_chunk_key(key)


def test_reproduce_config_moves_the_target_prefix():
    cfg = rp.reproduce_config(record(), "c" * 40, same_target=False)
    assert cfg["target"]["prefix"] == "demo/reproduce-cccccccccccc"
    assert cfg["datasets"] == CONFIG["datasets"]
    assert rp.reproduce_config(record(), "c" * 40, same_target=True)["target"]["prefix"] == "demo"


def test_load_recorded_from_netcdf_and_manifest(tmp_path, nc_pair):
    base, a, _ = nc_pair
    rec = record()
    nc = tmp_path / "results" / "d" / "spatial_mean.nc"
    nc.parent.mkdir(parents=True)
    base.assign_attrs(provenance=json.dumps(rec)).to_netcdf(nc)
    got = rp.load_recorded(nc)
    assert got["kind"] == "netcdf" and got["netcdf"] == {"d/spatial_mean": nc.resolve()}
    assert got["datasets"]["d"]["stac"]["item_ids"] == ["i1", "i2", "i3"]
    manifest = nc.parent / "staged.json"
    manifest.write_text(json.dumps({"url": "az://c1/demo/d.zarr", "provenance": rec}))
    got = rp.load_recorded(manifest)
    assert (
        got["kind"] == "manifest" and got["datasets"]["d"]["zarr"]["url"] == "az://c1/demo/d.zarr"
    )
    with pytest.raises(rp.ReproduceError, match="no such file"):
        rp.load_recorded(tmp_path / "missing.json")


def test_environment_reused_when_lock_and_versions_match(tmp_path):
    clone = tmp_path / "clone"
    (clone / "envs").mkdir(parents=True)
    lock = (prov.PACKAGE_REPO / prov.LOCK_FILE).read_bytes()
    (clone / prov.LOCK_FILE).write_bytes(lock)
    rec = {"environment": prov.environment(prov.PACKAGE_REPO)}
    _, line = rp.choose_environment(rec, clone, "auto")
    assert line.startswith("environment: reusing") and "matches" in line


def test_run_without_remote_or_commit_says_what_to_pass(tmp_path, nc_pair):
    base, _, _ = nc_pair
    rec = record(git={"commit": "a" * 40, "dirty": False, "remote": None})
    nc = tmp_path / "x" / "spatial_mean.nc"
    nc.parent.mkdir()
    base.assign_attrs(provenance=json.dumps(rec)).to_netcdf(nc)
    parser = __import__("argparse").ArgumentParser()
    rp.add_arguments(parser)
    args = parser.parse_args([str(nc), "--workdir", str(tmp_path / "w")])
    with pytest.raises(rp.ReproduceError, match="pass --repo"):
        rp.run(args)


def _results(root, rec, values, item_ids):
    (root / "d").mkdir(parents=True)
    ds = xr.Dataset({"tmin": ("time", np.asarray(values, dtype="float32"))})
    ds.attrs["provenance"] = json.dumps(rec)
    ds.to_netcdf(root / "d" / "spatial_mean.nc")
    items = {"collection": "c", "item_ids": item_ids, "item_updated": dict.fromkeys(item_ids, "t")}
    (root / "d" / "items.json").write_text(json.dumps(items))
    return root


def test_compare_run_record_without_storage(tmp_path):
    """A run record vs a re-run's results folder: values, items and records all checked."""
    rec = record()
    old = _results(tmp_path / "old" / "results", rec, [1, 2, 3], ["i1", "i2"])
    doc = rp.write_run_record(CONFIG, rec, old, old / "provenance.json")
    assert doc["datasets"]["d"]["results"]["spatial_mean"]["tmin"]["shape"] == [3]
    recorded = rp.load_recorded(old / "provenance.json")
    assert recorded["kind"] == "run" and "d/spatial_mean" in recorded["netcdf"]

    same = _results(tmp_path / "same" / "results", rec, [1, 2, 3], ["i1", "i2"])
    assert rp.compare(recorded, same, CONFIG, 0, 0) == []

    other = _results(tmp_path / "other" / "results", rec, [1, 2, 4], ["i2", "i3"])
    diffs = rp.compare(recorded, other, CONFIG, 0, 0)
    assert any("spatial_mean.nc: tmin values differ" in d for d in diffs), diffs
    assert any(
        d.startswith("upstream STAC items changed since (d): added i3; removed i1") for d in diffs
    )
    assert rp.compare(recorded, other, CONFIG, 0, 1.5) == [d for d in diffs if "values" not in d]


def test_rerun_targets_are_the_recorded_file_or_everything():
    nc = {"kind": "netcdf", "netcdf": {"daymet-hi/spatial_mean": "x.nc"}, "datasets": {}}
    assert rp.rerun_targets(nc, "results") == ["results/daymet-hi/spatial_mean.nc"]
    manifest = {"kind": "manifest", "netcdf": {}, "datasets": {"daymet-hi": {}}}
    assert rp.rerun_targets(manifest, "out") == ["out/daymet-hi/staged.json"]
    run = {"kind": "run", "netcdf": {}, "datasets": {"a": {}, "b": {}}}
    assert rp.rerun_targets(run, "results") == []  # the default target: the whole workflow


# -- the result file is not trusted (issue 12 hole 11) ---------------------------------------


def _untrusted(tmp_path, nc_pair):
    base, _, _ = nc_pair
    rec = record(
        git={"commit": "b" * 40, "dirty": False, "remote": "https://evil.example/pcflow.git"}
    )
    nc = tmp_path / "x" / "spatial_mean.nc"
    nc.parent.mkdir()
    base.assign_attrs(provenance=json.dumps(rec)).to_netcdf(nc)
    return nc


def _args(*argv):
    parser = __import__("argparse").ArgumentParser()
    rp.add_arguments(parser)
    return parser.parse_args(list(argv))


class _Cloned(Exception):
    pass


@pytest.fixture
def no_clone(monkeypatch):
    calls = []

    def fake_clone(url, rev, dest):
        calls.append((url, rev))
        raise _Cloned(url)

    monkeypatch.setattr(rp, "clone", fake_clone)
    return calls


class _Stdin:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


def test_reproduce_refuses_the_files_remote_without_yes(tmp_path, nc_pair, no_clone, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", _Stdin(False))
    out = io.StringIO()
    nc = _untrusted(tmp_path, nc_pair)
    with pytest.raises(rp.ReproduceError, match="pass --yes, or --repo"):
        rp.run(_args(str(nc), "--workdir", str(tmp_path / "w")), out=out)
    shown = out.getvalue()
    assert "will clone: https://evil.example/pcflow.git (named by the result file)" in shown
    assert "b" * 40 in shown and "snakemake -s" in shown and "make install" in shown
    assert no_clone == [] and not (tmp_path / "w" / "repo").exists()


@pytest.mark.parametrize("extra", [["--yes"], ["--repo", "/some/checkout"]])
def test_reproduce_goes_on_with_yes_or_a_chosen_repo(tmp_path, nc_pair, no_clone, extra):
    nc = _untrusted(tmp_path, nc_pair)
    with pytest.raises(_Cloned):
        rp.run(_args(str(nc), "--workdir", str(tmp_path / "w"), *extra), out=sys.stderr)
    assert no_clone and no_clone[0][1] == "b" * 40


@pytest.mark.parametrize(("answer", "cloned"), [("y", True), ("n", False), ("", False)])
def test_reproduce_asks_on_a_terminal(tmp_path, nc_pair, no_clone, monkeypatch, answer, cloned):
    monkeypatch.setattr(sys, "stdin", _Stdin(True))
    monkeypatch.setattr("builtins.input", lambda prompt: answer)
    nc = _untrusted(tmp_path, nc_pair)
    expected = _Cloned if cloned else rp.ReproduceError
    with pytest.raises(expected):
        rp.run(_args(str(nc), "--workdir", str(tmp_path / "w")), out=sys.stderr)
    assert bool(no_clone) == cloned


def test_python_m_pcflow_reproduce_runs_the_command(tmp_path):
    # reproduce is a package: `python -m` needs its __main__ module to reach main().
    import subprocess

    missing = tmp_path / "missing.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pcflow.reproduce", str(missing)], capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    assert f"pcflow reproduce: error: {missing}: no such file" in proc.stderr
