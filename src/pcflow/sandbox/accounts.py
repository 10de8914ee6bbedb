"""Storage accounts served by the sandbox's Azurite, with random keys per state dir.

Source accounts stand for MPC's storage (read through SAS tokens from the local SAS
endpoint, or public containers); the target account stands for the user's own West Europe
account that pcflow stages into. Keys are secrets: they live in a 0600 file in the state
dir and leave it only through `Sandbox.env()` / `pcflow sandbox env`.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

from pcflow.sandbox.private import private_dir, read_private, write_private

SOURCE_ACCOUNTS: tuple[str, ...] = ("daymeteuwest", "sentinel2l2a01")
TARGET_ACCOUNT = "pcflowdemo"
TARGET_CONTAINER = "pcflow"
ALL_ACCOUNTS: tuple[str, ...] = (*SOURCE_ACCOUNTS, TARGET_ACCOUNT)

# (account, container) pairs the SAS endpoint signs for, like MPC's token API.
SAS_CONTAINERS: tuple[tuple[str, str], ...] = (
    ("daymeteuwest", "daymet-zarr"),
    ("sentinel2l2a01", "sentinel2-l2"),
)

KEYS_FILE = "account-keys.json"


def keys_path(state_dir: Path) -> Path:
    return Path(state_dir) / KEYS_FILE


def ensure_account_keys(state_dir: Path) -> dict[str, str]:
    """Load the account keys, generating random 64-byte base64 keys on first use."""
    path = keys_path(state_dir)
    if path.exists():
        keys = json.loads(read_private(path))  # refused if its mode was widened
        if set(ALL_ACCOUNTS) <= set(keys):
            return {name: keys[name] for name in ALL_ACCOUNTS}
    keys = {name: base64.b64encode(secrets.token_bytes(64)).decode() for name in ALL_ACCOUNTS}
    private_dir(path.parent)
    write_private(path, json.dumps(keys).encode())
    return keys


def load_account_keys(state_dir: Path) -> dict[str, str]:
    """Read existing keys (for the SAS endpoint process); error if the sandbox never made them."""
    path = keys_path(state_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `pcflow sandbox up` first")
    return json.loads(read_private(path))


def azurite_accounts_value(keys: dict[str, str]) -> str:
    """The AZURITE_ACCOUNTS environment value: `name:key;name:key`."""
    return ";".join(f"{name}:{keys[name]}" for name in ALL_ACCOUNTS)


def blob_endpoint(port: int, account: str) -> str:
    """Path-style Azurite endpoint of an account (what adlfs builds from account_host)."""
    return f"https://127.0.0.1:{port}/{account}"


def connection_string(port: int, account: str, key: str) -> str:
    return (
        f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};"
        f"BlobEndpoint={blob_endpoint(port, account)};"
    )
