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


def test_staging_settings_default_to_the_schema():
    expected = _schema_staging_defaults()
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
    assert validated["staging"] == _schema_staging_defaults()
