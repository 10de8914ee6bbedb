"""Reductions against independent NumPy computations on synthetic Daymet-like data.

Tolerances: results accumulate in float64 from float32 inputs, as the NumPy references do, so
only summation order differs: rtol 1e-9 unless stated.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pcflow import reductions, region
from pcflow.testing.synthetic import daymet_like, s2_cube

RTOL = 1e-9
# NumPy references warn on the all-NaN "ocean" cells; xarray returns NaN there silently.
pytestmark = pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    return daymet_like()


def np_series(ds: xr.Dataset, name: str) -> np.ndarray:
    return np.nanmean(ds[name].values.astype("float64"), axis=(1, 2))


def test_spatial_mean_matches_numpy_nanmean(ds):
    out = reductions.run("spatial_mean", ds)
    assert set(out.data_vars) == {"tmax", "prcp"}  # grid-mapping scalar and yearday skipped
    for name in ("tmax", "prcp"):
        np.testing.assert_allclose(out[name].values, np_series(ds, name), rtol=RTOL)
        assert out[name].dims == ("time",)
        assert out[name].attrs["units"] == ds[name].attrs["units"]
        assert out[name].attrs["cell_methods"].endswith("area: mean")
    assert out.attrs["provenance"] == ds.attrs["provenance"]
    assert out.attrs["period"] == "2018-01-01/2020-12-30"


def test_spatial_mean_latlon_uses_cos_lat_weights():
    rng = np.random.default_rng(1)
    lat = np.array([0.0, 30.0, 60.0, 80.0])
    data = rng.normal(size=(5, 4, 3)).astype("float32")
    data[0, 1, 1] = np.nan
    ds = xr.Dataset(
        {"t2m": (("time", "lat", "lon"), data, {"units": "K"})},
        coords={"time": pd.date_range("2000-01-01", periods=5), "lat": lat, "lon": [0.0, 1, 2]},
    )
    out = reductions.run("spatial_mean", ds)
    w = np.broadcast_to(np.cos(np.deg2rad(lat))[None, :, None], data.shape)
    valid = ~np.isnan(data)
    expected = np.nansum(w * data, axis=(1, 2)) / np.sum(w * valid, axis=(1, 2))
    np.testing.assert_allclose(out["t2m"].values, expected, rtol=1e-6)
    # and it differs from the unweighted mean, so the weights matter
    assert not np.allclose(out["t2m"].values, np.nanmean(data, axis=(1, 2)), rtol=1e-3)
    assert out.attrs["weighting"] == "cos(lat)"


def test_spatial_mean_keeps_store_chunks(ds):
    lazy = reductions.spatial_mean(ds)  # not computed
    assert lazy["tmax"].chunks == (ds["tmax"].chunks[0],)


@pytest.mark.parametrize("freq", ["month", "dayofyear"])
def test_climatology_of_series_matches_numpy(ds, freq):
    out = reductions.run(f"climatology_{freq}", ds)
    series = np_series(ds, "tmax")
    t = pd.DatetimeIndex(ds["time"].values)
    keys = t.month.to_numpy() if freq == "month" else t.day_of_year.to_numpy()
    groups = np.unique(keys)
    assert list(out[freq].values) == list(groups)
    for g in groups[:: max(1, len(groups) // 20)]:
        vals = series[keys == g]
        row = out.sel({freq: g})
        np.testing.assert_allclose(row["tmax"], vals.mean(), rtol=RTOL)
        np.testing.assert_allclose(row["tmax_std"], vals.std(ddof=0), rtol=1e-7)
        np.testing.assert_allclose(row["tmax_min"], vals.min(), rtol=RTOL)
        np.testing.assert_allclose(row["tmax_max"], vals.max(), rtol=RTOL)
        np.testing.assert_allclose(row["tmax_p10"], np.quantile(vals, 0.1), rtol=1e-7)
        np.testing.assert_allclose(row["tmax_p90"], np.quantile(vals, 0.9), rtol=1e-7)
    assert out.attrs["years"] == 3
    assert "over years" in out["tmax"].attrs["cell_methods"]


def test_climatology_field_monthly_maps(ds):
    out = reductions.run("climatology_month_field", ds)
    assert out["tmax"].dims == ("month", "y", "x") or set(out["tmax"].dims) == {"month", "y", "x"}
    months = pd.DatetimeIndex(ds["time"].values).month.to_numpy()
    data = ds["prcp"].values.astype("float64")
    expected = np.nanmean(data[months == 7], axis=0)
    np.testing.assert_allclose(
        out["prcp"].sel(month=7).transpose("y", "x").values, expected, rtol=1e-6
    )


def test_climatology_with_and_without_flox_agree(ds):
    with xr.set_options(use_flox=True):
        a = reductions.climatology(ds, freq="month", field=True).compute()
    with xr.set_options(use_flox=False):
        b = reductions.climatology(ds, freq="month", field=True).compute()
    xr.testing.assert_allclose(a, b, rtol=1e-6)


def test_anomaly_monthly_matches_numpy(ds):
    out = reductions.run("anomaly", ds)
    series = np_series(ds, "prcp")
    t = pd.DatetimeIndex(ds["time"].values)
    ym = t.year * 100 + t.month
    months_idx = np.unique(ym)
    monthly = np.array([series[ym == k].mean() for k in months_idx])
    month_of = months_idx % 100
    clim = {m: monthly[month_of == m].mean() for m in range(1, 13)}
    expected = monthly - np.array([clim[m] for m in month_of])
    np.testing.assert_allclose(out["prcp"].values, expected, rtol=1e-7, atol=1e-12)
    assert out.sizes["time"] == 36
    np.testing.assert_allclose(out["prcp"].groupby("time.month").mean().values, 0, atol=1e-9)
    assert out["prcp"].attrs["long_name"].endswith("anomaly")


def test_anomaly_daily_against_doy_climatology(ds):
    out = reductions.run("anomaly_dayofyear", ds)
    series = np_series(ds, "tmax")
    doy = pd.DatetimeIndex(ds["time"].values).day_of_year.to_numpy()
    clim = {d: series[doy == d].mean() for d in np.unique(doy)}
    expected = series - np.array([clim[d] for d in doy])
    np.testing.assert_allclose(out["tmax"].values, expected, rtol=1e-7, atol=1e-9)


def nan_sum(values: np.ndarray) -> np.ndarray:
    """Sum over axis 0 that stays NaN where every value is NaN (no data is not 0 mm)."""
    return np.where(np.isnan(values).all(0), np.nan, np.nansum(values, 0))


def test_annual_precip_sum_and_temperature_mean(ds):
    out = reductions.run("annual", ds)
    years = pd.DatetimeIndex(ds["time"].values).year.to_numpy()
    prcp = ds["prcp"].values.astype("float64")
    tmax = ds["tmax"].values.astype("float64")
    ocean = np.isnan(prcp).all(0)
    assert ocean.any() and not ocean.all()
    for i, year in enumerate((2018, 2019, 2020)):
        sel = years == year
        got = out["prcp"].isel(time=i).transpose("y", "x").values
        # The ocean is NaN, not 0 mm (a plain sum drew it as dry land before min_count=1).
        assert np.isnan(got[ocean]).all()
        np.testing.assert_allclose(got, nan_sum(prcp[sel]), rtol=1e-6)
        np.testing.assert_allclose(
            out["tmax"].isel(time=i).transpose("y", "x").values, np.nanmean(tmax[sel], 0), rtol=1e-6
        )
    assert out["prcp"].attrs["units"] == "mm"  # daily rate summed over a year
    assert out["tmax"].attrs["units"] == "degrees C"
    assert "time: sum within year" in out["prcp"].attrs["cell_methods"]
    assert "lambert_conformal_conic" in out  # grid mapping kept for the map's CRS


def test_annual_max_and_partial_year_dropped():
    ds = daymet_like().isel(time=slice(0, 365 + 100))  # 2018 complete, 100 days of 2019
    out = reductions.run("annual_max", ds)
    assert out.sizes["time"] == 1
    np.testing.assert_allclose(
        out["tmax"].isel(time=0).transpose("y", "x").values,
        np.nanmax(ds["tmax"].values[:365], axis=0),
        rtol=1e-6,
    )


def test_seasonal_mean_jja_and_sum(ds):
    out = reductions.run("seasonal", ds)
    assert list(out["season"].values) == ["DJF", "MAM", "JJA", "SON"]
    t = pd.DatetimeIndex(ds["time"].values)
    tmax = ds["tmax"].values.astype("float64")
    prcp = ds["prcp"].values.astype("float64")
    jja = np.isin(t.month, [6, 7, 8])
    per_year_mean = [np.nanmean(tmax[jja & (t.year == y)], 0) for y in (2018, 2019, 2020)]
    np.testing.assert_allclose(
        out["tmax"].sel(season="JJA").transpose("y", "x").values,
        np.mean(per_year_mean, 0),
        rtol=1e-6,
    )
    # DJF: only the complete Dec 2018-Feb 2019 and Dec 2019-Feb 2020 seasons count.
    totals = []
    for y in (2018, 2019):
        sel = ((t.year == y) & (t.month == 12)) | ((t.year == y + 1) & np.isin(t.month, [1, 2]))
        totals.append(nan_sum(prcp[sel]))
    got = out["prcp"].sel(season="DJF").transpose("y", "x").values
    assert np.isnan(got[np.isnan(prcp).all(0)]).all()  # ocean: no data, not 0 mm
    np.testing.assert_allclose(got, np.mean(totals, 0), rtol=1e-6)
    # Jan-Feb 2018 lacks Dec 2017; Dec 2020 (Daymet: no Dec 31) lacks Jan-Feb 2021.
    assert out.attrs["incomplete_periods"] == (
        "dropped: DJF 2018 (59 of 90 days), DJF 2021 (30 of 89 days)"
    )
    assert out["prcp"].attrs["units"] == "mm"


def test_ndvi_monthly_composite_masks_clouds_and_nodata():
    ds = s2_cube()
    out = reductions.run("ndvi_monthly", ds)
    red = ds["B04"].values.astype("float64")
    nir = ds["B08"].values.astype("float64")
    scl = ds["SCL"].values
    ok = ~np.isin(scl, [3, 8, 9, 10, 0]) & (red != 0) & (nir != 0)
    ndvi = np.where(ok, (nir - red) / (nir + red), np.nan)
    months = pd.DatetimeIndex(ds["time"].values).month
    for i, m in enumerate((6, 7)):
        with warnings.catch_warnings():  # all-NaN pixels: nanmedian warns, xarray does not
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmedian(ndvi[months == m], axis=0)
        np.testing.assert_allclose(out["ndvi"].isel(time=i).values, expected, rtol=1e-6)
        np.testing.assert_array_equal(
            out["clear_count"].isel(time=i).values, ok[months == m].sum(0)
        )
    assert out["ndvi"].attrs["units"] == "1"


def test_ndvi_from_band_dimension():
    ds = s2_cube()
    cube = ds.to_array("band").rename("data").to_dataset()
    a = reductions.run("ndvi", cube)
    b = reductions.run("ndvi_monthly", ds)
    np.testing.assert_allclose(a["ndvi"].values, b["ndvi"].values, rtol=1e-6)


def test_unknown_reduction_names_the_choices(ds):
    with pytest.raises(
        ValueError, match="reduction 'annual_median' is unknown; use one of: .*spatial_mean"
    ):
        reductions.run("annual_median", ds)


def test_bad_param_names_field(ds):
    with pytest.raises(ValueError, match="freq='week' is not supported"):
        reductions.run("climatology", ds, freq="week")


def test_no_gridded_variables_error():
    ds = xr.Dataset(
        {"a": (("time",), np.zeros(3))}, coords={"time": pd.date_range("2000", periods=3)}
    )
    with pytest.raises(ValueError, match="no spatial pair"):
        reductions.run("annual", ds)


def test_netcdf_roundtrip_keeps_cf_attrs(tmp_path, ds):
    out = reductions.run("annual", ds)
    out.to_netcdf(tmp_path / "a.nc")
    back = xr.open_dataset(tmp_path / "a.nc")
    assert back["prcp"].attrs["units"] == "mm"
    assert back.attrs["provenance"] == ds.attrs["provenance"]


def test_progress_is_logged_on_a_distributed_cluster(caplog, monkeypatch):
    import logging
    import time

    from pcflow import compute as compute_mod

    # The interval lives with compute(), in reductions.progress.
    monkeypatch.setattr(reductions.progress, "PROGRESS_INTERVAL", 0.3)
    caplog.set_level(logging.INFO, logger="pcflow")
    ds = daymet_like(years=(2019, 2020), ny=4, nx=3, chunk_days=30)
    slow = ds.map_blocks(lambda b: (time.sleep(0.1), b)[1], template=ds)
    with compute_mod.cluster({"threads": 1}, logging.getLogger("pcflow.test")):
        out = reductions.run("spatial_mean", slow)
    np.testing.assert_allclose(out["tmax"].values, np_series(ds, "tmax"), rtol=RTOL)
    lines = [r.getMessage() for r in caplog.records if "progress after" in r.getMessage()]
    assert lines, caplog.text[-2000:]
    assert "tasks done" in lines[-1] and "1 workers" in lines[-1]


# ----------------------------------------------------------------------------- regions


def lonlat_mask(ds: xr.Dataset, bbox: list[float]) -> np.ndarray:
    lon, lat = ds["lon"].values, ds["lat"].values
    return (lon >= bbox[0]) & (lon <= bbox[2]) & (lat >= bbox[1]) & (lat <= bbox[3])


def test_spatial_mean_over_a_bbox_uses_only_cells_whose_lonlat_is_inside(ds):
    """On the rotated grid a bbox's native window holds cells outside the bbox: they must not
    count. Reference: NumPy over the cells whose 2-D lat/lon lie in the bbox."""
    bbox = [-155.66, 19.83, -155.60, 19.90]
    inside = lonlat_mask(ds, bbox)
    assert 0 < inside.sum() < inside.size  # a real cut of the window
    out = reductions.run("spatial_mean", ds, region=region.from_bbox(bbox))
    for name in ("tmax", "prcp"):
        values = ds[name].values.astype("float64")[:, inside]
        np.testing.assert_allclose(out[name].values, np.nanmean(values, axis=1), rtol=RTOL)
        assert not np.allclose(out[name].values, np_series(ds, name), rtol=1e-4)
    np.testing.assert_array_equal(out["region_mask"].values, inside.astype("int8"))
    assert out.attrs["region"] == f"bbox {bbox}" and out.attrs["region_cells"] == inside.sum()


def test_geojson_region_masks_maps_and_travels_with_the_result(tmp_path, ds):
    from matplotlib.path import Path as MplPath

    ring = [[-155.70, 19.80], [-155.60, 19.86], [-155.62, 19.93], [-155.71, 19.88]]
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
           "geometry": {"type": "Polygon", "coordinates": [ring + [ring[0]]]}}]}  # fmt: skip
    path = tmp_path / "island.geojson"
    path.write_text(json.dumps(doc))
    reg = region.from_config({"bbox": [-156, 19, -155, 20], "region": str(path)}, "d")
    out = reductions.run("annual", ds, region=reg)
    points = np.column_stack([ds["lon"].values.ravel(), ds["lat"].values.ravel()])
    inside = MplPath(ring).contains_points(points).reshape(ds["lon"].shape)
    assert 0 < inside.sum() < inside.size
    np.testing.assert_array_equal(out["region_mask"].values == 1, inside)
    got = out["tmax"].isel(time=0).transpose("y", "x").values
    assert np.isnan(got[~inside]).all()  # maps show only the region
    year = pd.DatetimeIndex(ds["time"].values).year == 2018
    expected = np.nanmean(ds["tmax"].values[year].astype("float64"), 0)
    np.testing.assert_allclose(got[inside], expected[inside], rtol=1e-6)
    out.to_netcdf(tmp_path / "a.nc")  # the mask is stored with the product
    with xr.open_dataset(tmp_path / "a.nc") as back:
        assert back["region_mask"].attrs["region"] == "region island.geojson"


def test_region_outside_the_data_is_a_clear_error(ds):
    with pytest.raises(ValueError, match="no cell centre of the staged data lies in the bbox"):
        reductions.run("spatial_mean", ds, region=region.from_bbox([10.0, 40.0, 11.0, 41.0]))


def test_region_file_errors_name_the_field(tmp_path):
    with pytest.raises(region.RegionError, match=r"datasets.d.region: .*does not exist"):
        region.from_config({"bbox": [0, 0, 1, 1], "region": str(tmp_path / "no.geojson")}, "d")
    point = tmp_path / "p.geojson"
    point.write_text(json.dumps({"type": "Point", "coordinates": [0, 0]}))
    with pytest.raises(region.RegionError, match="holds a Point geometry"):
        region.from_config({"bbox": [0, 0, 1, 1], "region": str(point)}, "d")


# ----------------------------------------------------------------------------- partial periods


def partial_ds() -> xr.Dataset:
    """The issue's case: a 2018-02-17/2020-11-05 run (Daymet calendar)."""
    return daymet_like().sel(time=slice("2018-02-17", "2020-11-05"))


