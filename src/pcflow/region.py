"""The region a dataset's reductions mean: a lon/lat bbox or a GeoJSON geometry, and its mask.

Staging keeps a rectangular window of the native grid (on a rotated grid such as Daymet's
Lambert conformal conic at Hawaii that window holds about twice the bbox's area). Reductions
must average only the cells the user asked for: `mask(ds, region)` marks the cells whose
CENTRES lie in the region, from the dataset's 2-D lat/lon when it has them, else from its
x/y cell centres transformed with the grid's CRS, else from lat/lon dimensions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

MASK_NAME = "region_mask"


class RegionError(ValueError):
    """A region that cannot be read or used; str() is one line naming the field and the fix."""

    def __init__(self, field: str, problem: str, fix: str) -> None:
        super().__init__(f"{field}: {problem} — {fix}")
        self.field, self.problem, self.fix = field, problem, fix


@dataclass(frozen=True)
class Region:
    """A lon/lat (WGS84) geometry and how the user gave it (for titles and attrs)."""

    geometry: Any  # shapely geometry in lon/lat degrees
    label: str  # "bbox [w, s, e, n]" or "region <file>"

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return tuple(float(v) for v in self.geometry.bounds)  # type: ignore[return-value]


def from_bbox(bbox: list[float]) -> Region:
    import shapely

    west, south, east, north = (float(v) for v in bbox)
    return Region(shapely.box(west, south, east, north), f"bbox {[west, south, east, north]}")


def read_geojson(path: str | Path, field: str = "region") -> Any:
    """The union of every Polygon/MultiPolygon in a GeoJSON file (geometry, Feature or
    FeatureCollection), in lon/lat degrees."""
    import shapely
    from shapely.geometry import shape

    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise RegionError(
            field,
            f"{path} does not exist",
            "give the path of a GeoJSON file (relative to the directory Snakemake runs in)",
        ) from None
    except (OSError, ValueError) as err:
        raise RegionError(
            field, f"{path} is not readable GeoJSON ({err})", "write it as GeoJSON"
        ) from None
    if doc.get("type") == "FeatureCollection":
        geoms = [f.get("geometry") for f in doc.get("features") or []]
    elif doc.get("type") == "Feature":
        geoms = [doc.get("geometry")]
    else:
        geoms = [doc]
    polygons = []
    for g in geoms:
        if not g or g.get("type") not in ("Polygon", "MultiPolygon"):
            kind = (g or {}).get("type")
            raise RegionError(
                field, f"{path} holds a {kind} geometry", "use Polygon or MultiPolygon features"
            )
        polygons.append(shape(g))
    if not polygons:
        raise RegionError(field, f"{path} has no features", "add a Polygon feature")
    geometry = shapely.union_all(polygons)
    west, south, east, north = geometry.bounds
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise RegionError(
            field,
            f"{path} is not in lon/lat degrees (bounds {geometry.bounds})",
            "GeoJSON coordinates are WGS84 longitude, latitude",
        )
    return geometry


def from_config(dataset: dict[str, Any], name: str = "dataset") -> Region:
    """The dataset's region: `region` (a GeoJSON file) when given, else its `bbox`. A region
    must lie inside the bbox: staging reads the bbox's window, nothing outside it."""
    if not dataset.get("region"):
        return from_bbox(dataset["bbox"])
    field = f"datasets.{name}.region"
    path = str(dataset["region"])
    geometry = read_geojson(path, field)
    w, s, e, n = geometry.bounds
    bw, bs, be, bn = dataset["bbox"]
    if w < bw or s < bs or e > be or n > bn:
        raise RegionError(
            field,
            f"{path} reaches beyond the dataset's bbox {list(dataset['bbox'])}",
            f"widen bbox to cover the region's bounds [{w:.4f}, {s:.4f}, {e:.4f}, {n:.4f}]",
        )
    return Region(geometry, f"region {Path(path).name}")


def cell_centres_lonlat(
    ds: xr.Dataset, ydim: str, xdim: str, crs: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) of every cell centre as (y, x) arrays. `crs`: the grid's CRS when the data
    carry neither 2-D lat/lon nor a grid mapping (e.g. a COG cube's configured `crs`)."""
    if "lat" in ds.coords and "lon" in ds.coords and ds["lat"].ndim == 2:
        lat = ds["lat"].transpose(ydim, xdim).values
        lon = ds["lon"].transpose(ydim, xdim).values
        return np.asarray(lon, "float64"), np.asarray(lat, "float64")
    x, y = ds[xdim].values.astype("float64"), ds[ydim].values.astype("float64")
    xx, yy = np.meshgrid(x, y)
    if (ydim, xdim) in (("lat", "lon"), ("latitude", "longitude")):
        return xx, yy
    from pcflow.staging.plan import dataset_crs

    crs = dataset_crs(ds) or crs
    if crs is None:
        raise RegionError(
            "region",
            f"cannot place the region on this grid: dims ({ydim}, {xdim}) have no 2-D lat/lon "
            "and no CF grid mapping",
            "stage a dataset with either",
        )
    import pyproj

    to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(xx, yy)
    return np.asarray(lon), np.asarray(lat)


def mask(ds: xr.Dataset, region: Region, ydim: str, xdim: str, crs: Any = None) -> xr.DataArray:
    """(y, x) bool DataArray: True where the cell centre lies in the region (edges included)."""
    import shapely

    lon, lat = cell_centres_lonlat(ds, ydim, xdim, crs)
    inside = shapely.intersects_xy(region.geometry, lon, lat)
    da = xr.DataArray(
        inside,
        dims=(ydim, xdim),
        coords={ydim: ds[ydim].values, xdim: ds[xdim].values},
        name=MASK_NAME,
        attrs={
            "long_name": f"cells whose centre lies in the {region.label}",
            "flag_values": [0, 1],
            "flag_meanings": "outside inside",
            "region": region.label,
        },
    )
    for dim in (ydim, xdim):
        da[dim].attrs = dict(ds[dim].attrs)
    return da
