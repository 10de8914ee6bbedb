"""Defaults live in one place, the schema (pcflow/schema.yaml): staging and the plan read them."""

from __future__ import annotations

import yaml

from pcflow import config, estimate, paths
from pcflow.staging import core


def _schema_staging_defaults() -> dict:
    # Read the file directly, not through pcflow.config (the code under test).
    schema = yaml.safe_load((paths.PACKAGE_DIR / "schema.yaml").read_text())
    props = schema["properties"]["staging"]["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v}


# Keys only the plan's time model reads (pcflow plan), not staging itself.
PLAN_ONLY = {"plan_workers", "rates"}


def test_staging_settings_default_to_the_schema():
    expected = {k: v for k, v in _schema_staging_defaults().items() if k not in PLAN_ONLY}
    assert expected  # the schema does define staging defaults
    settings = core._settings({})
    assert {k: settings[k] for k in expected} == expected


def test_staging_settings_follow_a_changed_schema(monkeypatch):
    changed = {**_schema_staging_defaults(), "chunk_mb": 7, "memory_mb": 99}
    monkeypatch.setattr(core, "config_defaults", lambda section: changed)
    settings = core._settings({})
    assert settings["chunk_mb"] == 7 and settings["memory_mb"] == 99


def test_plan_layout_defaults_to_the_schema():
    dims, shape = ("time", "y", "x"), (730, 200, 300)
    explicit = estimate._target_layout("tmax", dims, shape, 4, _schema_staging_defaults())
    assert estimate._target_layout("tmax", dims, shape, 4, {}) == explicit


def _schema_rates_defaults() -> dict:
    schema = yaml.safe_load((paths.PACKAGE_DIR / "schema.yaml").read_text())
    props = schema["properties"]["staging"]["properties"]["rates"]["properties"]
    return {k: v["default"] for k, v in props.items()}


def test_time_model_rates_and_workers_default_to_the_schema():
    rates = _schema_rates_defaults()
    props = {"plan_workers": {"default": _schema_staging_defaults()["plan_workers"]}}
    assert set(rates) == {"read_MBps", "write_MBps", "codec_MBps", "request_ms", "fixed_s"}
    est = {"bytes_read": 1e9, "bytes_write": 1e9, "regions": 4, "source_chunks": 10}
    tm = estimate.time_model(est, {})
    assert tm["rates"] == rates
    assert sorted(int(n) for n in tm["wall_s"]) == props["plan_workers"]["default"]
    # A partial override keeps the other defaults.
    assert estimate.time_model(est, {"rates": {"read_MBps": 5}})["rates"] == {
        **rates,
        "read_MBps": 5,
    }


def test_validation_fills_the_schema_defaults():
    validated = config.validate(
        {
            "stac_api": "http://127.0.0.1:1",
            "target": {"account_name": "acct", "container": "box"},
            "datasets": {
                "d": {
                    "collection": "c",
                    "kind": "zarr",
                    "asset": "a",
                    "bbox": [0, 0, 1, 1],
                    "datetime": "2020-01-01/2020-01-02",
                }
            },
        }
    )
    expected = _schema_staging_defaults()
    expected["rates"] = _schema_rates_defaults()  # nested defaults are filled too
    assert validated["staging"] == expected
