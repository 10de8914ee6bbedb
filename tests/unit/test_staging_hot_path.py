"""Per-run and per-chunk costs found by profiling bench/staging.py (issue 11, item 4)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading

import numpy as np
import pyproj
import xarray as xr

from pcflow.staging import fastcopy, plan

# Daymet's grid mapping as MPC's daymet Zarr stores hold it (standard_parallel a float array).
DAYMET_LCC = {
    "grid_mapping_name": "lambert_conformal_conic",
    "longitude_of_central_meridian": -100.0,
    "latitude_of_projection_origin": 42.5,
    "false_easting": 0.0,
    "false_northing": 0.0,
    "standard_parallel": np.array([25.0, 60.0]),
    "semi_major_axis": 6378137.0,
    "inverse_flattening": 298.257223563,
}


def _dataset(attrs: dict) -> xr.Dataset:
    tmax = xr.DataArray(
        np.zeros((2, 3, 4), "float32"),
        dims=("time", "y", "x"),
        attrs={"grid_mapping": "lambert_conformal_conic"},
    )
    return xr.Dataset(
        {"tmax": tmax, "lambert_conformal_conic": ((), np.int16(0), attrs)},
        coords={"x": np.arange(4) * 1000.0, "y": np.arange(3) * -1000.0},
    )


def test_dataset_crs_is_built_from_cf_once_and_is_the_same_crs(monkeypatch):
    """CRS.from_cf costs ~0.6 s and staging asked for it two to three times per run."""
    expected = pyproj.CRS.from_cf(DAYMET_LCC).to_json_dict()  # independent, before the spy
    plan._cf_crs_json.cache_clear()
    calls = []
    original = pyproj.CRS.from_cf

    def spy(attrs, *args, **kwargs):
        calls.append(attrs)
        return original(attrs, *args, **kwargs)

    monkeypatch.setattr(pyproj.CRS, "from_cf", staticmethod(spy))
    got = [plan.dataset_crs(_dataset(dict(DAYMET_LCC))) for _ in range(3)]
    assert len(calls) == 1
    assert all(c.to_json_dict() == expected for c in got)


def test_dataset_crs_tells_different_grid_mappings_apart():
    plan._cf_crs_json.cache_clear()
    other = {**DAYMET_LCC, "longitude_of_central_meridian": -90.0}
    a = plan.dataset_crs(_dataset(dict(DAYMET_LCC)))
    b = plan.dataset_crs(_dataset(other))
    assert b.to_json_dict() == pyproj.CRS.from_cf(other).to_json_dict()
    assert not a.equals(b)


class _Target:
    """Records puts; the copy under test never calls the service."""

    server_side_ok = False

    def __init__(self):
        self.log = logging.getLogger("t")
        self.puts: dict[str, tuple[bytes, str | None]] = {}

    async def put(self, blob, data, md5=None):
        self.puts[blob] = (data, md5)

    async def delete(self, blob):
        raise AssertionError("nothing to delete")


class _BytesSource:
    """A source that offers bytes only (as test doubles and other readers do)."""

    data = b"chunk-bytes" * 1000

    async def get_bytes(self, name):
        return self.data


def test_copy_through_the_client_hashes_off_the_event_loop(monkeypatch):
    """The chunk's MD5 was computed on the event loop: every transfer in flight waited."""
    threads = []
    original = fastcopy.md5_hex

    def recording(data):
        threads.append(threading.current_thread())
        return original(data)

    monkeypatch.setattr(fastcopy, "md5_hex", recording)
    target = _Target()

    async def run():
        loop_thread = threading.current_thread()
        got = await fastcopy.copy_chunk(_BytesSource(), target, "s/0.0", "d/0.0", False)
        return loop_thread, got

    loop_thread, (md5, size) = asyncio.run(run())
    want = hashlib.md5(_BytesSource.data).hexdigest()
    assert (md5, size) == (want, len(_BytesSource.data))
    assert target.puts == {"d/0.0": (_BytesSource.data, want)}
    assert threads and loop_thread not in threads


def test_copy_reuses_the_md5_the_source_read_verified(monkeypatch):
    """A source that already hashed the chunk (ZarrV2Source checks it against the stored MD5)
    hands the digest over: the chunk is not hashed a second time."""

    class Verified(_BytesSource):
        async def get_verified(self, name):
            return self.data, hashlib.md5(self.data).hexdigest()

    def fail(data):
        raise AssertionError("hashed again")

    monkeypatch.setattr(fastcopy, "md5_hex", fail)
    target = _Target()
    md5, size = asyncio.run(fastcopy.copy_chunk(Verified(), target, "s/0.0", "d/0.0", False))
    assert md5 == hashlib.md5(Verified.data).hexdigest() and size == len(Verified.data)
    assert target.puts["d/0.0"][1] == md5
