"""Plots: non-empty PNGs whose Figure carries the expected titles, axis labels and colorbars."""

from __future__ import annotations

import numpy as np
import pytest

from pcflow import plotting, reductions
from pcflow.testing.synthetic import daymet_like, s2_cube

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
CTX = {"dataset": "daymet-hi"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ds():
    return daymet_like(ny=8, nx=6)


def _png_ok(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5000


def _visible(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_spatial_mean_series_with_climatology_band(tmp_path, ds):
    result = reductions.run("spatial_mean", ds)
    fig = plotting.plot("spatial_mean", result, tmp_path / "f.png", CTX)
    _png_ok(tmp_path / "f.png")
    axes = _visible(fig)
    assert len(axes) == 2
    title = axes[0].get_title()
    assert title.startswith("daymet-hi: daily maximum temperature [degrees C]")
    assert "2018-01-01 to 2020-12-30" in title
    assert axes[0].get_ylabel() == "tmax [degrees C]"
    assert axes[1].get_ylabel() == "prcp [mm/day]"
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert labels == ["climatology 10-90 %", "spatial mean"]
    # the plotted line is the series itself
    np.testing.assert_allclose(axes[0].lines[0].get_ydata(), result["tmax"].values)


def test_climatology_band_figure(tmp_path, ds):
    result = reductions.run("climatology_month", ds)
    fig = plotting.plot("climatology_month", result, tmp_path / "c.png", CTX)
    _png_ok(tmp_path / "c.png")
    ax = _visible(fig)[0]
    assert ax.get_xlabel() == "month"
    assert "(3 years)" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["min-max", "10-90 %", "mean"]


def test_anomaly_bars_and_heat_strip(tmp_path, ds):
    bars = plotting.plot("anomaly", reductions.run("anomaly", ds), tmp_path / "a.png", CTX)
    _png_ok(tmp_path / "a.png")
    ax = _visible(bars)[0]
    assert len(ax.patches) == 36  # one bar per month
    assert ax.get_ylabel() == "tmax [degrees C]"
    assert "daily maximum temperature anomaly [degrees C]" in ax.get_title()
    strip = plotting.plot(
        "anomaly_dayofyear", reductions.run("anomaly_dayofyear", ds), tmp_path / "d.png", CTX
    )
    _png_ok(tmp_path / "d.png")
    ax = _visible(strip)[0]
    assert len(ax.images) == 1 and ax.images[0].get_array().shape == (1, ds.sizes["time"])
    cbar_labels = [a.get_ylabel() for a in strip.axes if a.get_label() == "<colorbar>"]
    assert "tmax [degrees C]" in cbar_labels


def test_annual_maps_in_projected_km_with_crs_title(tmp_path, ds):
    result = reductions.run("annual", ds)
    fig = plotting.plot("annual", result, tmp_path / "m.png", CTX)
    _png_ok(tmp_path / "m.png")
    axes = _visible(fig)
    assert [a.get_title() for a in axes] == [
        "tmax 2018",
        "tmax 2019",
        "tmax 2020",
        "prcp 2018",
        "prcp 2019",
        "prcp 2020",
    ]
    assert axes[0].get_xlabel() == "x [km]" and axes[0].get_ylabel() == "y [km]"
    sup = fig.get_suptitle()
    assert sup.startswith("daymet-hi: annual aggregates of tmax, prcp on lambert conformal conic")
    assert sup.endswith("2018-01-01 to 2020-12-30")
    cbar = [a.get_ylabel() for a in fig.axes if a.get_label() == "<colorbar>"]
    assert any(label.endswith("[mm]") for label in cbar)  # precipitation totals
    # x extent in km matches the grid
    xmin, xmax = axes[0].get_xlim()
    assert xmin <= ds.x.values.min() / 1000 and xmax >= ds.x.values.max() / 1000


def test_latlon_maps_label_degrees(tmp_path):
    import pandas as pd
    import xarray as xr

    ds = xr.Dataset(
        {
            "t2m": (
                ("time", "lat", "lon"),
                np.random.default_rng(0).normal(size=(400, 3, 4)),
                {"units": "K", "long_name": "2 m temperature"},
            )
        },
        coords={
            "time": pd.date_range("2001-01-01", periods=400),
            "lat": [10.0, 20, 30],
            "lon": [0.0, 1, 2, 3],
        },
    )
    fig = plotting.plot("seasonal", reductions.run("seasonal", ds), tmp_path / "s.png", CTX)
    ax = _visible(fig)[0]
    assert ax.get_xlabel() == "longitude [degrees_east]"
    assert ax.get_ylabel() == "latitude [degrees_north]"


def test_ndvi_composite_maps(tmp_path):
    result = reductions.run("ndvi_monthly", s2_cube())
    fig = plotting.plot("ndvi_monthly", result, tmp_path / "n.png", {"dataset": "s2"})
    _png_ok(tmp_path / "n.png")
    axes = _visible(fig)
    assert [a.get_title() for a in axes] == ["ndvi 2021-06", "ndvi 2021-07"]
    assert fig.get_suptitle().startswith("s2: NDVI monthly median composite of ndvi")
    mesh = axes[0].collections[0]
    assert mesh.get_clim() == (-0.2, 1.0)


def test_unknown_name_is_an_error(tmp_path, ds):
    with pytest.raises(ValueError, match="unknown"):
        plotting.plot("nope", reductions.run("spatial_mean", ds), tmp_path / "x.png", CTX)


@pytest.mark.parametrize("name", reductions.available())
def test_report_caption_renders_for_every_reduction(name):
    """report/reduction.rst, rendered as Snakemake does (Jinja2, then docutils to HTML)."""
    from pathlib import Path
    from types import SimpleNamespace

    import jinja2
    from docutils.core import publish_parts

    template = (Path(__file__).parents[2] / "report" / "reduction.rst").read_text()
    snakemake = SimpleNamespace(
        wildcards=SimpleNamespace(reduction=name, dataset="daymet-hi"),
        config={
            "datasets": {
                "daymet-hi": {"collection": "daymet-daily-hi", "datetime": "2019-01-01/2020-12-31"}
            }
        },
    )
    rst = jinja2.Environment().from_string(template).render(snakemake=snakemake)
    html = publish_parts(rst, writer="html", settings_overrides={"halt_level": 2})["body"]
    assert "daymet-daily-hi (2019-01-01 to 2020-12-31)" in html
    assert html.lstrip().startswith("<p><strong>")  # a kind-specific text, not the fallback


def test_maps_outline_the_region_and_say_what_was_dropped(tmp_path):
    from pcflow import region

    ds = daymet_like(ny=8, nx=6).sel(time=slice("2018-02-17", "2020-11-05"))
    bbox = [-155.69, 19.83, -155.60, 19.90]
    result = reductions.run("annual", ds, region=region.from_bbox(bbox))
    fig = plotting.plot("annual", result, tmp_path / "m.png", CTX)
    _png_ok(tmp_path / "m.png")
    axes = _visible(fig)
    # One outline (a contour of the region mask) on every map panel.
    assert all(len(ax.collections) >= 2 for ax in axes)  # the mesh and the outline
    sup = fig.get_suptitle()
    cells = int(result["region_mask"].sum())
    assert f"cells in bbox {bbox} ({cells})" in sup
    assert "partial periods dropped: 2018 (318 of 365 days), 2020 (310 of 365 days)" in sup
    assert "region_mask" not in " ".join(a.get_title() for a in axes)


def test_flagged_partial_years_are_labelled_on_their_panels(tmp_path):
    ds = daymet_like(ny=8, nx=6).sel(time=slice("2018-02-17", "2020-11-05"))
    result = reductions.run("annual", ds, incomplete="flag")
    fig = plotting.plot("annual", result, tmp_path / "m.png", CTX)
    titles = [a.get_title() for a in _visible(fig)]
    assert titles[:3] == ["tmax 2018 (partial: 318 d)", "tmax 2019", "tmax 2020 (partial: 310 d)"]
    assert "partial periods flagged (kept)" in fig.get_suptitle()
