"""Keep secrets out of logs and files: redact SAS signatures, account keys and known values."""

from __future__ import annotations

import os
import re

# Environment variables whose values are secrets wherever they show up.
SECRET_ENVS = (
    "PCFLOW_TARGET_SAS_TOKEN",
    "PCFLOW_TARGET_ACCOUNT_KEY",
    "PCFLOW_TARGET_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURITE_CONNECTION_STRING",
    "PC_SDK_SUBSCRIPTION_KEY",
    "KBATCH_TOKEN",
    "JUPYTERHUB_API_TOKEN",
    "DASK_GATEWAY__AUTH__KWARGS__PASSWORD",
)

_PATTERNS = (
    re.compile(r"(sig=)[^&\s\"']+"),
    re.compile(r"(AccountKey=)[^;\s\"']+"),
    re.compile(r"(SharedAccessSignature=)[^;\s\"']+"),
)


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of the known secret variables that are set (long enough to be real secrets)."""
    env = os.environ if environ is None else environ
    return [env[name] for name in SECRET_ENVS if len(env.get(name, "")) >= 8]


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    """Text with SAS signatures, account keys and known secret values replaced by ***."""
    for value in secret_values(environ):
        text = text.replace(value, "***")
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text