def test_partial_years_are_dropped_by_default():
    ds = partial_ds()
    out = reductions.run("annual", ds)
    assert [str(t)[:4] for t in out["time"].values] == ["2019"]
    assert out.attrs["incomplete_periods"] == (
        "dropped: 2018 (318 of 365 days), 2020 (310 of 365 days)"
    )
    sel = pd.DatetimeIndex(ds["time"].values).year == 2019
    np.testing.assert_allclose(
        out["tmax"].isel(time=0).transpose("y", "x").values,
        np.nanmean(ds["tmax"].values[sel].astype("float64"), 0),
        rtol=1e-6,
    )


def test_partial_years_flagged_when_asked():
    ds = partial_ds()
    out = reductions.run("annual", ds, incomplete="flag")
    assert out.sizes["time"] == 3
    assert out["complete"].values.tolist() == [False, True, False]
    assert out["days"].values.tolist() == [318, 365, 310]  # counted here by hand from the dates
    assert out.attrs["incomplete_periods"].startswith("flagged (kept): 2018 (318 of 365 days)")


def test_partial_months_dropped_from_monthly_anomalies():
    ds = partial_ds()
    out = reductions.run("anomaly_month", ds)
    months = pd.DatetimeIndex(out["time"].values)
    assert months[0] == pd.Timestamp("2018-03-01") and months[-1] == pd.Timestamp("2020-10-01")
    assert "2018-02 (12 of 28 days)" in out.attrs["incomplete_periods"]


