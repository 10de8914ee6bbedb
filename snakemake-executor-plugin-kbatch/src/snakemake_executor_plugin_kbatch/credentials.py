"""Credentials: the kbatch token for this process, and per-run SAS tokens for the jobs.

The kbatch token never comes from the command line (it would land in shell history and
Snakemake's logs): $KBATCH_TOKEN, then $JUPYTERHUB_API_TOKEN, then kbatch's own config file
(`kbatch configure`). Jobs never receive an account key: the executor mints SAS tokens valid
for `--kbatch-credential-hours` from the run's start and passes those instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TOKEN_ENVS = ("KBATCH_TOKEN", "JUPYTERHUB_API_TOKEN")


class CredentialError(RuntimeError):
    pass


def kbatch_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where `kbatch configure` stores url and token (same rule as kbatch._core.config_path)."""
    env = os.environ if environ is None else environ
    home = (
        env.get("APPDATA")
        or env.get("XDG_CONFIG_HOME")
        or os.path.join(env.get("HOME", ""), ".config")
    )
    return Path(home) / "kbatch" / "config.json"


def _config(environ: Mapping[str, str] | None) -> dict:
    path = kbatch_config_path(environ)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def resolve_token(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    for name in TOKEN_ENVS:
        if env.get(name):
            return env[name]
    token = _config(environ).get("token")
    if token:
        return token
    raise CredentialError(
        "kbatch token: set KBATCH_TOKEN (or JUPYTERHUB_API_TOKEN), or run `kbatch configure`"
    )


def resolve_url(setting: str | None, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    url = setting or env.get("KBATCH_URL") or _config(environ).get("kbatch_url")
    if not url:
        raise CredentialError(
            "kbatch url: pass --kbatch-url (profile key kbatch-url) or set KBATCH_URL"
        )
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True)
class AccountCredential:
    account_name: str
    account_key: str
    blob_endpoint: str  # https://acct.blob.core.windows.net or Azurite's path-style URL


def parse_connection_string(value: str) -> AccountCredential | None:
    """Account name, key and blob endpoint from an Azure connection string that has a key."""
    parts = dict(item.split("=", 1) for item in value.strip().strip(";").split(";") if "=" in item)
    name, key = parts.get("AccountName"), parts.get("AccountKey")
    if not name or not key:
        return None
    endpoint = parts.get("BlobEndpoint")
    if not endpoint:
        protocol = parts.get("DefaultEndpointsProtocol", "https")
        suffix = parts.get("EndpointSuffix", "core.windows.net")
        endpoint = f"{protocol}://{name}.blob.{suffix}"
    return AccountCredential(name, key, endpoint.rstrip("/"))


@dataclass(frozen=True)
class StorageEnv:
    """Which environment variables hold the storage credential the executor may use locally.

    The names are settings (`--kbatch-storage-*-env`), so a workflow keeps its own variable
    names; the values never go to jobs.
    """

    connection_string: str = "AZURE_STORAGE_CONNECTION_STRING"
    account_name: str = "AZURE_STORAGE_ACCOUNT"
    account_key: str = "AZURE_STORAGE_KEY"
    account_host: str | None = None  # holds e.g. "127.0.0.1:10000/{account_name}"


# snakemake-storage-plugin-azure reads a connection string from this variable (its name says
# Azurite, but any connection string works): the executor rewrites it for jobs.
STORAGE_PLUGIN_ENV = "AZURITE_CONNECTION_STRING"


def storage_env(settings: object) -> StorageEnv:
    """The StorageEnv named by the executor settings."""
    return StorageEnv(
        connection_string=settings.storage_connection_string_env,
        account_name=settings.storage_account_name_env,
        account_key=settings.storage_account_key_env,
        account_host=settings.storage_account_host_env,
    )


def secret_env_names(settings: object) -> frozenset[str]:
    """Variables named by the settings that hold long-lived secrets (never passed to jobs)."""
    names = storage_env(settings)
    return frozenset({names.connection_string, names.account_key})


def account_credential(
    account_name: str | None,
    environ: Mapping[str, str] | None = None,
    names: StorageEnv | None = None,
) -> AccountCredential | None:
    """The key for an account from the submitting environment, if it has one.

    Looked up in the storage plugin's connection string, then `names.connection_string`, then
    `names.account_name` + `names.account_key` (endpoint from `names.account_host`).
    """
    env = os.environ if environ is None else environ
    names = names or StorageEnv()
    for name in (STORAGE_PLUGIN_ENV, names.connection_string):
        cred = parse_connection_string(env.get(name, ""))
        if cred and (account_name is None or cred.account_name == account_name):
            return cred
    name, key = env.get(names.account_name), env.get(names.account_key)
    if name and key and (account_name is None or name == account_name):
        host = env.get(names.account_host) if names.account_host else None
        endpoint = (
            f"https://{host.format(account_name=name)}"
            if host
            else f"https://{name}.blob.core.windows.net"
        )
        return AccountCredential(name, key, endpoint)
    return None


SAS_PERMISSIONS = {"r": "read", "w": "write", "d": "delete", "l": "list", "a": "add", "c": "create"}


def container_sas(
    cred: AccountCredential, container: str, expiry: dt.datetime, permissions: str = "rwdl"
) -> str:
    """A service SAS for one container with only `permissions` (default read/write/delete/list:
    what jobs that write and replace blobs need), HTTPS only (Azurite: http too)."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    unknown = set(permissions) - set(SAS_PERMISSIONS)
    if unknown or not permissions:
        raise CredentialError(
            f"kbatch-sas-permissions: {permissions!r} has unknown letters {sorted(unknown)}; "
            f"use some of {''.join(SAS_PERMISSIONS)}"
        )
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # clock skew
    return generate_container_sas(
        account_name=cred.account_name,
        container_name=container,
        account_key=cred.account_key,
        permission=ContainerSasPermissions(
            **{SAS_PERMISSIONS[letter]: True for letter in permissions}
        ),
        start=start,
        expiry=expiry,
        protocol=_protocol(cred),
    )


def storage_account_sas(cred: AccountCredential, expiry: dt.datetime) -> str:
    """An account SAS limited to blob containers and blobs (no service-level operations).

    snakemake-storage-plugin-azure calls Get Container Properties (ContainerClient.exists) on
    every check, which no container SAS may do; this is the narrowest SAS it works with. It
    reaches every container of the account (Azure has no narrower SAS the plugin accepts) but
    only to read, write, delete and list blobs: no container creation, no service calls, no
    keys. It is valid until `expiry` and cannot be revoked earlier.
    """
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    return generate_account_sas(
        account_name=cred.account_name,
        account_key=cred.account_key,
        resource_types=ResourceTypes(service=False, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, delete=True, list=True),
        start=start,
        expiry=expiry,
        protocol=_protocol(cred),
    )


def _protocol(cred: AccountCredential) -> str:
    return "https" if cred.blob_endpoint.startswith("https://") else "https,http"


def sas_connection_string(cred: AccountCredential, sas: str) -> str:
    """A connection string the Azure SDK (and snakemake-storage-plugin-azure) accepts."""
    return f"BlobEndpoint={cred.blob_endpoint};SharedAccessSignature={sas}"


_CONTAINER = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


def parse_sas_targets(items: list[str]) -> dict[str, tuple[str, str | None]]:
    """`ENV=container` or `ENV=account/container` items -> {ENV: (container, account)}."""
    out: dict[str, tuple[str, str | None]] = {}
    for item in items:
        env, sep, target = item.partition("=")
        account, _, container = target.rpartition("/")
        if not sep or not env or not _CONTAINER.match(container):
            raise CredentialError(
                f"kbatch-sas-env: {item!r} is not ENV=container or ENV=account/container "
                "(container: 3-63 chars of a-z, 0-9, -)"
            )
        out[env] = (container, account or None)
    return out
