"""Keep secrets out of logs and files: redact SAS signatures, account keys and known values.

Patterns cover the shapes secrets take in text whether or not their value is in a known env
var: SAS `sig=` (also URL-encoded `sig%3D`), `AccountKey=`, `SharedAccessSignature=`,
`subscription-key=` query parameters and headers, `Authorization: Bearer/Basic …`, passwords
in URLs (`https://user:PASSWORD@host`) and JSON/YAML/repr fields named like a secret
(`{"sig": "…"}`, `'password': '…'`, `token: …`).
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote

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

# Field names whose values are secrets in JSON, YAML or Python reprs.
_SECRET_FIELDS = (
    r"sig|signature|password|passwd|secret|token|access_token|api_token|api_key|apikey"
    r"|account_key|accountkey|sas_token|sas|credential|credentials|connection_string"
    r"|subscription_key|subscription-key|ocp-apim-subscription-key|client_secret"
)

_PATTERNS = (
    # Query parameters and key=value pairs (connection strings, URLs), plain or URL-encoded.
    re.compile(
        r"(?i)((?:[?&;,(\s\"']|%26|%3F|^)sig(?:=|%3D))(?:%(?!26)[0-9a-f]{2}|[^&\s\"'<>;%])+"
    ),
    re.compile(r"(?i)(AccountKey(?:=|%3D))[^;\s\"'<>]+"),
    re.compile(r"(?i)(SharedAccessSignature(?:=|%3D))[^;\s\"'<>]+"),
    re.compile(r"(?i)(subscription[-_]key(?:=|%3D))[^&\s\"'<>;]+"),
    # Headers.
    re.compile(r"(?i)(\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(ocp-apim-subscription-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
    # Passwords in URLs.
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@\"']+:)[^@\s/\"']+(?=@)"),
    # JSON / repr / YAML fields named like a secret ("sig": "x", 'password': 'x', token: x).
    re.compile(rf"(?i)([\"'](?:{_SECRET_FIELDS})[\"']\s*:\s*[\"'])[^\"']+"),
    re.compile(rf"(?im)(^\s*(?:{_SECRET_FIELDS})\s*:\s+)(?![\"'{{\[]|\*\*\*)\S+"),
)


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of the known secret variables that are set (long enough to be real secrets)."""
    env = os.environ if environ is None else environ
    return [env[name] for name in SECRET_ENVS if len(env.get(name, "")) >= 8]


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    """Text with SAS signatures, keys, tokens and known secret values replaced by ***."""
    for value in secret_values(environ):
        # Also the URL-encoded form (an account key's `+/=` inside a URL or a log of one).
        for form in {value, quote(value, safe="")}:
            text = text.replace(form, "***")
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text
