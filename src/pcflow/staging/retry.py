"""Which storage errors are worth retrying, and retrying them with backoff.

Transient: timeouts, connection resets, truncated bodies, HTTP 408/429/500/502/503/504.
Fatal at once: permission and authentication failures, missing containers, bad requests —
retrying those only hides a configuration error behind minutes of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

T = TypeVar("T")

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
# Retries are DEBUG noise while short; once an operation has been retried this long, each
# further retry is logged at INFO, so a storage outage shows on the console as it happens.
RETRY_INFO_AFTER_S = 5.0
AUTH_STATUS = {401, 403}


class StagingError(RuntimeError):
    """A staging failure with a one-line explanation of what to fix."""


class AuthError(StagingError):
    """Credentials were refused (expired SAS token, missing role, wrong key)."""


def status_of(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        code = getattr(response, "status_code", None)
    return int(code) if isinstance(code, int) else None


def error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", "") or "")


def is_auth_error(exc: BaseException) -> bool:
    if isinstance(exc, (ClientAuthenticationError, PermissionError, AuthError)):
        return True
    return isinstance(exc, HttpResponseError) and status_of(exc) in AUTH_STATUS


def is_transient(exc: BaseException) -> bool:
    """True for errors a retry can fix."""
    if isinstance(exc, (FileNotFoundError, PermissionError, StagingError, ValueError)):
        return False
    if isinstance(exc, (ResourceNotFoundError, ResourceExistsError, ClientAuthenticationError)):
        return False
    if isinstance(exc, HttpResponseError):
        status = status_of(exc)
        return status is None or status in TRANSIENT_STATUS
    if isinstance(exc, AzureError):  # ServiceRequestError, ServiceResponseError, IncompleteRead
        return True
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return True
    try:
        import aiohttp

        if isinstance(exc, aiohttp.ClientError):
            return True
    except ImportError:  # pragma: no cover - aiohttp comes with adlfs
        pass
    return isinstance(exc, OSError) and not isinstance(exc, FileExistsError)


def _unknown_host(exc: BaseException) -> bool:
    text = str(exc)
    return ".blob.core.windows.net" in text and (
        "Name or service not known" in text or "nodename nor servname" in text
    )


def describe(exc: BaseException, what: str) -> str:
    """One line naming the operation, the cause and the fix."""
    status = status_of(exc)
    code = error_code(exc)
    if code == "ContainerNotFound" or "ContainerNotFound" in str(exc):
        return f"{what}: the container does not exist — create it or fix target.container"
    if code == "ResourceNotFound" or _unknown_host(exc):
        # Azurite answers an unknown account with 404 ResourceNotFound; Azure's DNS has no
        # {account}.blob.core.windows.net at all.
        return (
            f"{what}: the storage account was not found (HTTP {status or '-'} {code or 'DNS'}) "
            "— fix target.account_name (or PCFLOW_AZURE_ACCOUNT_HOST)"
        )
    if is_auth_error(exc):
        return (
            f"{what}: access refused (HTTP {status or '403'} {code}) — check the credential "
            "(PCFLOW_TARGET_* variables, managed identity role 'Storage Blob Data Contributor', "
            "or the source SAS token)"
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{what}: {type(exc).__name__} {status or ''} {code} {first[:200]}".replace("  ", " ")


async def retry_async(
    op: Callable[[], Awaitable[T]],
    what: str,
    *,
    attempts: int = 8,
    base_delay: float = 0.25,
    max_delay: float = 15.0,
    log: logging.Logger | None = None,
    on_auth_error: Callable[[], Awaitable[bool]] | None = None,
    stats: dict[str, int] | None = None,
) -> T:
    """Run `op` until it succeeds, retrying transient errors with capped exponential backoff.

    `on_auth_error` (e.g. re-sign an expired SAS token) is tried once per call; when it returns
    True the operation is retried immediately.
    """
    refreshed = False
    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            return await op()
        except BaseException as exc:  # noqa: BLE001 - classified below
            if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                raise
            if is_auth_error(exc) and on_auth_error is not None and not refreshed:
                refreshed = True
                if await on_auth_error():
                    if stats is not None:
                        stats["auth_retries"] = stats.get("auth_retries", 0) + 1
                    continue
            if not is_transient(exc):
                if isinstance(exc, (FileNotFoundError, StagingError)):
                    raise
                raise StagingError(describe(exc, what)) from exc
            if attempt == attempts:
                raise StagingError(
                    describe(exc, f"{what} (gave up after {attempts} attempts)")
                ) from exc
            if stats is not None:
                stats["retries"] = stats.get("retries", 0) + 1
            delay = min(max_delay, base_delay * 2 ** (attempt - 1)) * (0.5 + random.random())
            _log_retry(log, what, delay, exc, attempt, attempts, started)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _log_retry(
    log: logging.Logger | None,
    what: str,
    delay: float,
    exc: BaseException,
    attempt: int,
    attempts: int,
    started: float,
) -> None:
    """DEBUG while retries are short; INFO (with the cause) once they pass RETRY_INFO_AFTER_S."""
    if log is None:
        return
    waited = time.monotonic() - started
    if waited >= RETRY_INFO_AFTER_S:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        log.info(
            "still retrying %s after %.0f s (attempt %d/%d, next in %.1f s): %s %s",
            what, waited, attempt, attempts, delay, type(exc).__name__, first,
        )  # fmt: skip
    else:
        log.debug("retrying %s in %.2fs after %s", what, delay, type(exc).__name__)


def first_cause(exc: BaseException) -> BaseException:
    """The first real failure inside an exception group (TaskGroup): not a cancellation, not
    another group. "unhandled errors in a TaskGroup (1 sub-exception)" names nothing."""
    while isinstance(exc, BaseExceptionGroup):
        real = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        if not real:
            return exc
        exc = real[0]
    return exc


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception xarray/zarr/fsspec wrapped around a storage error."""
    seen = set()
    while exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    return exc


