"""Pure helpers that turn a Snakemake job into a kbatch Job spec: names, resources, env."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

# Kubernetes object names are DNS-1123 labels (<= 63 chars); kbatch adds "-" + 5 random chars
# (generateName), and pod names add another "-xxxxx". Keep the base short enough for both.
MAX_BASE_LEN = 40
_UNSAFE = re.compile(r"[^a-z0-9-]+")


def sanitize(text: str) -> str:
    """Lower-case text reduced to [a-z0-9-], no leading/trailing/double dashes."""
    return re.sub(r"-{2,}", "-", _UNSAFE.sub("-", text.lower())).strip("-")


def short_hash(text: str, length: int = 6) -> str:
    return hashlib.sha256(text.encode("utf8")).hexdigest()[:length]


def job_base_name(rule: str, wildcards: str, commit: str, attempt: int) -> str:
    """Readable, valid kbatch job name prefix: smk-<rule>-<wildcards hash>-<commit>-a<attempt>.

    Unique per (rule, wildcards, commit, attempt); kbatch-proxy appends a random suffix on top,
    so two runs of the same job never collide.
    """
    tail = f"-{short_hash(wildcards)}-{sanitize(commit)[:7] or 'nogit'}-a{int(attempt)}"
    room = MAX_BASE_LEN - len("smk-") - len(tail)
    rule_part = sanitize(rule)[:room].strip("-") or "job"
    return f"smk-{rule_part}{tail}"


def k8s_resources(
    resources: Mapping[str, Any],
    base: Mapping[str, Mapping[str, str]] | None = None,
    default_runtime: float | None = None,
) -> tuple[dict[str, dict[str, str]], int | None]:
    """(container resources, activeDeadlineSeconds) from Snakemake job resources.

    `_cores` -> cpu request (no cpu limit: throttling slows Dask more than sharing does);
    `mem_mib`/`mem_mb` -> memory request and limit; `disk_mib`/`disk_mb` -> ephemeral-storage
    request; `runtime` (minutes, else `default_runtime`) -> activeDeadlineSeconds, so a Job
    ends even if nothing is left to delete it. `base` (a kbatch profile's resources) fills
    what the job does not set.
    """
    out: dict[str, dict[str, str]] = {
        "requests": dict((base or {}).get("requests", {})),
        "limits": dict((base or {}).get("limits", {})),
    }
    cores = _number(resources.get("_cores"))
    if cores:
        out["requests"]["cpu"] = _fmt(cores)
    memory = _quantity(resources, "mem_mib", "Mi") or _quantity(resources, "mem_mb", "M")
    if memory:
        out["requests"]["memory"] = memory
        out["limits"]["memory"] = memory
    disk = _quantity(resources, "disk_mib", "Mi") or _quantity(resources, "disk_mb", "M")
    if disk:
        out["requests"]["ephemeral-storage"] = disk
    runtime = _number(resources.get("runtime"))
    if not runtime or runtime <= 0:
        runtime = default_runtime
    deadline = max(1, int(runtime * 60)) if runtime and runtime > 0 else None
    return {k: v for k, v in out.items() if v}, deadline


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{int(value * 1000)}m"


def _quantity(resources: Mapping[str, Any], key: str, unit: str) -> str | None:
    value = _number(resources.get(key))
    return f"{int(value)}{unit}" if value and value > 0 else None


# Variables that hold long-lived credentials: never copied into a job spec. Jobs get a per-run
# SAS instead, and kbatch-proxy injects the hub token (JUPYTERHUB_API_TOKEN) itself.
FORBIDDEN_ENV = frozenset(
    {
        "KBATCH_TOKEN",
        "JUPYTERHUB_API_TOKEN",
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_CLIENT_SECRET",
        "PC_SDK_SUBSCRIPTION_KEY",
        "DASK_GATEWAY__AUTH__KWARGS__PASSWORD",
    }
)


def check_env(env: Mapping[str, str], also_forbidden: Iterable[str] = ()) -> list[str]:
    """Names in env that must not go into a job spec (long-lived secrets).

    `also_forbidden`: names the settings say hold a key (--kbatch-storage-*-env).
    """
    forbidden = FORBIDDEN_ENV | set(also_forbidden)
    return sorted(
        name for name, value in env.items() if name in forbidden or "AccountKey=" in value
    )


def job_env(
    snakemake_env: Mapping[str, str],
    extra_names: Iterable[str],
    environ: Mapping[str, str],
    credentials: Mapping[str, str],
) -> dict[str, str]:
    """Env for a job: Snakemake's envvars, the named extras that are set, then credentials."""
    env = dict(snakemake_env)
    for name in extra_names:
        if environ.get(name):
            env[name] = environ[name]
    env.update(credentials)
    return env
