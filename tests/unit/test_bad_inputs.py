"""The bad-input table: each malformed config fails in `validate` (before anything is written)
with one line naming the field and the fix; a few rows go through `snakemake -n` to show that
the line reaches the user. docs/reliability.md `## Bad inputs` lists the same rows."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pcflow.config import ConfigError, read, validate

REPO = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def _set(path: str, value):
    """A mutation that sets (or with value=DELETE removes) a dotted key."""

    def apply(cfg):
        *parents, last = path.split(".")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(last)
        else:
            node[last] = value

    return apply


DELETE = object()
ZARR = "datasets.daymet-hi"
COG = "datasets.s2-hilo"


def _rename_dataset(new):
    def apply(cfg):
        cfg["datasets"][new] = cfg["datasets"].pop("daymet-hi")

    return apply


# (id, mutation, env, field named in the message, words of the fix)
TABLE = [
    ("no-reductions", _set(f"{ZARR}.reductions", []), {}, f"{ZARR}.reductions", "at least one"),
    ("results-empty", _set("results", ""), {}, "results", "non-empty"),
    ("results-root", _set("results", "/"), {}, "results", "give a folder"),
    (
        "stac-api-bad-under-env",
        _set("stac_api", "ftp://x"),
        {"PCFLOW_STAC_API": "http://127.0.0.1:1"},
        "stac_api",
        "STAC API root",
    ),
    (
        "stac-api-env-bad",
        lambda c: None,
        {"PCFLOW_STAC_API": "127.0.0.1:10010"},
        "PCFLOW_STAC_API (overrides stac_api)",
        "unset PCFLOW_STAC_API",
    ),
    (
        "stac-api-env-secret",
        lambda c: None,
        {"PCFLOW_STAC_API": "https://pc.example/api/stac/v1?subscription-key=abcdef0123456789"},
        "PCFLOW_STAC_API (overrides stac_api)",
        "PC_SDK_SUBSCRIPTION_KEY",
    ),
    ("verify-sample-1", _set("staging.verify_sample", 1), {}, "staging.verify_sample", "larger"),
    ("verify-sample-0", _set("staging.verify_sample", 0), {}, "staging.verify_sample", "larger"),
    (
        "unknown-reduction",
        _set(f"{ZARR}.reductions", ["spatial_mean", "median_yearly"]),
        {},
        f"{ZARR}.reductions[1]",
        "use one of: annual",
    ),
    (
        "reduction-dotdot",
        _set(f"{ZARR}.reductions", ["../etc"]),
        {},
        f"{ZARR}.reductions[0]",
        "use one of",
    ),
    (
        "duplicate-reduction",
        _set(f"{ZARR}.reductions", ["annual", "annual"]),
        {},
        f"{ZARR}.reductions",
        "each entry once",
    ),
    (
        "datetime-bad-time",
        _set(f"{ZARR}.datetime", "2019-01-01T25:00:00Z/2020-12-31"),
        {},
        f"{ZARR}.datetime",
        "YYYY-MM-DD",
    ),
    (
        "datetime-open-range",
        _set(f"{ZARR}.datetime", "2019-01-01/.."),
        {},
        f"{ZARR}.datetime",
        "open ranges",
    ),
    (
        "datetime-reversed",
        _set(f"{ZARR}.datetime", "2021-01-01/2020-01-01"),
        {},
        f"{ZARR}.datetime",
        "START <= END",
    ),
    (
        "datetime-bad-month",
        _set(f"{ZARR}.datetime", "2020-13-01/2021-01-01"),
        {},
        f"{ZARR}.datetime",
        "YYYY-MM-DD",
    ),
    ("prefix-dotdot", _set("target.prefix", "../other"), {}, "target.prefix", "no '..'"),
    ("prefix-absolute", _set("target.prefix", "/abs/path"), {}, "target.prefix", "no '..'"),
    ("prefix-inner-dotdot", _set("target.prefix", "a/../../b"), {}, "target.prefix", "no '..'"),
    ("crs-unknown", _set(f"{COG}.crs", "EPSG:99999999"), {}, f"{COG}.crs", "EPSG code"),
    ("crs-garbage", _set(f"{COG}.crs", "UTM zone five"), {}, f"{COG}.crs", "EPSG code"),
    (
        "bbox-whole-globe",
        _set(f"{ZARR}.bbox", [-180, -90, 180, 90]),
        {},
        f"{ZARR}.bbox",
        "staging.max_area_deg2",
    ),
    (
        "bbox-non-numeric",
        _set(f"{ZARR}.bbox", ["west", 19.5, -155.4, 19.7]),
        {},
        f"{ZARR}.bbox.0",
        "of that type",
    ),
    (
        "bbox-nan",
        _set(f"{ZARR}.bbox", [math.nan, 19.5, -155.4, 19.7]),
        {},
        f"{ZARR}.bbox",
        "finite",
    ),
    (
        "bbox-three-numbers",
        _set(f"{ZARR}.bbox", [-155.6, 19.5, -155.4]),
        {},
        f"{ZARR}.bbox",
        "west, south, east, north",
    ),
    (
        "bbox-swapped",
        _set(f"{ZARR}.bbox", [-155.4, 19.5, -155.6, 19.7]),
        {},
        f"{ZARR}.bbox",
        "west < east",
    ),
    (
        "bbox-not-degrees",
        _set(f"{ZARR}.bbox", [500000, 2100000, 510000, 2110000]),
        {},
        f"{ZARR}.bbox",
        "WGS84",
    ),
    ("datasets-empty", _set("datasets", {}), {}, "datasets", "at least one"),
    ("dataset-name-slash", _rename_dataset("daymet/hi"), {}, "datasets.daymet/hi", "lowercase"),
    ("dataset-name-space", _rename_dataset("daymet hi"), {}, "datasets.daymet hi", "lowercase"),
    ("dataset-name-unicode", _rename_dataset("daymét"), {}, "datasets.daymét", "lowercase"),
    ("dataset-name-dotdot", _rename_dataset(".."), {}, "datasets...", "lowercase"),
    ("chunk-mb-negative", _set("staging.chunk_mb", -5), {}, "staging.chunk_mb", "positive"),
    ("concurrency-zero", _set("staging.concurrency", 0), {}, "staging.concurrency", "larger"),
    ("resolution-negative", _set(f"{COG}.resolution", -10), {}, f"{COG}.resolution", "positive"),
    ("memory-mb-string", _set("staging.memory_mb", "1GB"), {}, "staging.memory_mb", "of that type"),
    ("missing-target", _set("target", DELETE), {}, "target", "add it"),
    ("missing-datasets", _set("datasets", DELETE), {}, "datasets", "add it"),
    ("missing-stac-api", _set("stac_api", DELETE), {}, "stac_api", "add it"),
    ("missing-container", _set("target.container", DELETE), {}, "target.container", "add it"),
    ("missing-bbox", _set(f"{ZARR}.bbox", DELETE), {}, f"{ZARR}.bbox", "add it"),
    ("cog-missing-crs", _set(f"{COG}.crs", DELETE), {}, f"{COG}.crs", "EPSG:32605"),
    ("zarr-missing-asset", _set(f"{ZARR}.asset", DELETE), {}, f"{ZARR}.asset", "zarr-abfs"),
    (
        "container-uppercase",
        _set("target.container", "PCFlow"),
        {},
        "target.container",
        "lowercase",
    ),
    (
        "account-name-bad",
        _set("target.account_name", "my_account"),
        {},
        "target.account_name",
        "lowercase",
    ),
    ("kind-unknown", _set(f"{ZARR}.kind", "netcdf"), {}, f"{ZARR}.kind", "use one of"),
    ("compute-unknown-key", _set("compute.colour", "blue"), {}, "compute.colour", "remove it"),
    (
        "compute-backend-unknown",
        _set("compute.backend", "kubernetes"),
        {},
        "compute.backend",
        "use one of",
    ),
    # Secrets, in any section: refused by name before anything can copy the config.
    (
        "secret-gateway-password",
        _set("compute.gateway", {"address": "http://g", "password": "x"}),
        {},
        "compute.gateway.password",
        "DASK_GATEWAY__AUTH__KWARGS__PASSWORD",
    ),
    (
        "secret-gateway-auth-kwargs",
        _set("compute.gateway", {"auth": {"type": "basic", "kwargs": {"password": "x"}}}),
        {},
        "compute.gateway.auth.kwargs.password",
        "DASK_GATEWAY__AUTH__KWARGS__PASSWORD",
    ),
    ("secret-compute-api-key", _set("compute.api_key", "x"), {}, "compute.api_key", "environment"),
    (
        "secret-hub-token",
        _set("compute.gateway", {"api_token": "x"}),
        {},
        "compute.gateway.api_token",
        "JUPYTERHUB_API_TOKEN",
    ),
    (
        "secret-account-key",
        _set("target.account_key", "x"),
        {},
        "target.account_key",
        "PCFLOW_TARGET_ACCOUNT_KEY",
    ),
    (
        "secret-sas-token",
        _set("target.sas_token", "sv=1&sig=x"),
        {},
        "target.sas_token",
        "PCFLOW_TARGET_SAS_TOKEN",
    ),
    (
        "secret-connection-string",
        _set("staging.connection_string", "x"),
        {},
        "staging.connection_string",
        "PCFLOW_TARGET_CONNECTION_STRING",
    ),
    (
        "secret-subscription-key",
        _set(f"{ZARR}.subscription_key", "x"),
        {},
        f"{ZARR}.subscription_key",
        "PC_SDK_SUBSCRIPTION_KEY",
    ),
    (
        "secret-top-level-credential",
        _set("credentials", {"user": "u"}),
        {},
        "credentials",
        "environment",
    ),
    (
        "secret-stac-api-subscription-key",
        _set("stac_api", "https://planetarycomputer.microsoft.com/api/stac/v1?subscription-key=ab"),
        {},
        "stac_api",
        "PC_SDK_SUBSCRIPTION_KEY",
    ),
    (
        "secret-stac-api-sig",
        _set("stac_api", "https://x.example/stac?sv=1&sig=abc"),
        {},
        "stac_api",
        "drop the query string",
    ),
    (
        "secret-stac-api-userinfo",
        _set("stac_api", "https://me:pw@x.example/stac"),
        {},
        "stac_api",
        "remove the credentials",
    ),
    ("unknown-top-level-key", lambda c: c.clear() or c.update(x=1), {}, "x", "remove it"),
]


def _mutated(mutation):
    cfg = copy.deepcopy(DEMO)
    mutation(cfg)
    return cfg


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv("PCFLOW_STAC_API", raising=False)
    return monkeypatch


def test_the_table_has_at_least_30_rows():
    assert len(TABLE) >= 30
    assert len({row[0] for row in TABLE}) == len(TABLE)


@pytest.mark.parametrize(
    ("mutation", "environ", "field", "fix"), [r[1:] for r in TABLE], ids=[r[0] for r in TABLE]
)
def test_bad_input_fails_with_one_line_naming_field_and_fix(env, mutation, environ, field, fix):
    for name, value in environ.items():
        env.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        validate(_mutated(mutation))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config error at {field}: "), message
    assert fix in message.split(" — ", 1)[1], message
    assert "^" not in message and "(?!" not in message, f"raw regex in: {message}"
    assert info.value.field == field


def test_secret_values_never_echoed(env):
    with pytest.raises(ConfigError) as info:
        validate(_mutated(_set("target.account_key", "s3cr3t-account-key-value")))
    assert "s3cr3t" not in str(info.value)


def test_valid_demo_and_query_property_names_pass(env):
    cfg = _mutated(_set(f"{COG}.query", {"eo:cloud_cover": {"lt": 70}, "s2:token_id": {"eq": 1}}))
    assert validate(cfg)["datasets"]["s2-hilo"]["query"]["s2:token_id"] == {"eq": 1}
    # A dataset named like a secret word is a name, not a secret.
    assert "token-maps" in validate(_mutated(_rename_dataset("token-maps")))["datasets"]


def test_yaml_syntax_error_is_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("stac_api: http://x\ntarget:\n  account_name: abc\n   container: [x\n")
    with pytest.raises(ConfigError) as info:
        read(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "line 4" in message


# -- through Snakemake: the one line reaches the user, and nothing is written ---------------

SNAKEMAKE_ROWS = [
    "secret-gateway-password",
    "datetime-open-range",
    "stac-api-bad-under-env",
]


def _snakemake_n(
    workdir: Path, configfile: Path | None, environ: dict
) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "-n", "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    if configfile:
        cmd += ["--configfile", str(configfile)]
    env = {k: v for k, v in os.environ.items() if k != "PCFLOW_STAC_API"} | environ
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _written(workdir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(workdir))
        for p in workdir.rglob("*")
        if p.is_file() and ".snakemake" not in p.parts and p.name != "config.yaml"
    )


@pytest.mark.parametrize("row", SNAKEMAKE_ROWS)
def test_snakemake_dry_run_prints_the_one_line(tmp_path, row):
    _, mutation, environ, field, fix = next(r for r in TABLE if r[0] == row)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(_mutated(mutation)))
    proc = _snakemake_n(tmp_path, configfile, environ)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("pcflow: config error")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"pcflow: config error at {field}: ") and fix in lines[0]
    assert _written(tmp_path) == []


def test_snakemake_yaml_syntax_error_in_default_config_is_one_pcflow_line(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("stac_api: http://x\ntarget: {a: 1\n")
    proc = _snakemake_n(tmp_path, None, {})
    assert proc.returncode != 0
    assert "pcflow: config error at (file config/config.yaml, line 3" in proc.stderr, proc.stderr
    assert _written(tmp_path) == []


def test_a_config_that_is_not_a_mapping_is_one_line(env):
    with pytest.raises(ConfigError, match=r"^config error at \(top level\): the config is not"):
        validate(["stac_api", "target"])
