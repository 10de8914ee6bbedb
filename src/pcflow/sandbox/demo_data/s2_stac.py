"""STAC JSON for the demo Sentinel-2 scenes: items and the collection, shaped like MPC's
`sentinel-2-l2a` (tests/fixtures/mpc), with hrefs on the sandbox's Azurite."""

from __future__ import annotations

from typing import Any

import numpy as np

from pcflow.sandbox.demo_data.s2_scenes import (
    S2_ACCOUNT,
    S2_COLLECTION,
    S2_CONTAINER,
    S2_EPSG,
    S2_MGRS,
    S2_SIZE_10M,
    S2_X0,
    S2_Y0,
    SCL_CIRRUS,
    SCL_CLOUD_HIGH,
    SCL_CLOUD_MEDIUM,
    SCL_NODATA,
    SCL_NOT_VEGETATED,
    SCL_SHADOW,
    SCL_VEGETATION,
    SCL_WATER,
    S2Scene,
    s2_transform,
)

S2_BANDS: dict[str, dict[str, Any]] = {
    "B04": {
        "title": "Band 4 - Red - 10m",
        "gsd": 10.0,
        "eo:bands": [
            {
                "name": "B04",
                "common_name": "red",
                "description": "Band 4 - Red",
                "center_wavelength": 0.665,
                "full_width_half_max": 0.038,
            }
        ],
    },
    "B08": {
        "title": "Band 8 - NIR - 10m",
        "gsd": 10.0,
        "eo:bands": [
            {
                "name": "B08",
                "common_name": "nir",
                "description": "Band 8 - NIR",
                "center_wavelength": 0.842,
                "full_width_half_max": 0.145,
            }
        ],
    },
    "SCL": {"title": "Scene classfication map (SCL)", "gsd": 20.0},
}


def _footprint() -> tuple[list[float], dict[str, Any]]:
    import pyproj

    to_lonlat = pyproj.Transformer.from_crs(S2_EPSG, 4326, always_xy=True)
    size = S2_SIZE_10M * 10.0
    corners = [
        (S2_X0, S2_Y0),
        (S2_X0, S2_Y0 - size),
        (S2_X0 + size, S2_Y0 - size),
        (S2_X0 + size, S2_Y0),
        (S2_X0, S2_Y0),
    ]
    ring = [[round(v, 7) for v in to_lonlat.transform(x, y)] for x, y in corners]
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    return [min(lons), min(lats), max(lons), max(lats)], {"type": "Polygon", "coordinates": [ring]}


def _percent(mask: np.ndarray, valid: np.ndarray) -> float:
    return round(100.0 * float((mask & valid).sum()) / max(int(valid.sum()), 1), 6)


def _raster_bands(band: str) -> list[dict[str, Any]]:
    # What the COGs hold (write_cog): uint16 reflectance x10000 / uint8 SCL, nodata 0.
    dtype = "uint8" if band == "SCL" else "uint16"
    return [{"nodata": 0, "data_type": dtype, "spatial_resolution": S2_BANDS[band]["gsd"]}]


