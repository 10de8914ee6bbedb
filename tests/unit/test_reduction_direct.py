"""The spatial mean read straight from stored chunks (reductions.direct), against NumPy on the
stored values read with zarr alone (an independent computation), on stores encoded as MPC's
Daymet is: Zarr v2, Blosc lz4, `_FillValue` -9999 over the ocean, edge chunks, and a chunk the
store never wrote."""

from __future__ import annotations

import json
import shutil

import numcodecs
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from pcflow import reductions
from pcflow.reductions import direct, kernels

pytestmark = [
    pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered in nanmean:RuntimeWarning"),
]

FILL = -9999.0
SHAPE, CHUNKS = (9, 23, 17), (4, 10, 8)  # edge chunks along every axis


def _values(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = np.round(280 + 10 * rng.standard_normal(SHAPE), 2).astype("float32")
    data[:, :, :5] = FILL  # ocean: whole chunks of it are never written (write_empty_chunks)
    data[:, 20:, :] = FILL
    data[:4, :10, 8:16] = FILL  # one land chunk with no value: fill only, also not written
    data[2] = FILL  # a day with no value at all
    data[5, 3, 9] = np.nan  # NaN where real files have them (not Daymet, but other sources)
    return data


def _write(path, data, **encoding) -> None:
    ds = xr.Dataset(
        {"tmax": (("time", "y", "x"), data)},
        coords={"time": pd.date_range("2019-01-01", periods=data.shape[0])},
    )
    ds["tmax"].encoding = {}
    enc = {
        "chunks": CHUNKS,
        "compressors": (numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE),),
        "_FillValue": FILL,
        **encoding,
    }
    ds.to_zarr(path, mode="w", encoding={"tmax": enc}, zarr_format=2, consolidated=True)


def _independent(path, fill: float | None = FILL) -> np.ndarray:
    """Mean of the stored values read with zarr alone, masked by hand."""
    raw = zarr.open_array(f"{path}/tmax", mode="r")[...].astype("float64")
    if fill is not None:
        raw[raw == fill] = np.nan
    return np.nanmean(raw, axis=(1, 2))


@pytest.fixture(scope="module")
def daymet_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("direct") / "daymet.zarr"
    _write(path, _values())
    return path


def test_mean_from_stored_chunks_matches_numpy_on_the_stored_values(daymet_store):
    ds = xr.open_zarr(daymet_store)
    stored = direct.stored_array(ds["tmax"].data)
    assert stored is not None and stored.fill == FILL
    written = list((daymet_store / "tmax").glob("*.*.*"))
    assert 0 < len(written) < 3 * 3 * 3  # the store really lacks its all-fill chunks
    out = reductions.run("spatial_mean", ds)
    expected = _independent(daymet_store)
    np.testing.assert_allclose(out["tmax"].values, expected, rtol=1e-12, equal_nan=True)
    assert np.isnan(out["tmax"].values[2])  # a day of fill only: NaN, not 0 or -9999
    # the graph really is the stored-chunk one: no task of xarray's decoding in it
    graph = reductions.spatial_mean(ds)["tmax"].data.__dask_graph__()
    assert any(str(k[0] if isinstance(k, tuple) else k).startswith("stored-sums") for k in graph)
    assert not any("open_dataset" in str(k) for k in graph)


def test_anything_but_the_plain_stored_array_takes_the_xarray_path(daymet_store):
    ds = xr.open_zarr(daymet_store)
    expected = _independent(daymet_store)
    variants = {
        "a time subset": (ds.isel(time=slice(1, None)), expected[1:]),
        "other chunks": (xr.open_zarr(daymet_store, chunks={"time": 8}), expected),
        "a where()": (ds.where(ds.tmax < 1e6), expected),
        "loaded": (ds.load(), expected),
    }
    for label, (variant, want) in variants.items():
        assert direct.stored_array(variant["tmax"].data) is None, label
        got = reductions.run("spatial_mean", variant)["tmax"].values
        np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True, err_msg=label)


def test_undecoded_open_counts_the_fill_value_as_xarray_does(daymet_store):
    # mask_and_scale=False: xarray does not mask -9999, so neither may the stored-chunk path
    ds = xr.open_zarr(daymet_store, mask_and_scale=False)
    stored = direct.stored_array(ds["tmax"].data)
    assert stored is not None and stored.fill is None
    got = reductions.run("spatial_mean", ds)["tmax"].values
    np.testing.assert_allclose(got, _independent(daymet_store, fill=None), rtol=1e-12)


