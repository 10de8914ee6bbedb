"""Shared fixtures. `sandbox`: the local MPC stand-ins for the whole test session.

It starts `pcflow.sandbox.Sandbox` on base port 11000 in a temporary state dir (Azurite,
STAC API, SAS endpoint, demo data), applies its environment to os.environ for the session
(restored afterwards) and always stops it. Without Node.js/Azurite/rustac it skips the tests
that need it, unless PCFLOW_REQUIRE_SERVICES=1 (CI), where it fails instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

# Override to run two test sessions side by side (each needs its own ports).
SANDBOX_TEST_PORT = int(os.environ.get("PCFLOW_TEST_PORT_BASE", "11000"))
CA_ENV_VARS = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GDAL_CURL_CA_BUNDLE",
    "PROJ_CURL_CA_BUNDLE",
)
_STATE_DIR = pytest.StashKey[Path]()
_SAVED_ENV = pytest.StashKey[dict]()


def pytest_configure(config: pytest.Config) -> None:
    # aiohttp (under adlfs) builds its default TLS context when first imported, i.e. while
    # test modules are collected, long before the session fixture runs. So the sandbox CA must
    # be trusted from the start: make the certificates now and point the CA variables at them.
    from pcflow.sandbox.certs import ensure_certs

    state_dir = Path(tempfile.mkdtemp(prefix="pcflow-test-sandbox-"))
    bundle = str(ensure_certs(state_dir).bundle)
    config.stash[_STATE_DIR] = state_dir
    config.stash[_SAVED_ENV] = {k: os.environ.get(k) for k in CA_ENV_VARS}
    for key in CA_ENV_VARS:
        os.environ[key] = bundle  # certifi's roots + the sandbox CA: public hosts still verify


def pytest_unconfigure(config: pytest.Config) -> None:
    for key, value in config.stash.get(_SAVED_ENV, {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    state_dir = config.stash.get(_STATE_DIR, None)
    if state_dir is not None:
        shutil.rmtree(state_dir, ignore_errors=True)


def _clear_planetary_computer_caches() -> None:
    """planetary_computer caches its settings (PC_SDK_SAS_URL) and tokens per process."""
    try:
        import planetary_computer.sas as pc_sas
        import planetary_computer.settings as pc_settings
    except ImportError:
        return
    pc_settings.Settings.get.cache_clear()
    pc_sas.TOKEN_CACHE.clear()


@pytest.fixture(scope="session")
def sandbox(request: pytest.FixtureRequest):
    from pcflow.sandbox import DEFAULT_SERVICES, Sandbox, SandboxError
    from pcflow.sandbox.services import missing_requirements

    missing = missing_requirements(DEFAULT_SERVICES)
    if missing:
        message = "sandbox services unavailable, missing: " + "; ".join(missing)
        if os.environ.get("PCFLOW_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message + " (run `make install`)")

    sb = Sandbox(request.config.stash[_STATE_DIR], SANDBOX_TEST_PORT)
    saved = dict(os.environ)
    try:
        t0 = time.monotonic()
        try:
            lines = sb.up(services=DEFAULT_SERVICES)
        except SandboxError as exc:
            pytest.fail(f"sandbox did not start: {exc}")
        print(f"\nsandbox up in {time.monotonic() - t0:.1f}s: " + "; ".join(lines))
        os.environ.update(sb.env())
        _clear_planetary_computer_caches()
        yield sb
    finally:
        sb.down()
        os.environ.clear()
        os.environ.update(saved)
        _clear_planetary_computer_caches()