def s2_item(scene: S2Scene, blob_url: str) -> dict[str, Any]:
    """A STAC item shaped like MPC's sentinel-2-l2a items (tests/fixtures/mpc; hrefs absolute,
    on the sandbox's Azurite): `proj:epsg`, projection v1.0.0; `raster:bands` only on the
    scenes with `has_raster_bands` (real MPC S2 items carry none)."""
    bbox, geometry = _footprint()
    scl = scene.arrays["SCL"]
    valid = scl != SCL_NODATA
    cloud = np.isin(scl, [SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS])
    size = S2_SIZE_10M * 10.0
    assets: dict[str, Any] = {}
    for band, meta in S2_BANDS.items():
        shape = list(scene.arrays[band].shape)
        assets[band] = {
            "href": f"{blob_url}/{S2_ACCOUNT}/{S2_CONTAINER}/{scene.blob_path(band)}",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "proj:bbox": [S2_X0, S2_Y0 - size, S2_X0 + size, S2_Y0],
            "proj:shape": shape,
            "proj:transform": s2_transform(band),
            **({"raster:bands": _raster_bands(band)} if scene.has_raster_bands else {}),
            **meta,
        }
    stamp = scene.datetime.strftime("%Y%m%dT%H%M%S")
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
            *(
                ["https://stac-extensions.github.io/raster/v1.1.0/schema.json"]
                if scene.has_raster_bands
                else []
            ),
        ],
        "id": scene.id,
        "collection": S2_COLLECTION,
        "bbox": bbox,
        "geometry": geometry,
        "links": [],
        "properties": {
            "datetime": scene.datetime.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "platform": scene.platform,
            "constellation": "Sentinel 2",
            "instruments": ["msi"],
            "proj:epsg": S2_EPSG,
            "eo:cloud_cover": _percent(cloud, valid),
            "s2:mgrs_tile": S2_MGRS,
            "s2:product_type": "S2MSI2A",
            "s2:processing_baseline": "02.12",
            "s2:product_uri": f"{scene.id}.SAFE",
            "s2:granule_id": f"L2A_T{S2_MGRS}_{stamp}",
            "s2:nodata_pixel_percentage": round(100.0 * float((~valid).mean()), 6),
            "s2:high_proba_clouds_percentage": _percent(scl == SCL_CLOUD_HIGH, valid),
            "s2:medium_proba_clouds_percentage": _percent(scl == SCL_CLOUD_MEDIUM, valid),
            "s2:thin_cirrus_percentage": _percent(scl == SCL_CIRRUS, valid),
            "s2:cloud_shadow_percentage": _percent(scl == SCL_SHADOW, valid),
            "s2:vegetation_percentage": _percent(scl == SCL_VEGETATION, valid),
            "s2:not_vegetated_percentage": _percent(scl == SCL_NOT_VEGETATED, valid),
            "s2:water_percentage": _percent(scl == SCL_WATER, valid),
            "sat:orbit_state": "descending",
            "sat:relative_orbit": 57,
        },
        "assets": assets,
    }


def s2_collection() -> dict[str, Any]:
    """STAC collection like MPC's `sentinel-2-l2a` (global extent, westeurope storage)."""
    return {
        "type": "Collection",
        "id": S2_COLLECTION,
        "stac_version": "1.0.0",
        "title": "Sentinel-2 Level-2A (pcflow sandbox demo)",
        "description": (
            "SYNTHETIC stand-in for MPC's Sentinel-2 Level-2A collection, made by "
            "pcflow.sandbox.demo_data: six small COG scenes near Hilo, Hawaii (June-August 2020)."
        ),
        "links": [],
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
            "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "license": "proprietary",
        "keywords": [
            "Sentinel",
            "Copernicus",
            "ESA",
            "Satellite",
            "Global",
            "Imagery",
            "Reflectance",
        ],
        "providers": [{"name": "pcflow sandbox", "roles": ["host", "processor"]}],
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [["2015-06-27T10:25:31Z", None]]},
        },
        "summaries": {
            "platform": ["Sentinel-2A", "Sentinel-2B"],
            "constellation": ["Sentinel 2"],
            "instruments": ["msi"],
            "gsd": [10, 20, 60],
            "eo:bands": [S2_BANDS["B04"]["eo:bands"][0], S2_BANDS["B08"]["eo:bands"][0]],
        },
        # Unlike MPC's sentinel-2-l2a (whose item_assets carry no raster:bands; its real JSON is
        # tests/fixtures/mpc/sentinel-2-l2a.collection.json), the demo declares band types here,
        # as MPC's landsat-c2-l2 does, so the demo's items without raster:bands can be staged.
        "item_assets": {
            band: {
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                **meta,
                "raster:bands": _raster_bands(band),
            }
            for band, meta in S2_BANDS.items()
        },
        "msft:container": S2_CONTAINER,
        "msft:storage_account": S2_ACCOUNT,
        "msft:short_description": "Sentinel-2 L2A surface reflectance (demo)",
        "msft:region": "westeurope",
    }