def test_other_codecs_and_filters_decode_with_the_arrays_own_codecs(tmp_path):
    data = _values(seed=1)
    quantize = numcodecs.Quantize(digits=2, dtype="float32")
    _write(tmp_path / "z.zarr", data, compressors=(numcodecs.Zstd(level=3),), filters=(quantize,))
    ds = xr.open_zarr(tmp_path / "z.zarr")
    assert direct.stored_array(ds["tmax"].data) is not None
    got = reductions.run("spatial_mean", ds)["tmax"].values
    np.testing.assert_allclose(got, _independent(tmp_path / "z.zarr"), rtol=1e-12)


def test_scaled_and_v3_stores_are_not_read_directly(tmp_path):
    data = _values(seed=2)
    _write(tmp_path / "scaled.zarr", data, scale_factor=0.5, add_offset=1.0, dtype="float32")
    ds = xr.open_zarr(tmp_path / "scaled.zarr")
    assert direct.stored_array(ds["tmax"].data) is None  # decoding changes every value
    v3 = xr.Dataset({"tmax": (("time", "y", "x"), data)})
    v3.to_zarr(
        tmp_path / "v3.zarr",
        encoding={"tmax": {"chunks": CHUNKS}},
        zarr_format=3,
        consolidated=False,
    )
    assert (
        direct.stored_array(xr.open_zarr(tmp_path / "v3.zarr", consolidated=False)["tmax"].data)
        is None
    )


def test_a_chunk_deleted_under_a_staged_store_reader_is_an_error(daymet_store, tmp_path):
    from zarr.storage import LocalStore

    from pcflow.staging.staged import IncompleteStoreError, StrictStore

    copy = tmp_path / "copy.zarr"
    shutil.copytree(daymet_store, copy)
    # the chunks the store never wrote are listed as absent, as staging records them
    written = {p.name for p in (copy / "tmax").glob("*.*.*")}
    grid = [f"{t}.{y}.{x}" for t in range(3) for y in range(3) for x in range(3)]
    absent = {"tmax": [k for k in grid if k not in written]}
    ds = xr.open_zarr(StrictStore(LocalStore(copy, read_only=True), absent, str(copy)))
    assert direct.stored_array(ds["tmax"].data) is not None
    reductions.run("spatial_mean", ds)  # absent chunks read as fill: fine
    (copy / "tmax" / sorted(written)[0]).unlink()
    with pytest.raises(IncompleteStoreError, match="is missing while being read"):
        reductions.run("spatial_mean", ds)


_WORKER_WITHOUT_PCFLOW = """
import sys
sys.modules["pcflow"] = None  # a stock Gateway image: neither pcflow nor numba importable
sys.modules["numba"] = None
import pickle
import numpy as np
task, decode, array = pickle.loads(sys.stdin.buffer.read())
np.save(sys.argv[1], task(array, (0, 1, 1)))
np.save(sys.argv[2], decode(array, (0, 1, 1)))
"""


def test_the_stored_chunk_task_runs_on_workers_without_pcflow(daymet_store, tmp_path):
    import subprocess
    import sys

    from distributed.protocol.pickle import dumps

    array = zarr.open_array(f"{daymet_store}/tmax", mode="r")
    task, decode = direct._chunk_task(FILL), direct._decode_task(FILL)
    subprocess.run(
        [sys.executable, "-c", _WORKER_WITHOUT_PCFLOW, tmp_path / "out.npy", tmp_path / "d.npy"],
        input=dumps((task, decode, array)),
        check=True,
        timeout=120,
    )
    parts = np.load(tmp_path / "out.npy")
    block = array[0:4, 10:20, 8:16].astype("float64")
    block[block == FILL] = np.nan
    np.testing.assert_array_equal(parts[:, 0, 0, 1], (~np.isnan(block)).sum(axis=(1, 2)))
    np.testing.assert_allclose(parts[:, 0, 0, 0], np.nansum(block, axis=(1, 2)), rtol=1e-12)
    # where pcflow is importable the same task reads the bytes itself: same numbers
    np.testing.assert_allclose(task(array, (0, 1, 1)), parts, rtol=1e-12)
    xarray_decoded = xr.open_zarr(daymet_store)["tmax"][0:4, 10:20, 8:16].values
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), xarray_decoded)
    np.testing.assert_array_equal(decode(array, (0, 1, 1)), xarray_decoded)


