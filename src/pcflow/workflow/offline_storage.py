"""Dry runs that work with the default storage out of reach.

With a default storage provider (the kbatch profile: Azure), Snakemake asks the storage whether
every output exists, even for `-n`. When the storage cannot be reached (sandbox down, no
credential, no network) each question is retried for minutes (storage plugin retries x Azure SDK
retries x credential probes). A plan does not need the answer: pcflow probes the storage once,
with a short deadline, and if it cannot answer, plans as if nothing were stored yet and says so.

Only dry runs and DAG pictures take this path. A real run still needs the storage, and one
that cannot reach it stops at once with one line instead of retrying for minutes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

PROBE_SECONDS = 8.0


def run_with_deadline(fn: Callable[[], Any], seconds: float) -> tuple[bool, Any]:
    """(finished, result or exception) of fn() run in a daemon thread for at most `seconds`.

    A daemon thread, because credential probes (managed identity, CLI) can block far longer
    than the deadline and must not keep the process alive after Snakemake is done.
    """
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller as the reason
            out["value"] = exc

    thread = threading.Thread(target=target, name="pcflow-storage-probe", daemon=True)
    thread.start()
    thread.join(seconds)
    return ("value" in out), out.get("value")


def _azure_probe(provider: Any, container: str) -> Callable[[], Any] | None:
    """One container request with the provider's own endpoint and credential, no retries."""
    bsc = getattr(provider, "bsc", None)
    if bsc is None or not hasattr(bsc, "url"):
        return None
    from azure.storage.blob import BlobServiceClient

    probe = BlobServiceClient(
        bsc.url, credential=bsc.credential, retry_total=0, connection_timeout=3, read_timeout=5
    )
    return lambda: probe.get_container_client(container).exists()


def _generic_probe(provider: Any, query: str) -> Callable[[], Any]:
    obj = provider.object(query)
    # The plugin's own retry decorator (tenacity) would wait between attempts: call through it.
    exists = getattr(type(obj).exists, "__wrapped__", None)
    return (lambda: exists(obj)) if exists else obj.exists


def probe_storage(provider: Any, prefix: str, seconds: float = PROBE_SECONDS) -> tuple[bool, Any]:
    """Ask the storage one existence question: (finished in time, result or exception)."""
    container = urlparse(prefix).netloc
    probe = _azure_probe(provider, container) if container else None
    # azure.identity logs each failed credential as a warning: the reason line says it once.
    quiet = logging.getLogger("azure")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return run_with_deadline(probe or _generic_probe(provider, prefix), seconds)
    finally:
        quiet.setLevel(level)


def describe(exc: BaseException) -> str:
    """One line naming an exception, with any secret in it redacted."""
    from pcflow.redaction import redact

    text = redact(str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def reason_for(finished: bool, value: Any, seconds: float) -> str | None:
    """Why a probe's outcome means 'out of reach' (one line), or None if it answered."""
    if not finished:
        return f"no answer within {seconds:g} s"
    if isinstance(value, BaseException):
        return describe(value)
    return None


def assume_nothing_stored(provider: Any) -> None:
    """Make every storage object this provider creates from now on report 'not stored'.

    The provider builds each object from `get_storage_object_cls()`; a subclass answering
    exists() = False without the network is enough for Snakemake's planning (mtime and size
    are only asked of objects that exist).
    """
    base = provider.get_storage_object_cls()
    if getattr(base, "pcflow_offline", False):
        return

    async def inventory(self: Any, cache: Any) -> None:  # nothing to learn offline
        return None

    offline = type(
        f"Offline{base.__name__}",
        (base,),
        {"pcflow_offline": True, "exists": lambda self: False, "inventory": inventory},
    )
    provider.get_storage_object_cls = lambda: offline


def check_default_storage(workflow: Any, plan_only: bool) -> str | None:
    """Probe the default storage once in the main process, before any job is planned.

    Plan-only invocations (dry runs and DAG pictures: pcflow.workflow.invocation) with the
    storage out of reach plan offline (returns the notice).
    Any other run whose storage refuses at once (connection refused, no credential, no
    permission) stops here with one line (SystemExit) instead of retrying for minutes; a
    probe that merely runs out of time lets the run go on and Snakemake decide.
    """
    settings = workflow.storage_settings
    prefix = getattr(settings, "default_storage_prefix", None)
    if not getattr(settings, "default_storage_provider", None) or not prefix:
        return None
    if not workflow.is_main_process:
        return None
    provider = workflow.storage_registry.default_storage_provider
    finished, value = probe_storage(provider, prefix)
    reason = reason_for(finished, value, PROBE_SECONDS)
    if reason is None:
        return None
    if plan_only:
        assume_nothing_stored(provider)
        return (
            f"pcflow: default storage {prefix} is out of reach ({reason}); planning as if no "
            "output is stored yet — start the storage (`pcflow sandbox up`) for a plan that "
            "knows what exists"
        )
    if finished:
        raise SystemExit(
            f"pcflow: default storage {prefix} is out of reach ({reason}) — start it "
            '(`pcflow sandbox up`, then `eval "$(pcflow sandbox env)"`) or set its credentials; '
            "nothing was run"
        )
    return None
