"""The registry of sandbox services: what to run, on which port, and how to know it is ready.

Adding a service is one `register(ServiceSpec(...))` call, e.g. for a dask-gateway server:

    register(ServiceSpec(
        name="gateway", port_offset=12, extra_port_offsets=(13,),
        argv=lambda ctx: [ctx.python, "-m", "dask_gateway_server", "-f", str(ctx.path("gw.py"))],
        ready=lambda ctx: http_ready(f"http://127.0.0.1:{ctx.port(12)}/api/health"),
        exports=lambda ctx: {"DASK_GATEWAY__ADDRESS": f"http://127.0.0.1:{ctx.port(12)}"},
        prepare=write_gateway_config,   # optional: write config files before start
    ))

Services in DEFAULT_SERVICES start on a bare `pcflow sandbox up`; others on request
(`pcflow sandbox up --service gateway` or `Sandbox.up(services=(..., "gateway"))`).
"""

from __future__ import annotations

import os
import shutil
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pcflow.paths import REPO_ROOT
from pcflow.sandbox import accounts, certs
from pcflow.sandbox.process import SandboxError, tcp_ready


@dataclass
class Context:
    """What a service definition may use: ports, paths, keys, certificates."""

    state_dir: Path
    base_port: int
    options: dict[str, str] = field(default_factory=dict)

    def port(self, offset: int = 0) -> int:
        return self.base_port + offset

    def path(self, *parts: str) -> Path:
        return self.state_dir.joinpath(*parts)

    @property
    def python(self) -> str:
        return sys.executable

    @cached_property
    def keys(self) -> dict[str, str]:
        return accounts.ensure_account_keys(self.state_dir)

    @cached_property
    def certs(self) -> certs.CertPaths:
        # Paths only: renewing here could swap the CA under a running Azurite (its start renews).
        return certs.ensure_certs(self.state_dir, renew=False)


@dataclass(frozen=True)
class ServiceSpec:
    """One background service. Callables receive the Context."""

    name: str
    port_offset: int  # main port = base_port + port_offset
    argv: Callable[[Context], list[str]]
    ready: Callable[[Context], bool]  # polled until True (bounded by start_timeout)
    env: Callable[[Context], dict[str, str]] = lambda ctx: {}  # added to os.environ
    exports: Callable[[Context], dict[str, str]] = lambda ctx: {}  # `pcflow sandbox env` lines
    prepare: Callable[[Context], None] | None = None  # before start: write config/data files
    extra_port_offsets: tuple[int, ...] = ()  # other ports it binds (checked free at start)
    start_timeout: float = 30.0
    description: str = ""

    def ports(self, ctx: Context) -> tuple[int, ...]:
        return (ctx.port(self.port_offset), *(ctx.port(o) for o in self.extra_port_offsets))


REGISTRY: dict[str, ServiceSpec] = {}
DEFAULT_SERVICES: tuple[str, ...] = ("azurite", "stac", "sas")


def register(spec: ServiceSpec) -> ServiceSpec:
    """Add (or replace) a service definition; returns it for chaining."""
    REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> ServiceSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise SandboxError(f"unknown sandbox service {name!r}; known services: {known}") from None


def check_port_layout(names: tuple[str, ...] | list[str]) -> None:
    """Refuse two selected services claiming the same port offset (a registry mistake)."""
    seen: dict[int, str] = {}
    for name in names:
        spec = get(name)
        for off in (spec.port_offset, *spec.extra_port_offsets):
            if off in seen and seen[off] != name:
                raise SandboxError(
                    f"services {seen[off]} and {name} both use port offset +{off}; "
                    "give one of them another port_offset in the registry"
                )
            seen[off] = name


def http_ready(url: str, cafile: Path | None = None, timeout: float = 1.0) -> bool:
    """True when GET url answers 2xx (https verified against cafile when given)."""
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


# -- Azurite (Azure Blob Storage) ---------------------------------------------------------------

AZURITE_BIN_ENV = "PCFLOW_AZURITE_BIN"