@pytest.mark.parametrize("opened", ["masked", "unmasked", "zstd+filter"])
def test_decoded_chunks_equal_xarrays_own_decoding(daymet_store, tmp_path, opened):
    path = daymet_store
    if opened == "zstd+filter":
        path = tmp_path / "z.zarr"
        quantize = numcodecs.Quantize(digits=2, dtype="float32")
        _write(path, _values(3), compressors=(numcodecs.Zstd(level=3),), filters=(quantize,))
    ds = xr.open_zarr(path, mask_and_scale=opened != "unmasked")
    ours = direct.read_stored(ds)
    assert ours["tmax"].data.name.startswith("stored-decoded")
    assert ours["tmax"].chunks == ds["tmax"].chunks
    np.testing.assert_array_equal(ours["tmax"].values, ds["tmax"].values)  # NaN == NaN here
    assert ours["tmax"].attrs == ds["tmax"].attrs and ours["tmax"].encoding == ds["tmax"].encoding
    # the decoded array is still recognised, so the mean keeps its one fused pass per chunk
    assert direct.stored_array(ours["tmax"].data) == direct.stored_array(ds["tmax"].data)


def test_period_reductions_on_stored_chunks_match_xarray_in_memory(tmp_path):
    rng = np.random.default_rng(4)
    data = np.round(rng.normal(10, 5, (730, 11, 7)), 2).astype("float32")  # 2019 and 2020
    data[:, :, :2] = FILL
    data[100:130] = FILL
    path = tmp_path / "years.zarr"
    _write(path, data, chunks=(365, 11, 7))
    loaded = xr.open_zarr(path).load()  # xarray's own decoding, nothing of pcflow's read path
    for name in ("annual", "seasonal", "climatology_month"):
        kwargs = {"field": True} if name.startswith("climatology") else {}
        assert direct.read_stored(xr.open_zarr(path))["tmax"].data.name.startswith("stored")
        got = reductions.run(name, xr.open_zarr(path), incomplete="flag", **kwargs)
        want = reductions.run(name, loaded, incomplete="flag", **kwargs)
        for var in got.data_vars:
            np.testing.assert_allclose(got[var], want[var], rtol=1e-6, equal_nan=True)


def test_fill_to_nan_refuses_a_strided_block():
    block = np.zeros((2, 4, 4), "float32")[:, :, :2]
    with pytest.raises(ValueError, match="contiguous"):
        direct.fill_to_nan(block, 0.0)


def test_kernel_masks_the_fill_in_the_stored_dtype():
    # 1e20 is not a float32: the stored fill is float32(1e20), and only that value is missing
    block = np.array([[[np.float32(1e20), 1.0], [2.0, np.nan]]], dtype="float32")
    total, count = kernels.nansum_count(block, 1e20)
    assert (total[0], count[0]) == (3.0, 2)
    total, count = kernels.nansum_count(block)
    assert count[0] == 3


def test_fill_to_nan_over_many_cache_steps_equals_numpy():
    rng = np.random.default_rng(5)
    block = rng.choice(np.array([FILL, 1.5, np.nan, -3.25], "float32"), size=(27, 101, 113))
    want = np.where(block == np.float32(FILL), np.nan, block)
    assert block.size > 3 * direct._MASK_STEP  # steps and a partial last step
    got = direct.fill_to_nan(block, FILL)
    assert got is block  # in place
    np.testing.assert_array_equal(got, want)


STORED_MAPS_SCRIPT = """
import gc, json, sys, xarray as xr
from numba.core.dispatcher import Dispatcher
from pcflow import reductions
from pcflow.reductions import direct
ds = xr.open_zarr(sys.argv[1])
assert direct.read_stored(ds)["tmax"].data.name.startswith("stored-decoded")
reductions.run("annual", ds, incomplete="flag")
reductions.run("seasonal", ds, incomplete="flag")
# every numba function given machine code in this process, compiled or loaded from cache
loaded = [d.py_func.__qualname__ for d in gc.get_objects()
          if isinstance(d, Dispatcher) and d.overloads]
print(json.dumps(loaded))
"""


def test_reading_stored_chunks_starts_no_compiler_in_a_fresh_reduce_job(tmp_path):
    """Starting numba costs a fresh process ~0.6 s even for a cached kernel: the decode path
    must not import it for reductions that otherwise compile nothing."""
    import subprocess
    import sys

    data = np.round(np.random.default_rng(6).normal(10, 5, (730, 11, 7)), 2).astype("float32")
    data[:, :, :2] = FILL
    _write(tmp_path / "s.zarr", data, chunks=(365, 11, 7))
    run = subprocess.run(
        [sys.executable, "-c", STORED_MAPS_SCRIPT, tmp_path / "s.zarr"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []
