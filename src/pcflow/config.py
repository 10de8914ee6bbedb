"""Load and check the workflow configuration, failing with one line that names the field and fix."""

from __future__ import annotations

import copy
import os
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
STAC_API_ENV = "PCFLOW_STAC_API"


class ConfigError(ValueError):
    """A configuration problem; str() is one line naming the field and the fix."""

    def __init__(self, field: str, problem: str, fix: str) -> None:
        super().__init__(f"config error at {field}: {problem} — {fix}")
        self.field = field


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _field(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _schema_error(error: jsonschema.ValidationError) -> ConfigError:
    field = _field(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unexpected = sorted(set(error.instance) - set(allowed))
        if unexpected:
            prefix = "" if field == "(top level)" else field + "."
            field = prefix + unexpected[0]
        hint = f"remove it or use one of: {', '.join(allowed)}" if allowed else "remove it"
        return ConfigError(field, error.message, hint + " (see config/README.md)")
    if error.validator == "required":
        return ConfigError(field, error.message, "add it (see config/README.md)")
    if error.validator == "enum":
        return ConfigError(field, error.message, f"use one of {error.validator_value}")
    return ConfigError(field, error.message, "see config/README.md for the expected form")


def _apply_defaults(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """Fill schema defaults in place (objects only; arrays are left as given)."""
    for key, sub in schema.get("properties", {}).items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if isinstance(config.get(key), dict):
            _apply_defaults(config[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra.get("type") == "object":
        for key, value in config.items():
            if key not in schema.get("properties", {}) and isinstance(value, dict):
                _apply_defaults(value, extra)


def _check_dates(field: str, interval: str) -> None:
    start, end = interval.split("/")
    try:
        start_d, end_d = date.fromisoformat(start[:10]), date.fromisoformat(end[:10])
    except ValueError as err:
        raise ConfigError(
            field,
            f"{interval!r} is not a valid date range ({err})",
            "write START/END as YYYY-MM-DD/YYYY-MM-DD",
        ) from None
    if start_d > end_d:
        raise ConfigError(
            field, f"start {start[:10]} is after end {end[:10]}", "swap them so that START <= END"
        )


def _check_bbox(field: str, bbox: list[float]) -> None:
    west, south, east, north = bbox
    if not (
        -180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90
    ):
        raise ConfigError(
            field,
            f"{bbox} is not in lon/lat degrees",
            "give [west, south, east, north] in WGS84 degrees",
        )
    if west >= east or south >= north:
        raise ConfigError(
            field,
            f"{bbox} has west >= east or south >= north",
            "give [west, south, east, north] with west < east and south < north",
        )


def _check_dataset(name: str, ds: dict[str, Any]) -> None:
    base = f"datasets.{name}"
    _check_bbox(f"{base}.bbox", ds["bbox"])
    _check_dates(f"{base}.datetime", ds["datetime"])
    if ds.get("region"):
        from pcflow import region

        try:
            region.from_config(ds, name)
        except region.RegionError as err:
            raise ConfigError(err.field, err.problem, err.fix) from None
    if ds["kind"] == "zarr" and "asset" not in ds:
        raise ConfigError(
            f"{base}.asset",
            "kind zarr needs the collection asset to read",
            "add e.g. `asset: zarr-abfs`",
        )
    if ds["kind"] == "cog":
        for key, example in (
            ("assets", "[B04, B08, SCL]"),
            ("crs", "EPSG:32605"),
            ("resolution", "10"),
        ):
            if key not in ds:
                raise ConfigError(
                    f"{base}.{key}", f"kind cog needs {key}", f"add e.g. `{key}: {example}`"
                )


def validate(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate config (schema + meaning), fill defaults and env overrides; return a new dict."""
    schema = schema or load_schema()
    config = copy.deepcopy(config)
    if os.environ.get(STAC_API_ENV):
        config["stac_api"] = os.environ[STAC_API_ENV]
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise _schema_error(errors[0])
    _apply_defaults(config, schema)
    for name, ds in config["datasets"].items():
        _check_dataset(name, ds)
    return config


def load(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    return validate(yaml.safe_load(Path(path).read_text()))
