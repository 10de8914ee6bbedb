"""A Zarr collection asset (MPC `zarr-abfs`) as a staging source.

Opened exactly as MPC users do (`xr.open_zarr(href, storage_options=signed options,
**open_kwargs)`) for coordinates and attributes; chunks are then read raw (bytes →
numcodecs) so that the data never goes through CF decode/encode or a Dask graph.
SAS tokens are refreshed when they near expiry or when the service refuses them.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import itertools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import xarray as xr

from pcflow import storage
from pcflow.staging.codec import ArrayMeta
from pcflow.staging.retry import (
    StagingError,
    blob_service_client,
    download_or_none,
    is_auth_error,
    retry_async,
    retry_sync,
    root_cause,
)

REFRESH_MARGIN_S = 300  # re-sign when a token has less than this left
PREFETCH = 2  # source chunks fetched/decoded at once for one target chunk


class SourceAuth:
    """Signed storage options for one asset, re-signed on demand (expired SAS tokens)."""

    def __init__(self, asset: dict[str, Any], signing: str, log: logging.Logger):
        self.asset = copy.deepcopy(asset)
        self.signing = signing
        self.log = log
        self.generation = 0
        self.refreshes = 0
        self.expiry: float | None = None
        self._lock = asyncio.Lock()
        self.sign()

    @property
    def account(self) -> str | None:
        return (self.asset.get("xarray:storage_options") or {}).get("account_name")

    @property
    def container(self) -> str | None:
        href = self.asset["href"]
        return href.split("://", 1)[1].split("/", 1)[0] if "://" in href else None

    def sign(self, force: bool = False) -> None:
        from pcflow.discover import sign_asset_dict

        if force and self.signing == "planetary-computer":
            _forget_token(self.account, self.container)
            self.refreshes += 1
        signed = sign_asset_dict(self.asset, self.signing)
        self.storage_options = storage.source_storage_options(
            signed.get("xarray:storage_options") or {}
        )
        self.expiry = _token_expiry(self.account, self.container, self.signing)
        self.fs = storage.filesystem(self.storage_options) if self.is_abfs else None
        self.generation += 1

    @property
    def is_abfs(self) -> bool:
        return self.asset["href"].split("://", 1)[0] in ("abfs", "az", "abfss")

    def needs_refresh(self) -> bool:
        return self.expiry is not None and self.expiry - time.time() < REFRESH_MARGIN_S

    async def refresh(self, seen_generation: int) -> bool:
        """Re-sign once for all callers that saw `seen_generation` fail; False if unsignable."""
        if self.signing != "planetary-computer" or not self.account:
            return False
        async with self._lock:
            if self.generation == seen_generation:
                self.log.info("re-signing source access for %s/%s", self.account, self.container)
                await asyncio.get_running_loop().run_in_executor(None, self.sign, True)
        return True


def _forget_token(account: str | None, container: str | None) -> None:
    try:
        import planetary_computer.sas as pc_sas
        from planetary_computer.settings import Settings

        pc_sas.TOKEN_CACHE.pop(f"{Settings.get().sas_url}/{account}/{container}", None)
    except Exception:  # noqa: BLE001 - cache layout is an implementation detail
        pass


def _token_expiry(account: str | None, container: str | None, signing: str) -> float | None:
    if signing != "planetary-computer" or not account or not container:
        return None
    try:
        import planetary_computer.sas as pc_sas

        return pc_sas.get_token(account, container).expiry.timestamp()  # cached: no request
    except Exception:  # noqa: BLE001
        return None


def open_dataset(auth: SourceAuth, log: logging.Logger | None = None) -> xr.Dataset:
    """The MPC quickstart way: xr.open_zarr(href, **open_kwargs, storage_options=...).

    Index coordinates are loaded here (they decide the subset), so a transient fault while
    reading them is retried rather than surfacing later.
    """
    kwargs = dict(auth.asset.get("xarray:open_kwargs") or {})
    kwargs.pop("storage_options", None)
    kwargs.setdefault("chunks", {})

    def attempt() -> xr.Dataset:
        ds = xr.open_zarr(auth.asset["href"], storage_options=auth.storage_options, **kwargs)
        for name in ds.indexes:
            ds[name].values  # noqa: B018 - force the read inside the retry
        return ds

    what = f"opening source {auth.asset['href']}"
    try:
        try:
            return retry_sync(attempt, what, log=log)
        except Exception as exc:  # noqa: BLE001 - an expired/refused SAS token: re-sign once
            if not (is_auth_error(root_cause(exc)) and auth.signing == "planetary-computer"):
                raise
            if log is not None:
                log.info("source access refused while opening: re-signing and retrying")
            auth.sign(force=True)
            return retry_sync(attempt, what, log=log)
    except StagingError:
        raise
    except Exception as exc:  # noqa: BLE001 - one clear line for the user
        raise StagingError(
            f"cannot open source Zarr {auth.asset['href']}: {type(exc).__name__}: {exc} — "
            "check the asset, signing and network access"
        ) from exc


class ChunkCache:
    """Decoded source chunks shared by concurrent readers; bounded in bytes, one fetch per key."""

    def __init__(self, capacity_bytes: int):
        self.capacity = capacity_bytes
        self.uses: dict[str, int] = {}  # planned remaining reads; 0 -> dropped at once
        self.size = 0
        self.peak = 0  # most bytes held at once (the run stats' source_cache_peak_mb)
        self.data: OrderedDict[str, np.ndarray] = OrderedDict()
        self.inflight: dict[str, asyncio.Future] = {}
        self.hits = 0
        self.misses = 0
        self.dropped = 0  # chunks not kept or evicted for the cap (their readers re-read them)

    async def get(self, key: str, loader: Callable[[], Awaitable[np.ndarray]]) -> np.ndarray:
        if key in self.data:
            self.hits += 1
            self.data.move_to_end(key)
            return self.data[key]
        if key in self.inflight:
            self.hits += 1
            return await asyncio.shield(self.inflight[key])
        self.misses += 1
        fut = asyncio.ensure_future(loader())
        self.inflight[key] = fut
        try:
            value = await fut
        finally:
            self.inflight.pop(key, None)
        if self.uses.get(key, 0) <= 0:  # no other planned reader (or an unplanned read)
            return value
        if value.nbytes > self.capacity:  # would break the cap on its own: not kept
            self.dropped += 1
            return value
        # Make room first (least recently used out), then insert: the cap is never exceeded,
        # not even for a moment. An evicted chunk with readers left is read again by them.
        while self.size + value.nbytes > self.capacity and self.data:
            _, old = self.data.popitem(last=False)
            self.size -= old.nbytes
            self.dropped += 1
        self.data[key] = value
        self.size += value.nbytes
        self.peak = max(self.peak, self.size)
        return value

    def expect(self, keys: list[str]) -> None:
        """Announce future reads, so that a chunk is dropped right after its last reader."""
        for k in keys:
            self.uses[k] = self.uses.get(k, 0) + 1

    def release(self, key: str) -> None:
        if key not in self.uses:
            return  # unplanned reads (verification) are not kept
        self.uses[key] -= 1
        if self.uses[key] <= 0 and key in self.data:
            self.size -= self.data.pop(key).nbytes


class ZarrV2Source:
    """Raw chunk access to a Zarr v2 store on Azure Blob Storage (adlfs)."""

    kind = "zarr"
    prefetch = PREFETCH  # source chunks loaded at once per target chunk (fit to memory_mb)

    def __init__(self, auth: SourceAuth, ds: xr.Dataset, log: logging.Logger, stats: dict):
        self.auth = auth
        self.ds = ds
        self.log = log
        self.stats = stats
        self.root = auth.asset["href"].split("://", 1)[1].rstrip("/")
        self.container, _, self.prefix = self.root.partition("/")
        self.meta = self._read_meta()
        # Decoded source chunks: enough for every chunk touched by the chunks in flight.
        biggest = max((m.chunk_nbytes for m in self.meta.values()), default=0)
        self.cache = ChunkCache(max(256 * 2**20, 4 * biggest))
        self.cpu: Any = None  # executor set by the writer
        # Source chunks being fetched/decoded/copied at once, over all target chunks in flight
        # (`_bounded_concurrency` lowers it and `prefetch` to fit staging.memory_mb).
        self.load_slots = 8
        self._loads: asyncio.Semaphore | None = None
        self._service: tuple[int, Any] | None = None
        self._retired: list[Any] = []

    # -- metadata ---------------------------------------------------------------------------------

    def _read_meta(self) -> dict[str, ArrayMeta]:
        fs = self.auth.fs

        def cat(path: str) -> bytes:
            return retry_sync(lambda: fs.cat_file(path), f"reading {path}", log=self.log)

        try:
            doc = json.loads(cat(f"{self.root}/.zmetadata"))["metadata"]
        except FileNotFoundError:
            doc = {}
            for name in self.ds.variables:
                try:
                    doc[f"{name}/.zarray"] = json.loads(cat(f"{self.root}/{name}/.zarray"))
                except FileNotFoundError:
                    continue
        out: dict[str, ArrayMeta] = {}
        for key, value in doc.items():
            if key.endswith("/.zarray") and key.count("/") == 1:
                out[key.split("/")[0]] = ArrayMeta.from_zarray(value)
        return out

    @staticmethod
    def supports(auth: SourceAuth) -> bool:
        """Raw access needs adlfs and Zarr v2 metadata at the root."""
        if not auth.is_abfs or auth.fs is None:
            return False
        root = auth.asset["href"].split("://", 1)[1].rstrip("/")
        path = f"{root}/.zgroup"
        try:
            doc = retry_sync(lambda: auth.fs.cat_file(path), f"reading {path}")
            return json.loads(doc).get("zarr_format") == 2
        except FileNotFoundError:  # no .zgroup: not a v2 group (v3 has zarr.json)
            return False
        except ValueError:
            return False

    # -- bytes ------------------------------------------------------------------------------------

    def service(self) -> Any:
        """The blob service client for the current signature (rebuilt after re-signing)."""
        if self._service is None or self._service[0] != self.auth.generation:
            old = self._service
            self._service = (self.auth.generation, blob_service_client(self.auth.fs))
            if old is not None:
                self._retired.append(old[1])
        return self._service[1]

    async def aclose(self) -> None:
        for client in [*self._retired, *([self._service[1]] if self._service else [])]:
            await client.close()
        self._service, self._retired = None, []

    def blob_name(self, var: str, idx: tuple[int, ...]) -> str:
        return f"{self.prefix}/{var}/{self.meta[var].key(idx)}"

    def blob_url(self, blob: str) -> str:
        """HTTPS URL of a source blob with the current SAS token (for server-side copy)."""
        base = self.auth.fs.service_client.url.rstrip("/")
        url = f"{base}/{self.container}/{blob}"
        cred = self.auth.storage_options.get("credential") or self.auth.storage_options.get(
            "sas_token"
        )
        return f"{url}?{cred.lstrip('?')}" if isinstance(cred, str) else url

    async def get_bytes(self, blob: str) -> bytes | None:
        """A whole source blob (None if absent: Zarr omits all-fill chunks), integrity-checked."""
        got = await self.get_verified(blob)
        return None if got is None else got[0]

    async def get_verified(self, blob: str) -> tuple[bytes, str] | None:
        """A whole source blob and its MD5 (hex), None if absent. The MD5 is hashed once, off the
        event loop, and checked against the stored one when the blob has it: a copy reuses it
        instead of hashing the chunk again."""

        seen = {"gen": self.auth.generation}

        async def op() -> tuple[bytes, str] | None:
            if self.auth.needs_refresh():
                await self.auth.refresh(self.auth.generation)
            seen["gen"] = self.auth.generation
            async with self.service().get_blob_client(container=self.container, blob=blob) as bc:
                stream = await download_or_none(bc)
                if stream is None:
                    return None
                data = await stream.readall()
                md5 = stream.properties.content_settings.content_md5
                size = stream.properties.size
            if size is not None and len(data) != size:
                raise ConnectionError(f"truncated read of {blob}: {len(data)} of {size} bytes")
            # Hashing a chunk takes milliseconds: off the event loop, or every transfer waits.
            digest = await asyncio.get_running_loop().run_in_executor(self.cpu, _md5_digest, data)
            if md5 and digest != bytes(md5):
                raise ConnectionError(f"MD5 mismatch reading {blob}")
            self.stats["source_bytes"] = self.stats.get("source_bytes", 0) + len(data)
            return data, digest.hex()

        async def refresh() -> bool:
            return await self.auth.refresh(seen["gen"])

        return await retry_async(
            op,
            f"reading source {self.container}/{blob}",
            log=self.log,
            on_auth_error=refresh,
            stats=self.stats,
        )

    # -- values -----------------------------------------------------------------------------------

    async def _decoded(self, var: str, idx: tuple[int, ...]) -> np.ndarray:
        meta = self.meta[var]
        blob = self.blob_name(var, idx)

        async def load() -> np.ndarray:
            raw = await self.get_bytes(blob)
            loop = asyncio.get_running_loop()
            if raw is None:
                return meta.empty_chunk()
            return await loop.run_in_executor(self.cpu, meta.decode, raw)

        return await self.cache.get(blob, load)

    def _load_gate(self) -> asyncio.Semaphore:
        if self._loads is None:
            self._loads = asyncio.Semaphore(max(1, self.load_slots))
        return self._loads

    async def read_block(
        self, var: str, slices: tuple[slice, ...], offset: tuple[int, ...]
    ) -> np.ndarray:
        """Raw stored values for target region `slices` (source index = offset + target index)."""
        meta = self.meta[var]
        if not meta.shape:
            value = (await self._decoded(var, ()))[()]
            self.cache.release(self.blob_name(var, ()))
            return value
        out = np.empty(tuple(s.stop - s.start for s in slices), dtype=meta.np_dtype)
        await self.read_into(var, slices, offset, out)
        return out

    async def read_into(
        self, var: str, slices: tuple[slice, ...], offset: tuple[int, ...], out: np.ndarray
    ) -> None:
        """Fill `out` (shaped like `slices`) with the raw values of target region `slices`.

        Source chunks are fetched in C order (time first), at most PREFETCH at a time per call
        and `load_slots` over all calls; each is copied into `out` as soon as it is decoded and
        released right after: a target chunk never holds all the source chunks it overlaps (a
        time-contiguous target chunk of a 40-year source overlaps 40+), and neighbouring target
        chunks in flight, which walk the same source chunks in the same order, find them in the
        cache (decoded once).
        """
        meta = self.meta[var]
        src = [slice(o + s.start, o + s.stop) for s, o in zip(slices, offset, strict=False)]
        ranges = [
            range(s.start // c, (s.stop - 1) // c + 1)
            for s, c in zip(src, meta.chunks, strict=False)
        ]
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(max(1, self.prefetch))

        async def one(idx: tuple[int, ...]) -> None:
            dst, srcsel = [], []
            for i, s, c in zip(idx, src, meta.chunks, strict=False):
                lo, hi = max(s.start, i * c), min(s.stop, (i + 1) * c)
                dst.append(slice(lo - s.start, hi - s.start))
                srcsel.append(slice(lo - i * c, hi - i * c))
            async with gate, self._load_gate():
                chunk = await self._decoded(var, idx)
                try:
                    await loop.run_in_executor(self.cpu, _copy, out, tuple(dst), chunk, srcsel)
                finally:
                    self.cache.release(self.blob_name(var, idx))

        await asyncio.gather(*(one(idx) for idx in itertools.product(*ranges)))

    def chunk_window(
        self, var: str, slices: tuple[slice, ...], offset: tuple[int, ...], last: bool = False
    ) -> tuple[slice, ...]:
        """The part of target region `slices` inside its first (or last) source chunk."""
        meta = self.meta[var]
        out = []
        for s, o, c in zip(slices, offset, meta.chunks, strict=True):
            i = (o + (s.stop - 1 if last else s.start)) // c
            out.append(slice(max(s.start, i * c - o), min(s.stop, (i + 1) * c - o)))
        return tuple(out)

    def source_chunks_for(
        self, var: str, slices: tuple[slice, ...], offset: tuple[int, ...]
    ) -> list[str]:
        """Blob names of the source chunks a target region overlaps."""
        meta = self.meta[var]
        if not meta.shape:
            return [self.blob_name(var, ())]
        ranges = [
            range((o + s.start) // c, (o + s.stop - 1) // c + 1)
            for s, o, c in zip(slices, offset, meta.chunks, strict=True)
        ]
        return [self.blob_name(var, idx) for idx in itertools.product(*ranges)]


def _md5_digest(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def _copy(out: np.ndarray, dst: tuple[slice, ...], chunk: np.ndarray, src: list[slice]) -> None:
    out[dst] = chunk[tuple(src)]