def test_incomplete_choice_is_checked(ds):
    with pytest.raises(ValueError, match="incomplete='keep' is not supported; use one of drop"):
        reductions.run("annual", ds, incomplete="keep")


def test_field_climatology_grouping_follows_the_layout(ds, monkeypatch):
    from pcflow.reductions import common
    from pcflow.reductions.series import _flox_options

    # the layout, whatever the size
    monkeypatch.setitem(common.FLOX_MIN_BYTES, "month", 0)
    with xr.set_options(use_flox=True):
        assert _flox_options(ds["tmax"], "month") == {"engine": "numbagg", "method": "map-reduce"}
        # monthly chunks do not hold every group: flox picks the method
        assert _flox_options(ds["tmax"].chunk(time=31), "month") == {"engine": "numbagg"}
        assert _flox_options(ds["tmax"].astype("int32"), "month") == {"method": "map-reduce"}
        short = ds["tmax"].isel(time=slice(0, 400))  # 365 + a 35-day tail: still whole years
        assert _flox_options(short, "month")["method"] == "map-reduce"
    with xr.set_options(use_flox=False):
        assert _flox_options(ds["tmax"], "month") is None  # the kwargs would reach a plain mean


def test_field_climatology_uses_flox_only_where_its_compile_pays(ds):
    import dask.array

    from pcflow.reductions.common import FLOX_MIN_BYTES
    from pcflow.reductions.series import _flox_options

    assert ds["tmax"].nbytes < FLOX_MIN_BYTES["month"]
    assert _flox_options(ds["tmax"], "month") is None  # xarray's own grouping: no JIT compile
    # by day of year xarray's own grouping is the slower one at any size
    assert _flox_options(ds["tmax"], "dayofyear") == {"engine": "numbagg", "method": "map-reduce"}
    days = 365 * 8  # a lazy 8-year 1000x1000 float32 field: 11 GiB, past the threshold
    big = xr.DataArray(
        dask.array.zeros((days, 1000, 1000), chunks=(365, 1000, 1000), dtype="float32"),
        dims=("time", "y", "x"),
        coords={"time": pd.date_range("2001-01-01", periods=days)},
    )
    assert big.nbytes >= FLOX_MIN_BYTES["month"]
    assert _flox_options(big, "month") == {"engine": "numbagg", "method": "map-reduce"}


