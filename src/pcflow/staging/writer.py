"""Template, then regions: the resumable write of one Zarr v2 store.

Order of writes (each step only after the previous one succeeded):
1. template: all array metadata + index coordinates (xarray `to_zarr(compute=False)`), then
   `.pcflow/plan.json` holding the plan's fingerprint;
2. regions (runs of chunks of one variable), concurrently; a region's marker
   `.pcflow/regions/{var}/{k}.json` (chunk MD5s) is written only after all its chunks;
3. `.zmetadata` (consolidated metadata, built from the known arrays — no listing);
4. verification, then `.pcflow/complete.json`.
A killed run leaves no `.zmetadata`/complete marker; the re-run finds plan.json with the same
fingerprint and writes only regions without markers. A different plan wipes the store first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fsspec.asyn
import numpy as np

from pcflow.staging.codec import ArrayMeta, md5_hex
from pcflow.staging.fastcopy import TargetBlobs
from pcflow.staging.plan import Region, VarPlan
from pcflow.staging.retry import StagingError, describe, first_cause, retry_async, retry_sync

STATE = ".pcflow"
COMPLETE = f"{STATE}/complete.json"  # the completion record: written last, deleted first
PLAN = f"{STATE}/plan.json"  # the plan's fingerprint: a run with the same one resumes
FORMAT = "pcflow-staging/1"


def dumps(doc: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys) for everything staging writes."""
    return (json.dumps(doc, sort_keys=True, indent=1, default=str) + "\n").encode()


