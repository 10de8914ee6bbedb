"""Load and check the workflow configuration, failing with one line that names the field and fix."""

from __future__ import annotations

import copy
import functools
import math
import os
import re
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import yaml

# The schema ships inside the package (also when installed as a wheel): the one copy.
SCHEMA_RESOURCE = "schema.yaml"
STAC_API_ENV = "PCFLOW_STAC_API"

# Key names that hold secrets (matched on the parts of a key split at _ - . : and on the whole
# key without separators). Secrets come from the environment only: a config is copied into
# manifests, STAC, Zarr attributes and job specs.
SECRET_WORDS = {"password", "passwd", "pwd", "token", "secret", "key", "sas", "sig"}
SECRET_WORDS |= {"signature", "credential", "credentials", "apikey", "accountkey"}
SECRET_JOINED = ("connectionstring", "subscriptionkey", "apikey", "accountkey", "sastoken")
# Where each kind of secret goes instead (named in the error's fix).
SECRET_ENV_HINTS = (
    ("subscription", "PC_SDK_SUBSCRIPTION_KEY"),
    ("connection", "PCFLOW_TARGET_CONNECTION_STRING"),
    ("sas", "PCFLOW_TARGET_SAS_TOKEN"),
    ("sig", "PCFLOW_TARGET_SAS_TOKEN"),
    ("password", "DASK_GATEWAY__AUTH__KWARGS__PASSWORD"),
    ("token", "JUPYTERHUB_API_TOKEN (gateway) or KBATCH_TOKEN (kbatch)"),
    ("key", "PCFLOW_TARGET_ACCOUNT_KEY (storage) or PC_SDK_SUBSCRIPTION_KEY (Planetary Computer)"),
)
SECRET_QUERY = {"subscription-key", "subscription_key", "sig", "token", "access_token", "code"}
# Free-form mappings whose keys are data (STAC properties, CQL2), not settings.
FREE_FORM = {"query", "filter"}
PREFIX_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


class ConfigError(ValueError):
    """A configuration problem; str() is one line naming the field and the fix."""

    def __init__(self, field: str, problem: str, fix: str) -> None:
        super().__init__(f"config error at {field}: {problem} — {fix}")
        self.field = field


def load_schema(path: Path | None = None) -> dict[str, Any]:
    """The config schema: pcflow's own (package data), or the one at `path` (a fresh copy)."""
    if path:
        return yaml.safe_load(path.read_text())
    return copy.deepcopy(_packaged_schema())


@functools.cache
def _packaged_schema() -> dict[str, Any]:
    # Parsed once per process: defaults() is asked per variable by the plan and the estimate.
    return yaml.safe_load(resources.files("pcflow").joinpath(SCHEMA_RESOURCE).read_text())


def defaults(section: str, *path: str) -> dict[str, Any]:
    """The schema's defaults for one section (e.g. "staging", or "staging", "rates" for a nested
    one): the one place they live.

    For code that takes a section without the validated config around it (library use, bench)."""
    node = load_schema()["properties"][section]
    for key in path:
        node = node["properties"][key]
    props = node.get("properties", {})
    return {k: copy.deepcopy(v["default"]) for k, v in props.items() if "default" in v}


# A size guard: a bbox bigger than this (square degrees) is refused unless raised on purpose.
MAX_AREA_DEG2 = float(defaults("staging")["max_area_deg2"])