PERIOD_MAPS_SCRIPT = """
import sys, dask.array, pandas as pd, xarray as xr
from pcflow import reductions
from pcflow.testing.synthetic import daymet_like

small = daymet_like()  # Dask-backed, one-year chunks, like a staged store
assert small["tmax"].chunks is not None
reductions.run("annual", small)
reductions.run("seasonal", small)
small_imported = "flox" in sys.modules
days = 365 * 8  # a lazy 8-year 1000 x 1000 float32 field: 11 GiB, past the season threshold
big = xr.Dataset({"tmax": (("time", "y", "x"), dask.array.zeros(
    (days, 1000, 1000), chunks=(365, 1000, 1000), dtype="float32"))},
    coords={"time": pd.date_range("2001-01-01", periods=days),
            "y": range(1000), "x": range(1000)})
reductions.annual(big)  # lazy: builds the graph only
annual_imported = "flox" in sys.modules
reductions.seasonal(big)
print(small_imported, annual_imported, "flox" in sys.modules)
"""


def test_period_maps_use_flox_only_where_it_pays():
    """annual/seasonal maps of a small Dask field use xarray's own grouping: importing flox
    and compiling numbagg's kernels cost a fresh reduce job ~4 s on a 730 x 50 x 32 field
    (0.5 s without). Annual maps never repay it; seasonal maps of a field past
    FLOX_MIN_BYTES["season"] get flox."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", PERIOD_MAPS_SCRIPT], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-3:] == ["False", "False", "True"]


def _series_with_gaps() -> xr.DataArray:
    t = pd.date_range("2001-01-01", "2006-12-31", freq="D")
    rng = np.random.default_rng(1)
    v = rng.normal(size=t.size).astype("float32")
    v[rng.random(t.size) < 0.1] = np.nan
    v[(t.month == 2) & (t.day == 3)] = np.nan  # one day of year with no data at all
    return xr.DataArray(v, dims="time", coords={"time": t, "band": 1}, name="tmax")


@pytest.mark.parametrize("key", ["time.dayofyear", "time.month"])
@pytest.mark.parametrize("stat", ["mean", "std", "min", "max", 0.1, 0.9])
def test_group_stat_matches_xarrays_groupby(key, stat):
    da = _series_with_gaps()
    with xr.set_options(use_flox=False, use_numbagg=False), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN group
        grouped = da.groupby(key)
        if isinstance(stat, float):
            expected = grouped.quantile(stat, dim="time").drop_vars("quantile")
        else:
            expected = getattr(grouped, stat)("time")
    got = reductions.group_stat(da, key, stat)
    xr.testing.assert_allclose(got, expected, rtol=1e-5)  # float32 sums in another order
    assert got.dtype == expected.dtype
    if key == "time.dayofyear":
        assert np.isnan(got.sel(dayofyear=34))  # Feb 3: NaN, not 0 or a neighbour's value


def test_series_statistics_do_not_loop_over_groups(monkeypatch):
    """A series climatology by day of year reduces 366 groups: xarray's own grouping does each
    separately (~7 s for 20 years, the default `climatology`); the statistics, the anomaly and
    the plot's band must be vectorised instead."""
    from xarray.core.groupby import GroupBy

    from pcflow import plotting

    ds = daymet_like(ny=8, nx=6)
    reductions.run("spatial_mean", ds)  # its groupby-free path, before the trap is set

    def per_group(*args, **kwargs):
        raise AssertionError("grouped one group at a time")

    monkeypatch.setattr(GroupBy, "_iter_grouped", per_group)
    clim = reductions.run("climatology", ds, freq="dayofyear")
    anom = reductions.run("anomaly", ds, freq="dayofyear")
    assert clim.sizes["dayofyear"] == 365 and anom.sizes["time"] == ds.sizes["time"]
    band = plotting._doy_band(reductions.spatial_mean(ds)["tmax"].compute())
    assert band is not None and band[0].shape == (ds.sizes["time"],)