class StoreWriter:
    """One Zarr store under `container/path` in the target account."""

    def __init__(
        self,
        fs: Any,
        root: str,
        log: logging.Logger,
        stats: dict[str, Any],
        concurrency: int = 8,
        threads: int = 2,
    ):
        self.fs = fs
        self.root = root.strip("/")
        self.container, _, self.path = self.root.partition("/")
        self.log = log
        self.stats = stats
        self.concurrency = max(1, int(concurrency))
        self.cpu = ThreadPoolExecutor(max(1, int(threads)), thread_name_prefix="pcflow-codec")
        self.blobs = TargetBlobs(fs, self.container, log, stats)

    def close(self, *others: Any) -> None:
        """Shut the codec threads and close the HTTP sessions (ours and `others`' aclose())."""
        self.cpu.shutdown(wait=True)
        for obj in (self.blobs, *others):
            try:
                self.sync(obj.aclose)
            except Exception as exc:  # noqa: BLE001 - closing must not mask the real outcome
                self.log.debug("closing %s: %s", type(obj).__name__, exc)

    # -- small objects ----------------------------------------------------------------------------

    def blob(self, key: str) -> str:
        return f"{self.path}/{key}"

    def sync(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return fsspec.asyn.sync(self.fs.loop, fn, *args)

    def read_json(self, key: str) -> dict[str, Any] | None:
        data = self.sync(self.blobs.get, self.blob(key))
        return json.loads(data) if data is not None else None

    def write_json(self, key: str, doc: Any) -> bool:
        """Write unless the stored object already has exactly these bytes; True if written."""
        data = dumps(doc)
        if self.sync(self.blobs.get, self.blob(key)) == data:
            return False
        self.sync(self.blobs.put, self.blob(key), data)
        return True

    def check_container(self) -> None:
        """Fail at once, with the fix, when the target container is missing or unreachable."""

        async def probe() -> None:
            # Listing one blob works with a container-scoped SAS (what kbatch jobs get);
            # get_container_properties would need account-level rights.
            client = self.blobs.service.get_container_client(self.container)
            async for _ in client.list_blobs(results_per_page=1):
                break

        what = f"checking target container {self.container}"
        try:
            self.sync(retry_async, probe, what)
        except StagingError as exc:
            if "ContainerNotFound" in str(exc) or "ContainerNotFound" in str(exc.__cause__):
                raise StagingError(
                    f"target container {self.container!r} does not exist in account "
                    f"{getattr(self.fs, 'account_name', '?')} — create it or fix target.container"
                ) from exc
            raise

    def wipe(self) -> None:
        """Delete every object under the store (a previous, different plan), in phases.

        First the objects that make a store count as complete or resumable — the completion
        marker, the consolidated metadata, the plan — one after the other, then everything
        else. A bulk delete is concurrent, so an interrupted one could leave the marker and
        `.zmetadata` beside missing chunks: a store that would pass as complete.
        """
        for key in (COMPLETE, ".zmetadata", PLAN):
            self.sync(self.blobs.delete, self.blob(key))
        paths = self.find(self.root)
        if paths:
            self.log.info(
                "removing %d objects of a previous, different store at %s", len(paths), self.root
            )
            retry_sync(lambda: self.fs.rm(paths), f"deleting {self.root}", log=self.log)

    def chunk_keys(self) -> set[str]:
        """Keys (relative to the store) of every object outside `.pcflow/` (one listing)."""
        n = len(self.root) + 1
        return {p[n:] for p in self.find(self.root) if not p[n:].startswith(f"{STATE}/")}

    def find(self, prefix: str) -> list[str]:
        """All object paths under a prefix (fresh listing, retried)."""
        try:
            return retry_sync(lambda: self.fs.find(prefix), f"listing {prefix}", log=self.log)
        except FileNotFoundError:
            return []

    def upload_template(self, tmpl: Any, encoding: dict[str, Any], zarr_format: int) -> int:
        """Write the template with xarray to a local directory, then upload its files.

        xarray decides the metadata exactly as `to_zarr(url, compute=False)` would; the upload
        goes through staging's own retrying client (a transient fault while zarr writes through
        adlfs would otherwise stall or abort the run). Returns the number of objects.
        """
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory(prefix="pcflow-template-") as tmp:
            local = Path(tmp) / "store.zarr"
            tmpl.to_zarr(
                local, mode="w", compute=False, consolidated=False, zarr_format=zarr_format,
                encoding=encoding,
            )  # fmt: skip
            files = sorted(p for p in local.rglob("*") if p.is_file())
            items = [(p.relative_to(local).as_posix(), p.read_bytes()) for p in files]

        async def put_all() -> None:
            sem = asyncio.Semaphore(self.concurrency)

            async def one(key: str, data: bytes) -> None:
                async with sem:
                    await self.blobs.put(self.blob(key), data)

            await asyncio.gather(*(one(k, d) for k, d in items))

        self.sync(put_all)
        return len(items)

    # -- state ------------------------------------------------------------------------------------

    def state(self) -> tuple[dict | None, dict | None]:
        return self.read_json(PLAN), self.read_json(COMPLETE)

    def drop_completion(self) -> None:
        """Delete the completion record: the store no longer counts as complete."""
        self.sync(self.blobs.delete, self.blob(COMPLETE))

    def done_regions(self) -> dict[str, dict[str, Any]]:
        """Markers of finished regions: {region id: marker}."""
        prefix = f"{self.root}/{STATE}/regions"
        paths = [p for p in self.find(prefix) if p.endswith(".json")]
        if not paths:
            return {}
        contents = retry_sync(lambda: self.fs.cat(paths), "reading region markers", log=self.log)
        out = {}
        for path, data in contents.items():
            rel = path[len(prefix) + 1 : -len(".json")]
            out[rel] = json.loads(data)
        return out

    def array_meta(self, name: str) -> ArrayMeta:
        doc = self.read_json(f"{name}/.zarray")
        if doc is None:
            raise StagingError(f"template has no array {name}: the store at {self.root} is broken")
        return ArrayMeta.from_zarray(doc)

    # -- regions ----------------------------------------------------------------------------------

    def run_regions(
        self,
        regions: list[Region],
        plans: dict[str, VarPlan],
        metas: dict[str, ArrayMeta],
        orders: dict[str, list[tuple[int, ...]]],
        chunk_fn: Callable[
            [VarPlan, ArrayMeta, tuple[int, ...]], Awaitable[tuple[str | None, int]]
        ],
    ) -> dict[str, dict[str, Any]]:
        """Write the regions, each marker after its chunks; returns markers. A region is a run of
        positions in its variable's write order (`orders`: chunk indices)."""
        try:
            return self.sync(self._run_regions, regions, plans, metas, orders, chunk_fn)
        except BaseExceptionGroup as group:
            # The TaskGroup's own message names nothing; its first real cause is the one line.
            cause = first_cause(group)
            if cause is group or not isinstance(cause, Exception):
                raise
            if isinstance(cause, StagingError):
                raise type(cause)(str(cause)) from group
            raise StagingError(describe(cause, f"writing regions of {self.root}")) from group

    async def _run_regions(
        self, regions, plans, metas, orders, chunk_fn
    ) -> dict[str, dict[str, Any]]:
        sem = asyncio.Semaphore(self.concurrency)
        # Regions in flight: enough that their chunks keep every chunk slot busy across region
        # ends (small regions — a variable of a few chunks — would otherwise leave slots idle at
        # the tail), few enough that the waiting tasks stay a window, not the whole dataset.
        # Chunks take slots in region order (FIFO), so neighbours still run together.
        per_region = max(1, min((r.count for r in regions), default=1))
        region_sem = asyncio.Semaphore(max(2, -(-2 * self.concurrency // per_region)))
        markers: dict[str, dict[str, Any]] = {}
        total = len(regions)
        t0 = time.monotonic()
        done = 0

        async def one_chunk(plan: VarPlan, meta: ArrayMeta, idx: tuple[int, ...]):
            async with sem:
                md5, size = await chunk_fn(plan, meta, idx)
                return meta.key(idx), md5, size

        async def one_region(region: Region) -> None:
            nonlocal done
            async with region_sem:
                plan, meta = plans[region.var], metas[region.var]
                idxs = orders[region.var][region.first : region.first + region.count]
                async with asyncio.TaskGroup() as tg:
                    tasks = [tg.create_task(one_chunk(plan, meta, i)) for i in idxs]
                results = [t.result() for t in tasks]
                marker = {
                    "region": region.id,
                    "chunks": {k: md5 for k, md5, _ in results},
                    "bytes": sum(max(s, 0) for _, _, s in results),
                }
                await self.blobs.put(self.blob(f"{STATE}/regions/{region.id}.json"), dumps(marker))
                markers[region.id] = marker
                done += 1
                self.stats["regions_written"] = self.stats.get("regions_written", 0) + 1
                if done == total or done % max(1, total // 10) == 0:
                    self.log.info(
                        "regions %d/%d written (%.1f s)", done, total, time.monotonic() - t0
                    )

        async with asyncio.TaskGroup() as tg:
            for region in regions:
                tg.create_task(one_region(region))
        return markers

    async def encode_and_put(
        self, meta: ArrayMeta, key: str, block: np.ndarray | list[np.ndarray], idx
    ) -> tuple[str, int]:
        """Encode a chunk's values and upload them. A one-item list hands the values over: they
        are dropped once encoded, so a chunk waiting for its upload holds only its bytes."""
        loop = asyncio.get_running_loop()
        holder = block if isinstance(block, list) else [block]
        del block

        def work() -> tuple[bytes, str]:
            data = meta.encode(holder.pop(), idx)
            return data, md5_hex(data)

        data, md5 = await loop.run_in_executor(self.cpu, work)
        await self.blobs.put(self.blob(key), data, md5)
        return md5, len(data)

    # -- consolidation ----------------------------------------------------------------------------

    def consolidated(self, arrays: list[str]) -> dict[str, Any]:
        """Zarr v2 consolidated metadata from the known arrays (no listing: DESIGN landmine)."""
        keys = [".zgroup", ".zattrs"] + [
            f"{a}/{m}" for a in sorted(arrays) for m in (".zarray", ".zattrs")
        ]
        blobs = [self.blob(k) for k in keys]
        got = self.sync(_get_all, self.blobs, blobs)
        data = {f"{self.root}/{k}": v for k, v in zip(keys, got, strict=True)}
        meta = {}
        for k in keys:
            value = data.get(f"{self.root}/{k}")
            if isinstance(value, bytes):
                meta[k] = json.loads(value)
            elif k.endswith(".zarray") or k == ".zgroup":
                raise StagingError(f"store {self.root} lacks {k} while consolidating")
        return {"metadata": meta, "zarr_consolidated_format": 1}


async def _get_all(blobs: TargetBlobs, names: list[str]) -> list[bytes | None]:
    return list(await asyncio.gather(*(blobs.get(n) for n in names)))
