"""How the demo Daymet is published: a Zarr v2 store encoded as MPC's (chunks, fill value,
consolidated metadata) and its STAC collection, MPC's own JSON with sandbox hrefs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pcflow.paths import REPO_ROOT
from pcflow.sandbox.demo_data.daymet import (
    DAYMET_CHUNKS,
    DAYMET_NX,
    DAYMET_NY,
    DAYMET_YEARS,
    VARIABLE_ATTRS,
    daymet_dataset,
    daymet_time,
)

DAYMET_ACCOUNT = "daymeteuwest"
DAYMET_CONTAINER = "daymet-zarr"
DAYMET_PATH = "daily/hi.zarr"
DAYMET_COLLECTION = "daymet-daily-hi"
DAYMET_FILL = np.float32(-9999.0)
DAYMET_ZARR_FORMAT = 2  # MPC's Daymet stores are Zarr v2 with consolidated metadata
# MPC's collection JSON (planetary-computer-tasks), the template of the demo catalog entry.
MPC_DAYMET_TEMPLATE = REPO_ROOT / "tests/fixtures/mpc/daymet-daily-hi.collection-template.json"
# Present in MPC's store, absent from the demo store: left out of the demo's cube:variables.
MPC_ONLY_VARIABLES = ("vp", "swe", "dayl", "srad", "time_bnds")


def daymet_compressor() -> Any:
    """The codec of MPC's Daymet chunks: Blosc lz4, level 5, byte shuffle."""
    import numcodecs

    return numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)


def daymet_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """MPC's chunks (one year x the whole grid), Daymet's -9999 fill value."""
    compressor = daymet_compressor()
    enc: dict[str, dict[str, Any]] = {
        name: {
            "chunks": DAYMET_CHUNKS,
            "compressors": (compressor,),
            "_FillValue": DAYMET_FILL,
        }
        for name in VARIABLE_ATTRS
        if name in ds
    }
    enc["yearday"] = {"chunks": (365,), "compressors": (compressor,)}
    enc["time"] = {
        "chunks": (365,),
        "units": "days since 1950-01-01 00:00:00",
        "calendar": "standard",
        "dtype": "float64",
    }
    for name in ("lat", "lon"):
        enc[name] = {"chunks": (DAYMET_NY, DAYMET_NX), "compressors": (compressor,)}
    return enc


def write_daymet_zarr(path: Path) -> Path:
    """Write the demo store to a local directory (same bytes every time), one chunk at a time
    (each 242 MB decoded), so memory stays at about one chunk per variable."""
    import dask

    ds = daymet_dataset()
    with dask.config.set(scheduler="synchronous"):
        ds.to_zarr(
            path,
            mode="w",
            zarr_format=DAYMET_ZARR_FORMAT,
            consolidated=True,
            encoding=daymet_encoding(ds),
        )
    return Path(path)


def mpc_daymet_template() -> dict[str, Any]:
    """MPC's own daymet-daily-hi collection JSON (the fixture copied from its public repo)."""
    return json.loads(MPC_DAYMET_TEMPLATE.read_text())


def daymet_collection(blob_url: str) -> dict[str, Any]:
    """MPC's `daymet-daily-hi` collection, field for field, describing the demo store:
    time extent and shapes of the demo years, sandbox hrefs, no variables the store lacks."""
    col = copy.deepcopy(mpc_daymet_template())
    time = daymet_time()
    nt = time.size
    start = time[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    end = time[-1].strftime("%Y-%m-%dT%H:%M:%SZ")
    col["title"] = "Daymet Daily Hawaii (pcflow sandbox demo)"
    col["description"] = (
        "SYNTHETIC stand-in for MPC's Daymet daily Hawaii collection, made by "
        "pcflow.sandbox.demo_data: MPC's grid, chunking, fill value and metadata; seeded "
        f"values for {DAYMET_YEARS[0]}-{DAYMET_YEARS[-1]} on approximate island outlines."
    )
    col["extent"]["temporal"]["interval"] = [[start, end]]
    col["cube:dimensions"]["time"]["extent"] = [start, end]
    for name in MPC_ONLY_VARIABLES:
        col["cube:variables"].pop(name, None)
    for var in col["cube:variables"].values():
        if (var.get("dimensions") or [None])[0] == "time":
            var["shape"][0] = nt
    col["providers"] = [{"name": "pcflow sandbox", "roles": ["host", "processor"], "url": blob_url}]
    assets = col["assets"]
    assets.pop("thumbnail", None)  # an internet URL: nothing in the sandbox may reach out
    assets["zarr-https"]["href"] = f"{blob_url}/{DAYMET_ACCOUNT}/{DAYMET_CONTAINER}/{DAYMET_PATH}"
    return col
