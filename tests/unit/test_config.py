"""Config validation: every bad input fails with one line naming the field and a fix."""

import copy

import pytest
import yaml

from pcflow.config import ConfigError, validate

DEMO = yaml.safe_load(open("config/demo.yaml"))


def mutated(fn):
    cfg = copy.deepcopy(DEMO)
    fn(cfg)
    return cfg


def test_demo_config_is_valid_and_gets_defaults():
    cfg = validate(DEMO)
    assert cfg["datasets"]["daymet-hi"]["signing"] == "planetary-computer"
    assert cfg["results"] == "results"
    assert cfg["target"]["region"] == "westeurope"


@pytest.mark.parametrize(
    ("mutation", "field", "words"),
    [
        (lambda c: c.update(colour="blue"), "colour", "remove it"),
        (
            lambda c: c["datasets"]["daymet-hi"].update(bboxx=[0, 0, 1, 1]),
            "datasets.daymet-hi.bboxx",
            "remove it",
        ),
        (
            lambda c: c["datasets"]["daymet-hi"].update(datetime="2021-01-01/2020-01-01"),
            "datasets.daymet-hi.datetime",
            "START <= END",
        ),
        (
            lambda c: c["datasets"]["daymet-hi"].update(datetime="2020-13-01/2021-01-01"),
            "datasets.daymet-hi.datetime",
            "YYYY-MM-DD",
        ),
        (
            lambda c: c["datasets"]["daymet-hi"].update(bbox=[10, 0, 5, 1]),
            "datasets.daymet-hi.bbox",
            "west < east",
        ),
        (
            lambda c: c["datasets"]["daymet-hi"].update(bbox=[0, 0, 500, 1]),
            "datasets.daymet-hi.bbox",
            "WGS84",
        ),
        (
            lambda c: c["datasets"]["daymet-hi"].update(kind="netcdf"),
            "datasets.daymet-hi.kind",
            "use one of",
        ),
        (
            lambda c: c["datasets"]["daymet-hi"].pop("asset"),
            "datasets.daymet-hi.asset",
            "zarr-abfs",
        ),
        (lambda c: c["target"].pop("container"), "target.container", "add it"),
        (
            lambda c: c["target"].update(account_name="Bad_Name"),
            "target.account_name",
            "lowercase letters and digits",
        ),
        (lambda c: c.update(stac_api="ftp://x"), "stac_api", "STAC API root"),
    ],
)
def test_bad_config_fails_with_one_line_naming_field(mutation, field, words):
    with pytest.raises(ConfigError) as info:
        validate(mutated(mutation))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config error at {field}:")
    assert words in message


def test_cog_dataset_needs_assets_crs_resolution():
    def add_cog(c):
        c["datasets"]["s2"] = {
            "collection": "sentinel-2-l2a",
            "kind": "cog",
            "bbox": [-155.2, 19.6, -155.0, 19.8],
            "datetime": "2020-06-01/2020-08-31",
        }

    with pytest.raises(ConfigError, match=r"datasets\.s2\.assets"):
        validate(mutated(add_cog))


def test_env_overrides_stac_api(monkeypatch):
    monkeypatch.setenv("PCFLOW_STAC_API", "http://127.0.0.1:1/stac")
    assert validate(DEMO)["stac_api"] == "http://127.0.0.1:1/stac"


def test_region_file_is_checked_with_one_line(tmp_path):
    import json

    cfg = copy.deepcopy(DEMO)
    ds = cfg["datasets"]["daymet-hi"]
    ds["region"] = str(tmp_path / "missing.geojson")
    with pytest.raises(ConfigError, match=r"datasets.daymet-hi.region: .*does not exist") as err:
        validate(cfg)
    assert "\n" not in str(err.value)
    west, south, east, north = ds["bbox"]
    ring = [[west - 1, south], [east, south], [east, north], [west - 1, south]]
    path = tmp_path / "big.geojson"
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [ring]}))
    ds["region"] = str(path)
    with pytest.raises(ConfigError, match="reaches beyond the dataset's bbox.*widen bbox"):
        validate(cfg)
    inside = [[west, south], [east, south], [east, north], [west, south]]
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [inside]}))
    assert validate(cfg)["datasets"]["daymet-hi"]["region"] == str(path)


def test_reductions_incomplete_default_and_choices():
    assert validate(DEMO)["reductions_incomplete"] == "drop"
    with pytest.raises(ConfigError, match="reductions_incomplete.*one of"):
        validate({**DEMO, "reductions_incomplete": "keep"})
