"""A STAC Collection describing a staged Zarr store with MPC's asset conventions.

Readers use it exactly like an MPC collection:

    asset = collection.assets["zarr-abfs"]
    xr.open_zarr(asset.href, **asset.extra_fields["xarray:open_kwargs"],
                 storage_options=asset.extra_fields["xarray:storage_options"])

(plus their own credential, and `account_host` from storage.with_account_host in the sandbox).
Nothing secret and nothing machine-local goes in: storage options are filtered through
storage.public_storage_options.
"""

from __future__ import annotations

from typing import Any

from pcflow import storage

# Extensions whose fields the collection uses (validated offline against their schemas, vendored
# in tests/fixtures/stac-schemas). `msft:*` fields have no extension schema: MPC's own
# collections (tests/fixtures/mpc) declare none for them either; STAC allows such extra fields.
DATACUBE = "https://stac-extensions.github.io/datacube/v2.2.0/schema.json"
XARRAY_ASSETS = "https://stac-extensions.github.io/xarray-assets/v1.0.0/schema.json"


def grid_summary(ds: Any) -> dict[str, Any]:
    """What the collection needs of the staged grid: CRS (PROJJSON), x/y steps, auxiliary
    coordinates, and the lon/lat footprint of the staged cells (edges, not centres).

    Kept in staged.json beside (not inside) the data plan, so it never changes a fingerprint.
    """
    from pcflow.staging.plan import dataset_crs

    out: dict[str, Any] = {
        # Coordinates with dimensions (lat/lon) describe the grid: "auxiliary" in datacube
        # terms; the grid-mapping variable is "data", as in MPC's daymet collections.
        "auxiliary": sorted(str(n) for n, c in ds.coords.items() if n not in ds.indexes and c.dims),
    }
    crs = dataset_crs(ds)
    if crs is None or "x" not in ds.indexes or "y" not in ds.indexes:
        return out
    x, y = ds["x"].values.astype("float64"), ds["y"].values.astype("float64")
    step = {d: float(v[1] - v[0]) if v.size > 1 else None for d, v in (("x", x), ("y", y))}
    out["crs"] = crs.to_json_dict()
    out["step"] = step
    if x.size and y.size:
        half_x, half_y = abs(step["x"] or 0) / 2, abs(step["y"] or 0) / 2
        import pyproj

        to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        bounds = to_lonlat.transform_bounds(
            float(x.min()) - half_x,
            float(y.min()) - half_y,
            float(x.max()) + half_x,
            float(y.max()) + half_y,
            densify_pts=21,
        )
        out["footprint"] = [round(float(b), 7) for b in bounds]
    return out


def _dimensions(manifest: dict[str, Any]) -> dict[str, Any]:
    grid = manifest.get("grid") or {}
    dims: dict[str, Any] = {}
    for name, c in (manifest.get("coords") or {}).items():
        if name in ("x", "y") and "first" in c:
            dim: dict[str, Any] = {
                "type": "spatial",
                "axis": name,
                "extent": sorted([float(c["first"]), float(c["last"])]),
            }
            if (grid.get("step") or {}).get(name) is not None:
                dim["step"] = grid["step"][name]
            if grid.get("crs"):
                dim["reference_system"] = grid["crs"]
            dims[name] = dim
        elif name in ("time", "t") and "first" in c:
            dims[name] = {"type": "temporal", "extent": [_iso(c["first"]), _iso(c["last"])]}
        elif "size" in c:
            dims[name] = {"type": "count", "values": list(range(int(c["size"])))}
    # Dimensions without an index (e.g. a bounds variable's `nv`) still need an entry.
    for v in (manifest.get("variables") or {}).values():
        for d, n in zip(v["dims"], v["shape"], strict=True):
            if d not in dims:
                dims[d] = {"type": "count", "values": list(range(int(n)))}
    return dims


def _temporal(manifest: dict[str, Any]) -> list[list[str | None]]:
    for name in ("time", "t"):
        c = manifest.get("coords", {}).get(name)
        if c and c.get("first"):
            return [[_iso(c["first"]), _iso(c["last"])]]
    return [[None, None]]


def _iso(value: str) -> str:
    text = str(value).split(".")[0]
    return text + "Z" if "T" in text else text + "T00:00:00Z"


def stac_collection(manifest: dict[str, Any]) -> dict[str, Any]:
    """The collection as a dict (validated with pystac by the tests)."""
    dataset = manifest["dataset"]
    source = manifest.get("source", {})
    target = manifest.get("target", {})
    grid = manifest.get("grid") or {}
    # The footprint of the staged cells; the requested bbox only for manifests without one.
    bbox = grid.get("footprint") or manifest.get("bbox") or [-180.0, -90.0, 180.0, 90.0]
    storage_options = storage.public_storage_options(dict(manifest["xarray:storage_options"]))
    auxiliary = set(grid.get("auxiliary") or [])
    variables = {}
    for name, v in manifest.get("variables", {}).items():
        variables[name] = {
            "dimensions": v["dims"],
            "type": "auxiliary" if name in auxiliary else "data",
            "shape": v["shape"],
            "chunks": v["chunks"],
            "attrs": v.get("attrs", {}),
            **({"unit": v["attrs"]["units"]} if "units" in v.get("attrs", {}) else {}),
        }
    collection = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": f"pcflow-{dataset}",
        "title": f"{dataset} (staged by pcflow)",
        "description": (
            f"Subset of {source.get('collection')} staged by pcflow into "
            f"{target.get('account_name')}/{target.get('container')} as Zarr v2 with consolidated "
            "metadata."
        ),
        "license": "proprietary",
        "links": [],
        "stac_extensions": [DATACUBE, XARRAY_ASSETS],
        "extent": {
            "spatial": {"bbox": [list(map(float, bbox))]},
            "temporal": {"interval": _temporal(manifest)},
        },
        "providers": [{"name": "pcflow", "roles": ["processor"]}],
        "assets": {
            "zarr-abfs": {
                "href": manifest["href"],
                "type": "application/vnd+zarr",
                "title": f"{dataset} Zarr root (Azure Blob File System)",
                "roles": ["data", "zarr", "abfs"],
                "xarray:open_kwargs": dict(
                    manifest.get("xarray:open_kwargs", {"consolidated": True})
                ),
                "xarray:storage_options": storage_options,
            }
        },
        "msft:region": target.get("region"),
        "msft:storage_account": target.get("account_name"),
        "msft:container": target.get("container"),
        "cube:dimensions": _dimensions(manifest),
        "cube:variables": variables,
        "pcflow:checksum": manifest.get("checksum"),
        "pcflow:chunking": manifest.get("chunking"),
        "pcflow:provenance": manifest.get("provenance", {}),
        "pcflow:source": source,
    }
    return collection
