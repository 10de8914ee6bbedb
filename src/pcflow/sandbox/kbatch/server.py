"""Local kbatch: the real kbatch-proxy ASGI app, its Kubernetes seam replaced by LocalJobRunner.

    python -m pcflow.sandbox.kbatch --port N --state-dir DIR [--job-ttl S] [--user NAME]

Clients use `KBATCH_URL=http://127.0.0.1:N/` and a token: $PCFLOW_KBATCH_TOKEN when set at
start, else a random one written to DIR/kbatch-token (mode 0600) for `pcflow sandbox env`.
Jobs run as subprocesses of this process (one process group each) with this venv's python
first on PATH; on SIGTERM/SIGINT every running job is stopped before exit.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

import yaml

from pcflow.sandbox.kbatch.hub import FakeHub
from pcflow.sandbox.kbatch.jobrunner import LocalJobRunner

TOKEN_FILE = "kbatch-token"
TOKEN_ENV = "PCFLOW_KBATCH_TOKEN"
# What a pangeo-notebook image would provide that the host must supply here: the CA bundle
# that trusts Azurite's self-signed certificate, locale.
# What a real image would bake in: the CA bundle (incl. the sandbox CA; GDAL/PROJ wheels read
# their own variables) and the locale.
DEFAULT_INHERIT = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GDAL_CURL_CA_BUNDLE",
    "PROJ_CURL_CA_BUNDLE",
    "LANG",
    "LC_ALL",
)
DEFAULT_PROFILES = {
    "default": {
        "image": "pangeo/pangeo-notebook:2025.01.10",
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
    }
}


def load_or_create_token(state_dir: Path) -> str:
    """The accepted client token: from $PCFLOW_KBATCH_TOKEN, else DIR/kbatch-token (0600)."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        return token
    path = state_dir / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token


def build_app(
    state_dir: Path,
    token: str,
    user: str = "pcflow",
    job_ttl: int = 3600,
    inherit: tuple[str, ...] = DEFAULT_INHERIT,
    unpullable: tuple[str, ...] = ("*.invalid/*",),
    profile_file: Path | None = None,
):
    """Configure kbatch-proxy through its environment, import it, swap in LocalJobRunner.

    Returns (app, cluster, hub). kbatch-proxy reads its Settings at import time, so this must
    run before anything else imports `kbatch_proxy.main` in this process.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    hub = FakeHub({token: user}, scopes=["access:services!service=kbatch"]).start()
    if profile_file is None:
        profile_file = state_dir / "profiles.yaml"
        profile_file.write_text(yaml.safe_dump(DEFAULT_PROFILES))
    os.environ.update(
        {
            # A settings file that never exists: no stray ./.env reaches the proxy.
            "KBATCH_SETTINGS_PATH": str(state_dir / "kbatch-proxy-settings.env"),
            # The proxy's own hub token (unused by the fake hub; random so nothing reuses it).
            "JUPYTERHUB_API_TOKEN": secrets.token_urlsafe(16),
            "JUPYTERHUB_API_URL": hub.api_url,
            "JUPYTERHUB_SERVICE_NAME": "kbatch",
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(["access:services!service=kbatch"]),
            "KBATCH_JOB_TTL_SECONDS_AFTER_FINISHED": str(job_ttl),
            "KBATCH_PROFILE_FILE": str(profile_file),
            "KBATCH_CREATE_USER_NAMESPACE": "true",
        }
    )
    if "kbatch_proxy.main" in sys.modules:
        raise RuntimeError("kbatch_proxy.main was imported before local kbatch configured it")
    import kbatch_proxy.main as proxy

    cluster = LocalJobRunner(
        state_dir,
        python_bin_dir=Path(sys.executable).parent,
        inherit_env={name: os.environ[name] for name in inherit if os.environ.get(name)},
        unpullable_images=unpullable,
    )
    # The seam: every kbatch-proxy handler asks get_k8s_api() for its Kubernetes clients.
    proxy.get_k8s_api = cluster.apis
    return proxy.app, cluster, hub


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pcflow.sandbox.kbatch", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--user", default="pcflow", help="hub user name owning the token")
    parser.add_argument("--job-ttl", type=int, default=3600, help="ttlSecondsAfterFinished")
    parser.add_argument(
        "--inherit-env",
        action="append",
        default=None,
        metavar="NAME",
        help=f"host variable every job gets, like image env (default: {' '.join(DEFAULT_INHERIT)})",
    )
    parser.add_argument(
        "--unpullable-image",
        action="append",
        default=None,
        metavar="GLOB",
        help="images whose pods stay Pending in ImagePullBackOff (default: *.invalid/*)",
    )
    parser.add_argument("--profile-file", type=Path, default=None, help="kbatch profiles YAML")
    args = parser.parse_args(argv)

    import uvicorn

    state_dir = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    token = load_or_create_token(state_dir)
    app, cluster, hub = build_app(
        state_dir,
        token,
        user=args.user,
        job_ttl=args.job_ttl,
        inherit=tuple(args.inherit_env or DEFAULT_INHERIT),
        unpullable=tuple(args.unpullable_image or ("*.invalid/*",)),
        profile_file=args.profile_file,
    )
    try:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    finally:
        cluster.shutdown()
        hub.stop()
    return 0
