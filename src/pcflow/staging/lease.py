"""One writer per target store: an Azure blob lease held while staging.

The lease is taken on a small blob beside the store (`{store}.lease`, outside the store so that
a wipe never touches it) and renewed by a heartbeat. Its metadata names the holder (host, pid,
run) and when the lease runs out, so a second writer is refused with one line saying who holds
it and until when. A holder that was killed loses the lease when it expires (LEASE_SECONDS);
on the same host a holder whose process is gone is broken at once (so a run resumed right after
a kill does not wait). A holder that cannot renew (storage paused longer than the lease) stops
before marking the store complete: another writer may have taken over.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import uuid
from typing import Any

from azure.storage.blob.aio import BlobLeaseClient

from pcflow.staging.retry import StagingError

LEASE_SECONDS = 30  # Azure allows 15..60 s (or infinite: never, a killed holder would block)
RENEW_SECONDS = 8  # a renewal every 8 s survives two failed ones inside the lease


class StoreBusyError(StagingError):
    """Another run holds the store's lease."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StoreLease:
    """Acquire with `acquire()` (in the IO loop), release with `release()`; `check()` raises
    if the heartbeat lost the lease."""

    def __init__(self, blobs: Any, blob: str, run: str | None = None):
        self.blobs = blobs  # fastcopy.TargetBlobs (its async service client)
        self.blob = blob
        self.run = run or os.environ.get("PCFLOW_RUN_ID") or uuid.uuid4().hex[:12]
        self.lease_id = str(uuid.uuid4())
        self.lost: str | None = None
        self._task: asyncio.Task | None = None

    def _client(self) -> Any:
        return self.blobs.service.get_blob_client(container=self.blobs.container, blob=self.blob)

    def _holder(self) -> dict[str, str]:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=LEASE_SECONDS)
        return {
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "run": self.run,
            "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    async def acquire(self) -> None:
        """Take the lease or raise StoreBusyError naming the holder."""
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        async with self._client() as bc:
            try:
                await bc.upload_blob(b"", overwrite=False)
            except ResourceExistsError:
                pass
            except HttpResponseError as exc:  # e.g. 412 when it exists and is leased
                if getattr(exc, "status_code", None) not in (409, 412):
                    raise
            for attempt in (1, 2):
                try:
                    await bc.acquire_lease(lease_duration=LEASE_SECONDS, lease_id=self.lease_id)
                    break
                except HttpResponseError as exc:
                    if getattr(exc, "status_code", None) != 409:
                        raise
                    holder = (await bc.get_blob_properties()).metadata or {}
                    if attempt == 1 and self._holder_dead(holder):
                        await BlobLeaseClient(bc).break_lease(lease_break_period=0)
                        continue
                    raise StoreBusyError(
                        f"target store {self.blobs.container}/{self.blob[: -len('.lease')]} is "
                        f"being staged by host {holder.get('host', '?')} pid "
                        f"{holder.get('pid', '?')} run {holder.get('run', '?')} (lease until "
                        f"{holder.get('expires', '?')} unless renewed) — wait for that run, or "
                        "stage into another target.prefix"
                    ) from None
            await bc.set_blob_metadata(self._holder(), lease=self.lease_id)
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())

    @staticmethod
    def _holder_dead(holder: dict[str, str]) -> bool:
        """Same host and its process is gone: a killed run, safe to break."""
        if holder.get("host") != socket.gethostname():
            return False
        try:
            return not _pid_alive(int(holder.get("pid", "")))
        except ValueError:
            return False

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                async with self._client() as bc:
                    await BlobLeaseClient(bc, lease_id=self.lease_id).renew()
                    await bc.set_blob_metadata(self._holder(), lease=self.lease_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - judged in check()
                # Transient: the next beat tries again; the lease outlives two missed beats.
                # If it really ran out, the renewal below fails with a lease error for good.
                from azure.core.exceptions import HttpResponseError

                if isinstance(exc, HttpResponseError) and exc.status_code == 409:
                    self.lost = f"{type(exc).__name__}: {getattr(exc, 'error_code', '')}"
                    return

    def check(self) -> None:
        """Raise when the lease was lost (another writer may have taken the store over)."""
        if self.lost:
            raise StagingError(
                f"lost the lease on {self.blobs.container}/{self.blob} ({self.lost}): another "
                "run may be writing this store — not marking it complete; re-run staging"
            )

    async def verify(self) -> None:
        """Renew now (proves we still hold it) right before the completion marker."""
        from azure.core.exceptions import HttpResponseError

        self.check()
        try:
            async with self._client() as bc:
                await BlobLeaseClient(bc, lease_id=self.lease_id).renew()
        except HttpResponseError as exc:
            self.lost = f"{type(exc).__name__}: {getattr(exc, 'error_code', '')}"
            self.check()

    async def release(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        try:
            async with self._client() as bc:
                await BlobLeaseClient(bc, lease_id=self.lease_id).release()
        except Exception:  # noqa: BLE001 - an expired lease needs no release
            pass