def _field(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


# Readable forms for pattern errors (jsonschema would print the raw regex).
PATTERN_FIXES = {
    "stac_api": (
        "is not an http(s) URL",
        "give the STAC API root, e.g. https://planetarycomputer.microsoft.com/api/stac/v1",
    ),
    "account_name": (
        "is not a storage account name",
        "use 3-24 lowercase letters and digits, e.g. myaccount",
    ),
    "container": (
        "is not a container name",
        "use 3-63 lowercase letters, digits and single '-', e.g. pcflow",
    ),
    "datetime": (
        "is not a closed date range",
        "write START/END as YYYY-MM-DD/YYYY-MM-DD (open ranges with '..' are not supported)",
    ),
}
FIX_BY_VALIDATOR = {
    "minProperties": "add at least one entry (see config/README.md)",
    "minItems": "give at least one item (see config/README.md)",
    "minLength": "give a non-empty value (see config/README.md)",
    "type": "give a value of that type (see config/README.md)",
    "minimum": "use a larger number (see config/README.md)",
    "exclusiveMinimum": "use a positive number (see config/README.md)",
    "maxItems": "give [west, south, east, north]",
    "uniqueItems": "list each entry once",
}


def _schema_error(error: jsonschema.ValidationError) -> ConfigError:
    field = _field(error.absolute_path)
    if error.validator == "pattern" and "propertyNames" in error.schema_path:
        return ConfigError(
            f"{field}.{error.instance}",
            f"dataset name {error.instance!r} is not allowed",
            "use lowercase letters, digits and '-' (it becomes a file name and a wildcard)",
        )
    if field.endswith(".bbox") and error.validator in ("minItems", "maxItems"):
        return ConfigError(field, error.message, "give [west, south, east, north]")
    if error.validator == "pattern":
        last = str(error.absolute_path[-1]) if error.absolute_path else ""
        problem, fix = PATTERN_FIXES.get(last, ("has the wrong form", "see config/README.md"))
        return ConfigError(field, f"{error.instance!r} {problem}", fix)
    if error.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", error.message)
        if missing:
            field = missing.group(1) if field == "(top level)" else f"{field}.{missing.group(1)}"
        return ConfigError(field, error.message, "add it (see config/README.md)")
    if error.validator in FIX_BY_VALIDATOR:
        return ConfigError(field, error.message, FIX_BY_VALIDATOR[error.validator])
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
        for part in (start, end):
            if len(part) > 10:  # the time part too (datetime parses "T25:00" as an error)
                datetime.fromisoformat(part.replace("Z", "+00:00"))
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


def _check_bbox(field: str, bbox: list[float], max_area: float = MAX_AREA_DEG2) -> None:
    if not all(math.isfinite(v) for v in bbox):
        raise ConfigError(field, f"{bbox} has a non-finite value", "give four finite numbers")
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
    area = (east - west) * (north - south)
    if area > max_area:
        raise ConfigError(
            field,
            f"{bbox} covers {area:.0f} square degrees, "
            f"more than staging.max_area_deg2={max_area:g}",
            "shrink the bbox, or raise staging.max_area_deg2 after `pcflow plan` shows the size",
        )


def _check_dataset(name: str, ds: dict[str, Any], max_area: float = MAX_AREA_DEG2) -> None:
    base = f"datasets.{name}"
    _check_bbox(f"{base}.bbox", ds["bbox"], max_area)
    _check_dates(f"{base}.datetime", ds["datetime"])
    _check_reductions(f"{base}.reductions", ds["reductions"])
    if "crs" in ds:
        _check_crs(f"{base}.crs", ds["crs"])
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


def _check_reductions(field: str, names: list[str]) -> None:
    from pcflow import reductions  # here: keeps `import pcflow.config` light

    for i, name in enumerate(names):
        try:
            reductions.resolve(name)
        except ValueError:
            raise ConfigError(
                f"{field}[{i}]",
                f"{name!r} is not a reduction",
                f"use one of: {', '.join(reductions.available())}",
            ) from None


def _check_crs(field: str, crs: str) -> None:
    import pyproj

    try:
        pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError:
        raise ConfigError(
            field, f"{crs!r} is not a known CRS", "give an EPSG code, e.g. EPSG:32605"
        ) from None


def _is_secret_key(key: str) -> bool:
    parts = {p for p in re.split(r"[_\-.:\s]+", key.lower()) if p}
    joined = re.sub(r"[_\-.:\s]+", "", key.lower())
    return bool(parts & SECRET_WORDS) or any(word in joined for word in SECRET_JOINED)


def _secret_fix(key: str) -> str:
    lowered = key.lower()
    env = next((env for word, env in SECRET_ENV_HINTS if word in lowered), SECRET_ENV_HINTS[-1][1])
    return f"remove it from the file and set it in the environment ({env}); see config/README.md"


def check_no_secrets(node: Any, path: tuple[str, ...] = ()) -> None:
    """Refuse any key named like a secret, anywhere, and URLs carrying credentials."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = (*path, str(key))
            if path and path[-1] in FREE_FORM:
                continue  # STAC property names and CQL2 operators are data, not settings
            if path != ("datasets",) and _is_secret_key(str(key)):  # dataset names are names
                raise ConfigError(
                    ".".join(here), "secrets must not be in the config file", _secret_fix(str(key))
                )
            check_no_secrets(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_no_secrets(value, (*path[:-1], f"{path[-1]}[{i}]") if path else (f"[{i}]",))
    elif isinstance(node, str) and "://" in node:
        _check_url_credentials(".".join(path) or "(top level)", node)


def _check_url_credentials(field: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.password or parts.username:
        raise ConfigError(
            field,
            "the URL carries user:password@",
            "remove the credentials from the URL and set them in the environment",
        )
    names = {name.lower() for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    leaked = sorted(names & SECRET_QUERY)
    if leaked:
        env = "PC_SDK_SUBSCRIPTION_KEY" if "subscription" in leaked[0] else "the environment"
        raise ConfigError(
            field,
            f"the URL carries a secret query parameter ({leaked[0]}=)",
            f"drop the query string and set the key in {env}",
        )


def _check_paths(config: dict[str, Any]) -> None:
    results = config.get("results", "results")
    if not str(results).strip() or Path(str(results)).resolve() == Path("/"):
        raise ConfigError(
            "results",
            f"{results!r} would put outputs at the filesystem root",
            "give a folder, e.g. results",
        )
    prefix = str(config["target"].get("prefix", "pcflow"))
    parts = prefix.strip("/").split("/")
    if prefix.startswith("/") or not all(PREFIX_PART.match(p) and p != ".." for p in parts):
        raise ConfigError(
            "target.prefix",
            f"{prefix!r} is not a plain folder path inside the container",
            "use letters, digits, '.', '_', '-' and '/' between parts, no '..' (e.g. pcflow/runs)",
        )


def validate(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate config (schema + meaning), fill defaults and env overrides; return a new dict.

    Every check runs before anything is written; the first problem is raised as a ConfigError
    whose message is one line naming the field and the fix.
    """
    schema = schema or load_schema()
    if not isinstance(config, dict):
        raise ConfigError(
            "(top level)", "the config is not a mapping", "see config/demo.yaml for the form"
        )
    config = copy.deepcopy(config)
    check_no_secrets(config)
    validator = jsonschema.Draft7Validator(schema)
    # The file's own value is checked even when the environment overrides it ...
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise _schema_error(errors[0])
    if os.environ.get(STAC_API_ENV):
        # ... and so is the override, named as what it is.
        override = os.environ[STAC_API_ENV]
        if not re.match(schema["properties"]["stac_api"]["pattern"], override):
            raise ConfigError(
                f"{STAC_API_ENV} (overrides stac_api)",
                f"{override!r} is not an http(s) URL",
                f"fix or unset {STAC_API_ENV}",
            )
        _check_url_credentials(f"{STAC_API_ENV} (overrides stac_api)", override)
        config["stac_api"] = override
    _apply_defaults(config, schema)
    _check_paths(config)
    max_area = float(config["staging"].get("max_area_deg2", MAX_AREA_DEG2))
    for name, ds in config["datasets"].items():
        _check_dataset(name, ds, max_area)
    return config


def read(path: str | Path) -> Any:
    """A YAML config file's content; a syntax error is one line naming the file and the line."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ConfigError(
            f"(file {path}, {where})",
            f"not valid YAML: {problem}",
            "fix the syntax there (indentation, a missing ':' or an unclosed quote/bracket)",
        ) from None
    except OSError as err:
        raise ConfigError(
            f"(file {path})", f"cannot be read ({err.strerror})", "check the --configfile path"
        ) from None


def load(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    return validate(read(path))
