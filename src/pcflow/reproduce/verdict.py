"""Comparing a re-run with the record: the verdict lines naming what differs (config, code,
environment, upstream STAC items, Zarr chunks, NetCDF values)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pcflow import provenance
from pcflow.reproduce.record import dataset_results, zarr_digests

# Config keys that say where outputs go, not what they hold; reproduce moves them.
IGNORED_CONFIG = ("target.prefix", "results")


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
