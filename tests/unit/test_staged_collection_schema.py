"""collection.json of a staged store: valid for every extension it uses (schemas vendored,
validated offline), `cube:*` like MPC's own daymet collection, extent = staged footprint."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from pcflow.sandbox import demo_data
from pcflow.staging import stac_collection
from pcflow.staging.stac_collection import DATACUBE, XARRAY_ASSETS, grid_summary
from tests.stac_schemas import validate

MPC_DAYMET = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "mpc" / "daymet-daily-hi.collection.json").read_text()
)


def _staged_subset():
    ds = demo_data.daymet_dataset()
    return ds.isel(time=slice(0, 400), y=slice(10, 30), x=slice(5, 25))


def _manifest(sub):
    variables = {
        n: {
            "dims": list(sub[n].dims),
            "shape": list(sub[n].shape),
            "chunks": list(sub[n].shape),
            "dtype": sub[n].dtype.str,
            "attrs": {k: v for k, v in sub[n].attrs.items() if isinstance(v, str)},
        }
        for n in ["tmax", "prcp", "yearday", "lambert_conformal_conic", "lat", "lon"]
    }
    coords = {
        "time": {"first": str(sub.time.values[0]), "last": str(sub.time.values[-1]),
                 "size": sub.sizes["time"]},
        "x": {"first": float(sub.x[0]), "last": float(sub.x[-1]), "size": sub.sizes["x"]},
        "y": {"first": float(sub.y[0]), "last": float(sub.y[-1]), "size": sub.sizes["y"]},
    }  # fmt: skip
    return {
        "dataset": "daymet-hi",
        "href": "abfs://pcflow/demo/daymet-hi.zarr",
        "url": "az://pcflow/demo/daymet-hi.zarr",
        "target": {"account_name": "acct", "container": "pcflow", "region": "westeurope"},
        "xarray:open_kwargs": {"consolidated": True},
        "xarray:storage_options": {"account_name": "acct"},
        "bbox": [-155.6, 19.5, -155.4, 19.7],
        "coords": coords,
        "grid": grid_summary(sub),
        "variables": variables,
        "source": {"collection": "daymet-daily-hi"},
        "checksum": "f" * 64,
    }


def test_collection_declares_and_validates_every_extension_offline():
    doc = stac_collection(_manifest(_staged_subset()))
    assert DATACUBE in doc["stac_extensions"] and XARRAY_ASSETS in doc["stac_extensions"]
    used = validate(doc)
    assert len(used) == 3  # core + datacube + xarray-assets
    assert doc["cube:dimensions"]["x"]["reference_system"]["type"] == "ProjectedCRS"


def test_the_validator_can_fail():
    doc = stac_collection(_manifest(_staged_subset()))
    del doc["cube:dimensions"]  # what the old collection.json lacked while declaring cube:*
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)
    doc = stac_collection(_manifest(_staged_subset()))
    doc["cube:dimensions"]["x"]["axis"] = "lon"
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)
    # (datacube v2.2.0's schema names the variable type `variable_type`, so it cannot catch a
    # wrong `type`: test_variable_types_match_mpcs_own_daymet_collection does.)


def test_variable_types_match_mpcs_own_daymet_collection():
    doc = stac_collection(_manifest(_staged_subset()))
    for name, var in doc["cube:variables"].items():
        assert var["type"] == MPC_DAYMET["cube:variables"][name]["type"], name
    assert doc["cube:variables"]["lat"]["type"] == "auxiliary"
    assert doc["cube:variables"]["lambert_conformal_conic"]["type"] == "data"


def test_dimensions_are_the_staged_grid():
    sub = _staged_subset()
    dims = stac_collection(_manifest(sub))["cube:dimensions"]
    assert dims["x"]["extent"] == [float(sub.x.min()), float(sub.x.max())]
    assert dims["y"]["extent"] == [float(sub.y.min()), float(sub.y.max())]
    assert dims["x"]["step"] == pytest.approx(1000.0) and dims["y"]["step"] == pytest.approx(
        -1000.0
    )
    assert dims["time"]["extent"][0].startswith(str(sub.time.values[0])[:10])
    # Same shape as MPC's daymet dimensions (type/axis/step sign/PROJJSON CRS type).
    for d in ("x", "y"):
        mpc = MPC_DAYMET["cube:dimensions"][d]
        assert (dims[d]["type"], dims[d]["axis"]) == (mpc["type"], mpc["axis"])
        assert np.sign(dims[d]["step"]) == np.sign(mpc["step"])
        assert dims[d]["reference_system"]["type"] == mpc["reference_system"]["type"]


def test_spatial_extent_is_the_staged_footprint_not_the_request():
    sub = _staged_subset()
    doc = stac_collection(_manifest(sub))
    west, south, east, north = doc["extent"]["spatial"]["bbox"][0]
    assert [west, south, east, north] != [-155.6, 19.5, -155.4, 19.7]
    # Independent: the cell centres' own lat/lon lie inside, within half a 1 km cell of the edge.
    lon, lat = sub.lon.values, sub.lat.values
    assert west < lon.min() and east > lon.max() and south < lat.min() and north > lat.max()
    half_cell_deg = 0.5 * 1000 / 111_000 * 1.6  # generous: x/y are rotated vs lon/lat
    assert lon.min() - west < half_cell_deg * 1.5 and east - lon.max() < half_cell_deg * 1.5
    assert lat.min() - south < half_cell_deg * 1.5 and north - lat.max() < half_cell_deg * 1.5
