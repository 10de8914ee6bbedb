"""Transient storage errors are retried; permission and missing-container errors fail at once."""

from __future__ import annotations

import asyncio

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from pcflow.staging.retry import StagingError, is_transient, retry_async, retry_sync


class _Resp:
    def __init__(self, status):
        self.status_code = status
        self.reason = "x"
        self.headers = {}

    def text(self, *a, **k):
        return ""


def _http(status, code=""):
    exc = HttpResponseError(message=f"status {status}", response=_Resp(status))
    exc.error_code = code
    return exc


@pytest.mark.parametrize(
    "exc",
    [_http(503), _http(500), _http(429), ConnectionResetError(), TimeoutError(),
     ServiceRequestError("reset"), ServiceResponseError("eof")],
)  # fmt: skip
def test_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [_http(403, "AuthorizationFailure"), _http(400), ClientAuthenticationError("no"),
     ResourceNotFoundError("ContainerNotFound"), FileNotFoundError("x"), PermissionError()],
)  # fmt: skip
def test_not_transient(exc):
    assert not is_transient(exc)


def test_retry_async_recovers_from_transient_errors():
    calls = []

    async def op():
        calls.append(1)
        if len(calls) < 3:
            raise _http(503)
        return "ok"

    stats = {}
    assert asyncio.run(retry_async(op, "op", base_delay=0.001, stats=stats)) == "ok"
    assert len(calls) == 3 and stats["retries"] == 2


def test_retry_async_fails_at_once_on_permission_error():
    calls = []

    async def op():
        calls.append(1)
        raise _http(403, "AuthorizationPermissionMismatch")

    with pytest.raises(StagingError, match="writing x: access refused .*403"):
        asyncio.run(retry_async(op, "writing x", base_delay=0.001))
    assert len(calls) == 1


def test_missing_container_message_names_the_fix():
    async def op():
        raise _http(404, "ContainerNotFound")

    with pytest.raises(StagingError, match="container does not exist — create it"):
        asyncio.run(retry_async(op, "writing x", base_delay=0.001))


def test_auth_error_triggers_one_refresh_then_succeeds():
    state = {"signed": False, "refreshes": 0}

    async def op():
        if not state["signed"]:
            raise _http(403, "AuthenticationFailed")
        return 42

    async def refresh():
        state["refreshes"] += 1
        state["signed"] = True
        return True

    stats = {}
    assert asyncio.run(retry_async(op, "r", on_auth_error=refresh, stats=stats)) == 42
    assert state["refreshes"] == 1 and stats["auth_retries"] == 1


def test_auth_error_after_refresh_is_fatal():
    refreshes = []

    async def op():
        raise _http(403, "AuthenticationFailed")

    async def refresh():
        refreshes.append(1)
        return True

    with pytest.raises(StagingError, match="access refused"):
        asyncio.run(retry_async(op, "r", on_auth_error=refresh, base_delay=0.001))
    assert len(refreshes) == 1


def test_gives_up_after_attempts():
    async def op():
        raise ConnectionResetError("reset by peer")

    with pytest.raises(StagingError, match="gave up after 3 attempts"):
        asyncio.run(retry_async(op, "r", attempts=3, base_delay=0.001))


def test_retry_sync_looks_through_wrapping_exceptions():
    calls = []

    def fn():
        calls.append(1)
        if len(calls) == 1:
            try:
                raise ServiceRequestError("reset")
            except ServiceRequestError as inner:
                raise RuntimeError("zarr wrapped it") from inner
        return "ok"

    assert retry_sync(fn, "open", base_delay=0.001) == "ok"
    with pytest.raises(KeyError):
        retry_sync(lambda: {}["missing"], "lookup", base_delay=0.001)


def test_unknown_account_names_target_account_name():
    """Issue 12 hole 5: a wrong account said only 'ResourceNotFoundError 404'."""
    from azure.core.exceptions import ResourceNotFoundError, ServiceRequestError

    from pcflow.staging.retry import describe

    exc = ResourceNotFoundError(message="The specified resource does not exist.")
    exc.error_code = "ResourceNotFound"
    line = describe(exc, "writing az://pcflow/demo/x.zarr")
    assert "target.account_name" in line and "\n" not in line
    dns = ServiceRequestError(
        "Cannot connect to host nosuchacct.blob.core.windows.net:443 ssl:default "
        "[Name or service not known]"
    )
    assert "target.account_name" in describe(dns, "listing")
    missing_blob = ResourceNotFoundError(message="The specified blob does not exist.")
    missing_blob.error_code = "BlobNotFound"
    assert "target.account_name" not in describe(missing_blob, "reading")
