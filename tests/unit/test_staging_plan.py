"""Subset and chunk planning: bbox reprojection, time slicing, chunk shapes, regions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pyproj
import pytest

from pcflow.sandbox import demo_data
from pcflow.staging import plan
from pcflow.staging.retry import StagingError


def test_parse_datetime_forms():
    assert plan.parse_datetime("2019-01-01/2020-12-31") == ("2019-01-01", "2020-12-31")
    assert plan.parse_datetime("2019-01-01/..") == ("2019-01-01", None)
    assert plan.parse_datetime("../2020-01-01") == (None, "2020-01-01")
    assert plan.parse_datetime("2020-06-01") == ("2020-06-01", "2020-06-01")
    assert plan.parse_datetime(None) == (None, None)
    with pytest.raises(StagingError, match="start/end"):
        plan.parse_datetime("a/b/c")


def test_time_slice_includes_whole_end_day():
    # Daymet stamps days at 12:00: an end date must include that day's step.
    idx = pd.date_range("2019-12-25T12:00", periods=14, freq="D")
    sl = plan.time_slice(idx, "2019-12-31/2020-01-02")
    assert list(idx[sl].strftime("%m-%d")) == ["12-31", "01-01", "01-02"]


def test_time_slice_accepts_utc_instants():
    idx = pd.date_range("2020-01-01", periods=48, freq="h")
    sl = plan.time_slice(idx, "2020-01-01T06:00:00Z/2020-01-01T08:00:00Z")
    assert [t.hour for t in idx[sl]] == [6, 7, 8]


def test_time_slice_empty_is_an_error():
    idx = pd.date_range("2020-01-01", periods=3, freq="D")
    with pytest.raises(StagingError, match="selects no time steps"):
        plan.time_slice(idx, "2021-01-01/2021-02-01")


def test_coord_slice_descending_counts_cell_centres():
    y = np.array([50.0, 40.0, 30.0, 20.0, 10.0])  # north to south, step 10
    # 24..36 holds one centre (30); the cells centred at 40 and 20 only touch it.
    assert plan.coord_slice(y, 24.0, 36.0, "y") == slice(2, 3)
    assert plan.coord_slice(y, 15.0, 45.0, "y") == slice(1, 4)
    with pytest.raises(StagingError, match="does not overlap"):
        plan.coord_slice(y, 31.0, 34.0, "y")  # between two centres: no cell is in it
    with pytest.raises(StagingError, match="does not overlap"):
        plan.coord_slice(y, 100.0, 200.0, "y")


def test_regular_axis_from_cube_dimensions_runs_like_the_store():
    """MPC's y extent is [min, max] with step -1000: the store's y runs north to south."""
    y = plan.regular_axis([-622000.0, -39000.0], -1000.0)
    x = plan.regular_axis([-5802250.0, -5519250.0], 1000.0)
    ref_x, ref_y = demo_data.daymet_xy()
    np.testing.assert_array_equal(x, ref_x)
    np.testing.assert_array_equal(y, ref_y)


def test_bbox_in_crs_covers_every_edge_point():
    bbox = [-156.1, 19.1, -154.8, 20.3]
    crs = demo_data.daymet_crs()
    xmin, ymin, xmax, ymax = plan.bbox_in_crs(bbox, crs)
    tr = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    lons = np.linspace(bbox[0], bbox[2], 50)
    lats = np.linspace(bbox[1], bbox[3], 50)
    edge_lon = np.concatenate([lons, lons, np.full(50, bbox[0]), np.full(50, bbox[2])])
    edge_lat = np.concatenate([np.full(50, bbox[1]), np.full(50, bbox[3]), lats, lats])
    x, y = tr.transform(edge_lon, edge_lat)
    tol = 1.0  # metres
    assert (x >= xmin - tol).all() and (x <= xmax + tol).all()
    assert (y >= ymin - tol).all() and (y <= ymax + tol).all()


def test_subset_indexers_select_cells_whose_lonlat_is_inside():
    ds = demo_data.daymet_dataset()
    bbox = [-155.6, 19.5, -155.4, 19.7]
    sel = plan.subset_indexers(ds, bbox, "2019-01-01/2019-12-31")
    sub = ds.isel(sel)
    assert sub.sizes["time"] == 365 and str(sub.time.values[0])[:10] == "2019-01-01"
    # Independent check with the dataset's own 2-D lon/lat: every cell centre inside the
    # bbox is selected, and the selection is no bigger than the bbox's hull plus one cell.
    inside = (
        (ds.lon >= bbox[0]) & (ds.lon <= bbox[2]) & (ds.lat >= bbox[1]) & (ds.lat <= bbox[3])
    ).values
    rows, cols = np.nonzero(inside)
    assert rows.size > 0
    ys, xs = sel["y"], sel["x"]
    assert ys.start <= rows.min() and rows.max() < ys.stop
    assert xs.start <= cols.min() and cols.max() < xs.stop
    assert (ys.stop - ys.start) <= (rows.max() - rows.min() + 1) + 6
    assert (xs.stop - xs.start) <= (cols.max() - cols.min() + 1) + 6
    # Exactly the cells whose centres lie in the bbox's envelope on the grid (pyproj here).
    to_grid = pyproj.Transformer.from_crs("EPSG:4326", demo_data.daymet_crs(), always_xy=True)
    xmin, ymin, xmax, ymax = to_grid.transform_bounds(*bbox, densify_pts=21)
    x, y = ds.x.values, ds.y.values
    assert xs.stop - xs.start == np.count_nonzero((x >= xmin) & (x <= xmax))
    assert ys.stop - ys.start == np.count_nonzero((y >= ymin) & (y <= ymax))


@pytest.mark.parametrize(
    "bbox",
    [[-155.6, 19.5, -155.4, 19.7], [-158.3, 21.2, -157.6, 21.75], [-156.1, 19.0, -154.8, 20.3]],
)
def test_plan_window_equals_staging_window_on_the_rotated_grid(bbox):
    """`pcflow plan`/`snakemake -n` (estimate, from the collection JSON) and staging (from the
    store's coordinates) pick the same cells on Daymet's Lambert grid (rotated ~38° at Hawaii).
    Before one window function they disagreed: 31 x 31 planned, 32 x 33 staged for the demo."""
    from pcflow import estimate

    collection = demo_data.daymet_collection("https://127.0.0.1:1")
    cfg = {"bbox": bbox, "datetime": "2019-01-01/2019-12-31", "variables": ["tmax"]}
    planned = estimate.estimate_zarr(cfg, collection, {})
    sel = plan.subset_indexers(demo_data.daymet_dataset(), bbox, cfg["datetime"])
    staged = {"x": sel["x"].stop - sel["x"].start, "y": sel["y"].stop - sel["y"].start}
    assert {k: planned["window"][k] for k in ("x", "y")} == staged
    assert planned["window_index"] == {
        "x": [sel["x"].start, sel["x"].stop],
        "y": [sel["y"].start, sel["y"].stop],
    }


def test_dataset_crs_from_grid_mapping():
    ds = demo_data.daymet_dataset()
    assert plan.dataset_crs(ds).equals(demo_data.daymet_crs())


@pytest.mark.parametrize("chunk_mb", [0.01, 1.0, 100.0])
def test_plan_chunks_time_series_fits_budget(chunk_mb):
    dims, shape = ("time", "y", "x"), (730, 640, 480)
    chunks = plan.plan_chunks(dims, shape, 4, chunk_mb, time_series=True)
    assert math.prod(chunks) * 4 <= max(chunk_mb * 1e6, 4 * 730)
    if chunk_mb * 1e6 >= 730 * 4:
        assert chunks[0] == 730  # a pixel's whole series in one chunk
    assert all(1 <= c <= s for c, s in zip(chunks, shape, strict=True))


def test_plan_chunks_spatial_mode_keeps_full_extent_when_it_fits():
    chunks = plan.plan_chunks(("time", "y", "x"), (730, 64, 48), 4, 1.0, time_series=False)
    assert chunks[1:] == (64, 48)
    assert chunks[0] == int(1e6 // (64 * 48 * 4))


def test_plan_chunks_scalar_and_no_time():
    assert plan.plan_chunks((), (), 2) == ()
    assert plan.plan_chunks(("y", "x"), (10, 10), 8, 100.0) == (10, 10)


def test_aligned():
    assert plan.aligned(365, 1095, 1095, 365)
    assert plan.aligned(0, 10, 10, 365)  # whole (short) dimension
    assert not plan.aligned(433, 913, 1095, 365)
    assert not plan.aligned(0, 400, 1095, 365)


def test_regions_cover_each_chunk_once():
    regions = plan.regions_for("v", 23, 10_000_000, 25.0)  # 2 chunks per region
    covered = [f for r in regions for f in range(r.first, r.first + r.count)]
    assert covered == list(range(23))
    assert {r.count for r in regions[:-1]} == {2}
    assert len({r.id for r in regions}) == len(regions)


def test_fingerprint_is_order_independent():
    assert plan.fingerprint({"a": 1, "b": [1, 2]}) == plan.fingerprint({"b": [1, 2], "a": 1})
    assert plan.fingerprint({"a": 1}) != plan.fingerprint({"a": 2})


def _source_chunks(idx, chunks, offset, src_chunks):
    spans = [
        range((o + i * c) // s, (o + (i + 1) * c - 1) // s + 1)
        for i, c, o, s in zip(idx, chunks, offset, src_chunks, strict=True)
    ]
    return list(itertools.product(*spans))


def _held(order, chunks, offset, src_chunks):
    """Most source chunks held at once writing `order` with each decoded once: those already
    read by an earlier target chunk and still needed by a later one."""
    first, last = {}, {}
    for pos, idx in enumerate(order):
        for src in _source_chunks(idx, chunks, offset, src_chunks):
            first.setdefault(src, pos)
            last[src] = pos
    return max(sum(1 for k in first if first[k] <= pos < last[k]) for pos in range(len(order)))


@pytest.mark.parametrize("width", [16, 64])
def test_strip_order_holds_a_bounded_set_of_source_chunks_whatever_the_width(width):
    # Daymet-like: time-contiguous 64 x 64 target tiles over 96 x 96 one-year source chunks.
    chunks, src, offset = (976, 64, 64), (365, 96, 96), (59, 77, 48)
    shape = (976, 64 * 12, 64 * width)
    grid = tuple(-(-n // c) for n, c in zip(shape, chunks, strict=True))
    c_order = list(itertools.product(*(range(n) for n in grid)))
    order = plan.strip_order(grid, chunks, offset, src)
    assert sorted(order) == c_order  # every chunk exactly once

    # Strips: consecutive runs with the same x strip. Within one, a source chunk is read once;
    # one shared with the next strip is read again there (the cache lets it go meanwhile).
    strip_of = [(offset[2] + idx[2] * chunks[2]) // (src[2] * plan.STRIP_SOURCE_CHUNKS)
                for idx in order]  # fmt: skip
    strips = [[i for i, s in zip(order, strip_of, strict=True) if s == k]
              for k in sorted(set(strip_of))]  # fmt: skip
    held_in_strips = max(_held(s, chunks, offset, src) for s in strips)
    bound = plan.strip_working_set(shape, chunks, offset, src)
    held_c = _held(c_order, chunks, offset, src)
    assert held_in_strips <= bound == 3 * 2 * 5  # 3 one-year chunks x 2 rows x 5 columns
    # C order holds a row of the dataset: it grows with the width, past the strips' bound.
    assert held_c >= 3 * (64 * width // 96) and held_c > bound

    reads = sum(len({c for i in s for c in _source_chunks(i, chunks, offset, src)})
                for s in strips)  # fmt: skip
    distinct = len({c for i in order for c in _source_chunks(i, chunks, offset, src)})
    assert reads / distinct <= 1 + 1 / plan.STRIP_SOURCE_CHUNKS


def test_strip_order_is_c_order_when_the_data_fits_one_strip():
    grid, chunks, src = (1, 3, 2), (976, 64, 64), (365, 96, 96)
    assert plan.strip_order(grid, chunks, (0, 0, 0), src) == list(
        itertools.product(range(1), range(3), range(2))
    )
