"""A local stand-in for MPC's SAS token API (`/api/sas/v1/token/{account}/{container}`).

It mints real, short-lived read+list container SAS tokens for the sandbox's source accounts,
so `planetary_computer.sign` (pointed here by PC_SDK_SAS_URL) exercises the real signing path.
Run by the sandbox as `python -m pcflow.sandbox.sas_app --port ... --state-dir ...`; account
keys are read from the state dir's 0600 key file, never from the command line.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from urllib.parse import urlsplit

from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from fastapi import FastAPI, HTTPException

from pcflow.sandbox.accounts import load_account_keys


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_app(
    keys: dict[str, str],
    containers: set[tuple[str, str]],
    expiry_seconds: int = 3600,
    blob_port: int | None = None,
) -> FastAPI:
    """The ASGI app. `containers` are the (account, container) pairs it signs for."""
    app = FastAPI(title="pcflow sandbox SAS token API", docs_url=None, redoc_url=None)

    def mint(account: str, container: str) -> dict[str, str]:
        if (account, container) not in containers or account not in keys:
            raise HTTPException(
                status_code=404, detail=f"no such account/container: {account}/{container}"
            )
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        expiry = now + dt.timedelta(seconds=expiry_seconds)
        token = generate_container_sas(
            account_name=account,
            container_name=container,
            account_key=keys[account],
            permission=ContainerSasPermissions(read=True, list=True),
            start=now - dt.timedelta(minutes=5),  # tolerate small clock differences
            expiry=expiry,
        )
        return {"msft:expiry": _iso(expiry), "token": token}

    @app.get("/api/sas/v1/token/{account}/{container}")
    def token(account: str, container: str) -> dict[str, str]:
        return mint(account, container)

    @app.get("/api/sas/v1/sign")
    def sign(href: str) -> dict[str, str]:
        # Path-style Azurite URL: https://127.0.0.1:P/{account}/{container}/{blob}
        parts = urlsplit(href)
        segments = parts.path.lstrip("/").split("/")
        if (
            parts.scheme != "https"
            or len(segments) < 2
            or (blob_port is not None and parts.port != blob_port)
        ):
            raise HTTPException(status_code=404, detail=f"not a sandbox blob URL: {href}")
        signed = mint(segments[0], segments[1])
        return {"msft:expiry": signed["msft:expiry"], "href": f"{href}?{signed['token']}"}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--expiry-seconds", type=int, default=3600)
    p.add_argument("--blob-port", type=int)
    p.add_argument("--container", action="append", default=[], help="ACCOUNT/CONTAINER")
    args = p.parse_args(argv)
    pairs = {tuple(c.split("/", 1)) for c in args.container}
    app = create_app(load_account_keys(args.state_dir), pairs, args.expiry_seconds, args.blob_port)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
