"""The fused spatial-mean kernel against NumPy's float64 nanmean (an independent computation)."""

from __future__ import annotations

import dask.array
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pcflow import reductions
from pcflow.reductions import kernels

pytestmark = pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")


def _field(dtype: str, shape=(7, 30, 20), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = (280 + 10 * rng.standard_normal(shape)).astype(dtype)
    data[..., :, :6] = np.nan  # an "ocean" strip in every slice
    data[..., 2, :, :] = np.nan  # a slice with no value at all (a gap day)
    data[..., 4, 3, 8] = np.nan
    return data


def _reference(data: np.ndarray) -> np.ndarray:
    return np.nanmean(data.astype("float64"), axis=(-2, -1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("chunks", [(3, 30, 20), (2, 7, 9), (7, 30, 5)])
def test_dask_chunks_give_the_float64_nanmean(dtype, chunks):
    data = _field(dtype)
    got = kernels.nanmean_last2(dask.array.from_array(data, chunks=chunks))
    assert got.dtype == np.float64
    assert got.chunks[0] == dask.array.empty(7, chunks=chunks[0]).chunks[0]  # time chunks kept
    np.testing.assert_allclose(got.compute(), _reference(data), rtol=1e-12)
    assert np.isnan(got.compute()[2])  # no value -> NaN, not 0


def test_numpy_input_and_leading_dims():
    data = _field("float32", shape=(3, 7, 30, 20))
    np.testing.assert_allclose(kernels.nanmean_last2(data), _reference(data), rtol=1e-12)
    lazy = kernels.nanmean_last2(dask.array.from_array(data, chunks=(1, 4, 11, 20)))
    np.testing.assert_allclose(lazy.compute(), _reference(data), rtol=1e-12)


def test_float32_sum_keeps_digits_a_float32_accumulator_loses():
    # 2^24 + 1 is not a float32; a float32 running sum of a million 1.0001 values drifts.
    data = np.full((1, 1000, 1000), 1.0001, dtype="float32")
    exact = float(np.float32(1.0001))
    got = kernels.nanmean_last2(dask.array.from_array(data, chunks=(1, 500, 500))).compute()
    assert got[0] == pytest.approx(exact, rel=1e-12)


def test_spatial_mean_takes_the_fused_path_for_any_dim_order(monkeypatch):
    calls = []
    fused = kernels.nanmean_last2
    monkeypatch.setattr(kernels, "nanmean_last2", lambda a: calls.append(a.shape) or fused(a))
    data = _field("float32")
    ds = xr.Dataset(
        {"t": (("y", "time", "x"), np.moveaxis(data, 0, 1), {"units": "K"})},
        coords={
            "time": pd.date_range("2020-01-01", periods=7),
            "y": np.arange(30.0),
            "x": np.arange(20.0),
        },
    ).chunk({"time": 3, "y": 11})
    out = reductions.run("spatial_mean", ds)
    np.testing.assert_allclose(out["t"].values, _reference(data), rtol=1e-12)
    assert out["t"].dims == ("time",) and out["t"].attrs["units"] == "K"
    assert calls == [(7, 30, 20)]  # spatial dims moved last, then one fused reduction


def test_integer_grids_fall_back_to_xarray():
    ds = xr.Dataset(
        {"n": (("time", "y", "x"), np.arange(24, dtype="int16").reshape(2, 3, 4))},
        coords={"time": pd.date_range("2020-01-01", periods=2)},
    )
    out = reductions.run("spatial_mean", ds)
    np.testing.assert_allclose(out["n"].values, [5.5, 17.5])


_WORKER_WITHOUT_PCFLOW = """
import sys
sys.modules["pcflow"] = None  # a stock Gateway image: neither pcflow nor numba importable
sys.modules["numba"] = None
import pickle
import numpy as np
task = pickle.loads(sys.stdin.buffer.read())
block = np.load(sys.argv[1])
np.save(sys.argv[2], task(block))
"""


def test_the_chunk_task_runs_on_workers_without_pcflow(tmp_path):
    """The task as distributed ships it, unpickled and run where pcflow cannot be imported:
    it must arrive by value and fall back to NumPy with the same numbers."""
    import subprocess
    import sys

    from distributed.protocol.pickle import dumps

    data = _field("float32", shape=(2, 7, 30, 20))
    np.save(tmp_path / "block.npy", data)
    subprocess.run(
        [
            sys.executable,
            "-c",
            _WORKER_WITHOUT_PCFLOW,
            tmp_path / "block.npy",
            tmp_path / "out.npy",
        ],
        input=dumps(kernels._chunk_partials()),
        check=True,
        timeout=120,
    )
    parts = np.load(tmp_path / "out.npy")
    assert parts.shape == (2, 7, 1, 1, 2)
    total, count = parts[..., 0, 0, 0], parts[..., 0, 0, 1]
    np.testing.assert_array_equal(count, (~np.isnan(data)).sum(axis=(-2, -1)))
    np.testing.assert_allclose(total, np.nansum(data.astype("float64"), axis=(-2, -1)), rtol=1e-12)
    # the same task where pcflow is importable takes the kernel, with the same numbers
    np.testing.assert_allclose(kernels._chunk_partials()(data), parts, rtol=1e-12)


def test_spatial_mean_on_real_worker_processes():
    import logging

    from pcflow import compute

    data = _field("float32")
    ds = xr.Dataset(
        {"t": (("time", "y", "x"), data)},
        coords={"time": pd.date_range("2020-01-01", periods=7)},
    ).chunk({"time": 3, "x": 7})
    config = {"backend": "local", "threads": 1, "local": {"processes": True}}
    with compute.cluster(config, logging.getLogger("test")):
        out = reductions.spatial_mean(ds).compute()
    np.testing.assert_allclose(out["t"].values, _reference(data), rtol=1e-12, equal_nan=True)