def azurite_bin() -> Path | None:
    """./node_modules/.bin/azurite-blob of the repo (npm ci), or $PCFLOW_AZURITE_BIN, or PATH."""
    candidates = [
        os.environ.get(AZURITE_BIN_ENV),
        str(REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"),
        str(Path.cwd() / "node_modules" / ".bin" / "azurite-blob"),
        shutil.which("azurite-blob"),
    ]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    return None


def missing_requirements(names: tuple[str, ...] | list[str]) -> list[str]:
    """Human-readable list of tools the selected services need but this machine lacks."""
    missing = []
    if "azurite" in names:
        if shutil.which("node") is None:
            missing.append("node (Node.js: `bash scripts/install-system-deps.sh`)")
        if azurite_bin() is None:
            missing.append("azurite-blob (`make install` or `npm ci` in the repo root)")
    if "stac" in names and rustac_bin() is None:
        missing.append("rustac (`make install`: it is in envs/requirements.lock)")
    return missing


def _azurite_argv(ctx: Context) -> list[str]:
    certs.ensure_certs(ctx.state_dir)  # Azurite is about to start: renew an old/unconstrained CA
    binary = azurite_bin()
    if binary is None:
        raise SandboxError("azurite-blob not found: run `make install` (npm ci) in the repo root")
    location = ctx.path("azurite")
    location.mkdir(parents=True, exist_ok=True)
    return [
        str(binary),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(ctx.port(0)),
        "--location",
        str(location),
        "--cert",
        str(ctx.certs.server_cert),
        "--key",
        str(ctx.certs.server_key),
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
        # No access log: request URLs carry SAS signatures, which must not land on disk.
        "--silent",
    ]


def _azurite_ready(ctx: Context) -> bool:
    if not tcp_ready(ctx.port(0)):
        return False
    # Any HTTP answer over verified TLS means the server is up (400/403 without auth is fine).
    url = f"https://127.0.0.1:{ctx.port(0)}/{accounts.TARGET_ACCOUNT}?comp=list"
    context = ssl.create_default_context(cafile=str(ctx.certs.ca_cert))
    try:
        urllib.request.urlopen(url, timeout=1.0, context=context).close()
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False
    return True


def _azurite_exports(ctx: Context) -> dict[str, str]:
    port = ctx.port(0)
    target = accounts.TARGET_ACCOUNT
    key = ctx.keys[target]
    bundle = str(ctx.certs.bundle)
    return {
        "PCFLOW_AZURE_ACCOUNT_HOST": f"127.0.0.1:{port}/{{account_name}}",
        "PCFLOW_TARGET_ACCOUNT_NAME": target,
        "PCFLOW_TARGET_ACCOUNT_KEY": key,
        # snakemake-storage-plugin-azure reads Azurite's connection string from this variable.
        "AZURITE_CONNECTION_STRING": accounts.connection_string(port, target, key),
        "PCFLOW_SANDBOX_BLOB_URL": f"https://127.0.0.1:{port}",
        "SSL_CERT_FILE": bundle,
        "REQUESTS_CA_BUNDLE": bundle,
        "CURL_CA_BUNDLE": bundle,
        # rasterio/pyproj wheels point GDAL/PROJ at certifi's bundle unless these are set.
        "GDAL_CURL_CA_BUNDLE": bundle,
        "PROJ_CURL_CA_BUNDLE": bundle,
    }


register(
    ServiceSpec(
        name="azurite",
        port_offset=0,
        argv=_azurite_argv,
        ready=_azurite_ready,
        env=lambda ctx: {
            "AZURITE_ACCOUNTS": accounts.azurite_accounts_value(ctx.keys),
            # Azurite fetches a cross-account copy source over HTTPS itself (server-side copy).
            "NODE_EXTRA_CA_CERTS": str(ctx.certs.ca_cert),
        },
        exports=_azurite_exports,
        description="Azure Blob Storage (Azurite, HTTPS)",
    )
)

# -- STAC API (rustac, in memory) ---------------------------------------------------------------


def rustac_bin() -> Path | None:
    here = Path(sys.executable).parent / "rustac"
    if here.exists():
        return here
    found = shutil.which("rustac")
    return Path(found) if found else None


def _stac_prepare(ctx: Context) -> None:
    from pcflow.sandbox import seed

    seed.write_stac_files(ctx.path("stac"), azurite_port=ctx.port(0))


def _stac_argv(ctx: Context) -> list[str]:
    binary = rustac_bin()
    if binary is None:
        raise SandboxError("rustac not found: run `make install` (it is in the locked env)")
    from pcflow.sandbox import seed

    return [
        str(binary),
        "serve",
        "--addr",
        f"127.0.0.1:{ctx.port(10)}",
        *[str(p) for p in seed.stac_files(ctx.path("stac"))],
    ]


def _stac_ready(ctx: Context) -> bool:
    # Ready means loaded: the last collection answers (rustac loads files before listening).
    from pcflow.sandbox import seed

    url = f"http://127.0.0.1:{ctx.port(10)}/collections/{seed.STAC_COLLECTIONS[-1]}"
    return http_ready(url)


register(
    ServiceSpec(
        name="stac",
        port_offset=10,
        argv=_stac_argv,
        ready=_stac_ready,
        prepare=_stac_prepare,
        exports=lambda ctx: {"PCFLOW_STAC_API": f"http://127.0.0.1:{ctx.port(10)}"},
        description="STAC API (rustac serve, in memory)",
    )
)

# -- SAS token endpoint -------------------------------------------------------------------------

SAS_EXPIRY_OPTION = "sas_expiry_seconds"


def _sas_argv(ctx: Context) -> list[str]:
    ctx.keys  # noqa: B018 - make sure the keys file exists before the app reads it
    argv = [
        ctx.python,
        "-m",
        "pcflow.sandbox.sas_app",
        "--port",
        str(ctx.port(11)),
        "--state-dir",
        str(ctx.state_dir),
        "--expiry-seconds",
        str(ctx.options.get(SAS_EXPIRY_OPTION, "3600")),
        "--blob-port",
        str(ctx.port(0)),
    ]
    for account, container in accounts.SAS_CONTAINERS:
        argv += ["--container", f"{account}/{container}"]
    return argv


register(
    ServiceSpec(
        name="sas",
        port_offset=11,
        argv=_sas_argv,
        ready=lambda ctx: http_ready(f"http://127.0.0.1:{ctx.port(11)}/healthz"),
        exports=lambda ctx: {"PC_SDK_SAS_URL": f"http://127.0.0.1:{ctx.port(11)}/api/sas/v1/token"},
        description="SAS token API (like MPC's /api/sas/v1/token)",
    )
)

# -- Dask Gateway (optional: `pcflow sandbox up --service gateway`) ------------------------------


def _gateway_exports(ctx: Context) -> dict[str, str]:
    from pcflow.sandbox import gateway as gateway_server

    return gateway_server.env(ctx.port(12), ctx.port(13), ctx.path("gateway"))


register(
    ServiceSpec(
        name="gateway",
        port_offset=12,
        extra_port_offsets=(13,),
        argv=lambda ctx: [
            ctx.python,
            "-m",
            "pcflow.sandbox.gateway",
            "--port",
            str(ctx.port(12)),
            "--tcp-port",
            str(ctx.port(13)),
            "--state-dir",
            str(ctx.path("gateway")),
        ],
        ready=lambda ctx: http_ready(f"http://127.0.0.1:{ctx.port(12)}/api/health"),
        # Workers inherit the server's environment: they must reach Azurite like the rules do.
        env=_azurite_exports,
        exports=_gateway_exports,
        start_timeout=60.0,
        description="Dask Gateway (dask-gateway-server, local backend, basic auth)",
    )
)

# -- kbatch (optional: `pcflow sandbox up --service kbatch`) -------------------------------------


def _kbatch_prepare(ctx: Context) -> None:
    from pcflow.sandbox.kbatch.server import load_or_create_token

    ctx.path("kbatch").mkdir(parents=True, exist_ok=True)
    load_or_create_token(ctx.path("kbatch"))  # exists before `env` prints it


def _kbatch_exports(ctx: Context) -> dict[str, str]:
    from pcflow.sandbox.kbatch.server import load_or_create_token

    token = load_or_create_token(ctx.path("kbatch"))
    return {
        "KBATCH_URL": f"http://127.0.0.1:{ctx.port(14)}/",
        "KBATCH_TOKEN": token,
        # What a hub sets in every user server: the real `kbatch` CLI reads its token here.
        "JUPYTERHUB_API_TOKEN": token,
    }


register(
    ServiceSpec(
        name="kbatch",
        port_offset=14,
        prepare=_kbatch_prepare,
        argv=lambda ctx: [
            ctx.python,
            "-m",
            "pcflow.sandbox.kbatch",
            "--port",
            str(ctx.port(14)),
            "--state-dir",
            str(ctx.path("kbatch")),
        ],
        ready=lambda ctx: http_ready(f"http://127.0.0.1:{ctx.port(14)}/"),
        # Jobs inherit the runner's environment: they reach Azurite like local rules do.
        env=_azurite_exports,
        exports=_kbatch_exports,
        start_timeout=60.0,
        description="kbatch (the real kbatch-proxy app over a local job runner)",
    )
)
