"""Azure Blob Storage access: turn config + environment into adlfs options.

One place decides where an Azure account lives and which credential reaches it, so that
the sandbox (Azurite) and real Azure differ only in environment variables.
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Any

import adlfs
import zarr.core.sync  # noqa: F401 (registers zarr's loop shutdown before our hook below)

# "127.0.0.1:10000/{account_name}" in the sandbox; unset on real Azure, where adlfs derives
# https://{account}.blob.core.windows.net itself.
ACCOUNT_HOST_ENV = "PCFLOW_AZURE_ACCOUNT_HOST"

# Credentials for the user's target account, read from the environment only (never config).
TARGET_CREDENTIAL_ENVS = {
    "PCFLOW_TARGET_SAS_TOKEN": "sas_token",
    "PCFLOW_TARGET_ACCOUNT_KEY": "account_key",
    "PCFLOW_TARGET_CONNECTION_STRING": "connection_string",
}


def account_host(account_name: str) -> str | None:
    """The blob endpoint host for an account when redirected (sandbox), else None."""
    template = os.environ.get(ACCOUNT_HOST_ENV)
    return template.format(account_name=account_name) if template else None


def with_account_host(storage_options: dict[str, Any]) -> dict[str, Any]:
    """Copy of adlfs storage options with the redirected host added where one is configured."""
    options = dict(storage_options)
    name = options.get("account_name")
    host = account_host(name) if name else None
    if host and "account_host" not in options:
        options["account_host"] = host
    return options


def source_storage_options(asset_storage_options: dict[str, Any]) -> dict[str, Any]:
    """Options to read a STAC asset's `xarray:storage_options` (signed or anonymous)."""
    # Listings must be fresh: a stale cached listing once produced empty consolidated metadata.
    return {**with_account_host(asset_storage_options), "use_listings_cache": False}


def target_storage_options(target: dict[str, Any]) -> dict[str, Any]:
    """adlfs options for the user's target account; credentials come from the environment.

    Without a credential variable adlfs falls back to DefaultAzureCredential (managed identity,
    `az login`, workload identity), which is what a hub with Azure identity provides.
    """
    options: dict[str, Any] = {"account_name": target["account_name"], "use_listings_cache": False}
    for env_name, option in TARGET_CREDENTIAL_ENVS.items():
        value = os.environ.get(env_name)
        if value:
            options[option] = value
            break
    return with_account_host(options)


def target_url(target: dict[str, Any], dataset: str) -> str:
    """Where a dataset's staged Zarr store lives: az://{container}/{prefix}/{dataset}.zarr."""
    prefix = str(target.get("prefix", "")).strip("/")
    path = f"{prefix}/{dataset}.zarr" if prefix else f"{dataset}.zarr"
    return f"az://{target['container']}/{path}"


def filesystem(storage_options: dict[str, Any]) -> adlfs.AzureBlobFileSystem:
    """A fresh adlfs filesystem (no instance cache, no listings cache)."""
    opts = {k: v for k, v in storage_options.items() if k != "use_listings_cache"}
    return adlfs.AzureBlobFileSystem(**opts, use_listings_cache=False, skip_instance_cache=True)


def public_storage_options(storage_options: dict[str, Any]) -> dict[str, Any]:
    """Storage options safe to write into manifests and STAC: no credentials, no local hosts."""
    secret_keys = {"credential", "sas_token", "account_key", "connection_string", "client_secret"}
    local_keys = {"account_host", "use_listings_cache"}
    return {k: v for k, v in storage_options.items() if k not in secret_keys | local_keys}


def _close_azure_filesystems() -> None:
    """Close adlfs clients while their event loops still run, or drop the finalizer.

    adlfs closes its client in a weakref finalizer run at interpreter exit; for filesystems
    zarr made (asynchronous, loop None) or whose loop zarr already stopped, that printed
    "Loop is not running" tracebacks in every process. atexit runs last-registered first.
    """
    for fin in list(weakref.finalize._registry):  # noqa: SLF001 (no public registry)
        info = fin.peek()
        if not info or not isinstance(info[0], adlfs.AzureBlobFileSystem):
            continue
        loop = info[2][0] if info[2] else None
        try:
            if loop is not None and loop.is_running():
                fin()
            else:
                fin.detach()
        except Exception:  # closing at exit is best effort; never mask the real exit status
            fin.detach()


class _AtexitAnchor:
    pass


# Make weakref register its own atexit hook now, so that ours (registered after) runs first.
_anchor = _AtexitAnchor()
weakref.finalize(_anchor, lambda: None)
atexit.register(_close_azure_filesystems)