def retry_sync(
    fn: Callable[[], T],
    what: str,
    *,
    attempts: int = 8,
    base_delay: float = 0.25,
    max_delay: float = 15.0,
    log: logging.Logger | None = None,
) -> T:
    """retry_async for blocking calls (adlfs sync API, xarray opens) made outside the IO loop."""
    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            cause = root_cause(exc)
            if not (is_transient(exc) or (cause is not exc and is_transient(cause))):
                raise
            if attempt == attempts:
                raise StagingError(
                    describe(cause, f"{what} (gave up after {attempts} attempts)")
                ) from exc
            delay = min(max_delay, base_delay * 2 ** (attempt - 1)) * (0.5 + random.random())
            _log_retry(log, what, delay, cause, attempt, attempts, started)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def blob_service_client(fs: Any) -> Any:
    """An async BlobServiceClient for the same account and credential as an adlfs filesystem,
    with a short SDK retry policy.

    The storage SDK's default ExponentialRetry waits 15 s, 18 s, 24 s between attempts; staging
    retries transient errors itself (retry_async) with short capped backoff instead.
    """
    from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry

    base = fs.service_client
    policy = ExponentialRetry(**SDK_RETRY)
    return BlobServiceClient(account_url=base.url, credential=base.credential, retry_policy=policy)


SDK_RETRY = {"initial_backoff": 0.2, "increment_base": 1, "retry_total": 1}


async def download_or_none(blob_client: Any) -> Any | None:
    """The blob's download stream, or None when the blob is absent (Zarr omits all-fill chunks).

    A missing container is not "absent": it is re-raised so that it fails at once, clearly.
    """
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return await blob_client.download_blob()
    except ResourceNotFoundError as exc:
        if "ContainerNotFound" in str(getattr(exc, "error_code", "")):
            raise
        return None


@contextlib.contextmanager
def short_sdk_retries() -> Iterator[None]:
    """Within the block, adlfs filesystems get a short SDK retry policy.

    adlfs offers no way to pass `retry_policy` to the clients it creates, and the storage SDK's
    default waits 15 s, then 18 s, then 24 s: one transient 503 while xarray writes the template
    or opens a store would stall staging for a minute. The two adlfs factory functions are
    wrapped (and restored afterwards) to add a short policy; staging's own retries do the rest.
    """
    import adlfs.spec as spec
    from azure.storage.blob.aio import ExponentialRetry

    originals = (
        spec._create_aio_blob_service_client,
        spec._create_aio_blob_service_client_from_connection_string,
    )

    def with_policy(factory: Any) -> Any:
        def create(*args: Any, **kwargs: Any) -> Any:
            client = factory(*args, **kwargs)
            policy = ExponentialRetry(**SDK_RETRY)
            # Rebuilt with the same URL/credential: a client's pipeline is fixed at construction.
            return type(client)(
                account_url=client.url, credential=client.credential, retry_policy=policy
            )

        return create

    spec._create_aio_blob_service_client = with_policy(originals[0])
    spec._create_aio_blob_service_client_from_connection_string = with_policy(originals[1])
    try:
        yield
    finally:
        (
            spec._create_aio_blob_service_client,
            spec._create_aio_blob_service_client_from_connection_string,
        ) = originals
