"""Opening a staged store: only when its completion marker matches the manifest."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import fsspec.asyn
import xarray as xr
from zarr.storage import FsspecStore, WrapperStore

from pcflow import storage
from pcflow.staging.codec import ArrayMeta
from pcflow.staging.retry import StagingError, blob_service_client, retry_async
from pcflow.staging.writer import COMPLETE, STATE


class IncompleteStoreError(StagingError):
    """The store is missing, unfinished, or not the one the manifest describes."""


class NoCredentialError(StagingError):
    """No credential for the target account was found; str() is one line naming the fixes."""


CREDENTIAL_OPTIONS = ("account_key", "sas_token", "connection_string", "credential")
CREDENTIAL_PROBE_S = 15.0  # DefaultAzureCredential's whole chain, IMDS probe included
STORAGE_SCOPE = "https://storage.azure.com/.default"


def _probe_default_credential(deadline_s: float) -> str | None:
    """None if DefaultAzureCredential yields a storage token within the deadline, else why not.

    adlfs builds the same chain (async) when options carry no credential; left to itself a
    failing chain is retried for ~85 s per read and prints a 20-line error. The probe runs in
    a daemon thread so a hung identity endpoint cannot hold the caller past the deadline.
    """
    from azure.identity import DefaultAzureCredential

    outcome: dict[str, str | None] = {}

    def probe() -> None:
        try:
            DefaultAzureCredential().get_token(STORAGE_SCOPE)
            outcome["why"] = None
        except Exception as err:  # noqa: BLE001 - any failure means "no usable credential"
            outcome["why"] = type(err).__name__

    thread = threading.Thread(target=probe, name="credential-probe", daemon=True)
    thread.start()
    thread.join(deadline_s)
    if "why" not in outcome:
        return f"no token within {deadline_s:.0f} s"
    return outcome["why"]


def reader_storage_options(storage_options: dict[str, Any], account_name: str) -> dict[str, Any]:
    """Storage options to read a staged store, with a credential known to work.

    Options that carry a key, SAS, connection string or credential are returned as they are.
    Otherwise the Azure identity chain (managed identity, workload identity, `az login`) is
    tried once, within CREDENTIAL_PROBE_S: on success its async credential is added (what
    adlfs would have used); on failure a NoCredentialError names the fixes, in seconds.
    """
    if any(storage_options.get(k) for k in CREDENTIAL_OPTIONS) or storage_options.get("anon"):
        return storage_options
    why = _probe_default_credential(CREDENTIAL_PROBE_S)
    if why is not None:
        raise NoCredentialError(
            f"no credential for storage account {account_name!r} ({why} from the Azure "
            "identity chain) — set PCFLOW_TARGET_SAS_TOKEN, PCFLOW_TARGET_ACCOUNT_KEY or "
            "PCFLOW_TARGET_CONNECTION_STRING, or sign in (`az login`, managed identity)"
        )
    from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential

    return {**storage_options, "credential": AsyncDefaultAzureCredential()}


def load_manifest(manifest: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(manifest, dict):
        return manifest
    path = Path(manifest)
    if not path.exists():
        raise IncompleteStoreError(
            f"{path} does not exist: the dataset was never staged completely"
        )
    return json.loads(path.read_text())


def completion_record(
    manifest: dict[str, Any], target: dict[str, Any], options: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The store's `.pcflow/complete.json`, or None when absent."""
    return _completion(manifest, target, options)[0]


def _completion(
    manifest: dict[str, Any], target: dict[str, Any], options: dict[str, Any] | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """(`.pcflow/complete.json`, its ETag) read in one request; (None, None) when absent."""
    fs = storage.filesystem(options or storage.target_storage_options(target))
    root = manifest["url"].split("://", 1)[1]
    container, _, path = root.partition("/")

    async def get() -> tuple[bytes | None, str | None]:
        from azure.core.exceptions import ResourceNotFoundError

        service = blob_service_client(fs)
        try:
            bc = service.get_blob_client(container, f"{path}/{COMPLETE}")
            try:
                stream = await bc.download_blob()
            except ResourceNotFoundError:
                return None, None
            return await stream.readall(), stream.properties.etag
        finally:
            await service.close()

    data, etag = fsspec.asyn.sync(fs.loop, retry_async, get, f"reading {root}/{STATE}")
    return (json.loads(data), etag) if data is not None else (None, None)


def missing_chunks(
    root: str, fs: Any, zmetadata: dict[str, Any], record: dict[str, Any], names: list[str]
) -> dict[str, list[str]]:
    """Chunks each of `names` must have (all but those the source lacked, `record['absent']`)
    and the store does not: one listing of each array."""
    out: dict[str, list[str]] = {}
    absent = record.get("absent") or {}
    for name in names:
        zarray = zmetadata.get("metadata", {}).get(f"{name}/.zarray")
        if zarray is None:
            out[name] = [".zarray"]
            continue
        meta = ArrayMeta.from_zarray(zarray)
        if not meta.shape:
            continue
        try:
            listed = {p.rsplit("/", 1)[-1] for p in fs.ls(f"{root}/{name}", detail=False)}
        except FileNotFoundError:
            listed = set()
        expected = {meta.key(i) for i in meta.chunk_indices()} - set(absent.get(name, []))
        gone = sorted(expected - listed)
        if gone:
            out[name] = gone
    return out


class StrictStore(WrapperStore):
    """A Zarr store that raises on a missing chunk instead of reading it as fill values.

    Zarr reads an absent chunk object as the fill value (NaN): right for chunks the source
    never had (`absent`), silent corruption for chunks deleted under a reader. Metadata keys
    pass through unchanged.
    """

    def __init__(self, store: Any, absent: dict[str, list[str]], url: str):
        super().__init__(store)
        self.absent = {f"{var}/{k}" for var, keys in absent.items() for k in keys}
        self.url = url

    def _with_store(self, store: Any) -> StrictStore:
        return type(self)(store, {}, self.url)._copy_absent(self.absent)

    def _copy_absent(self, absent: set[str]) -> StrictStore:
        self.absent = absent
        return self

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        got = await self._store.get(key, prototype, byte_range)
        name = key.rsplit("/", 1)[-1]
        if got is None and not name.startswith(".") and name != "zarr.json":
            if key not in self.absent:
                raise IncompleteStoreError(
                    f"{self.url}/{key} is missing while being read: the store changed or was "
                    "wiped under this reader — re-run the stage rule, then this step"
                )
        return got


def check_unchanged(ds: xr.Dataset, target: dict[str, Any]) -> None:
    """Raise when the store `ds` was opened from is no longer the same complete store (its
    completion marker was deleted or rewritten since open_staged): results read meanwhile may
    mix two stores."""
    url, etag = ds.encoding.get("pcflow_url"), ds.encoding.get("pcflow_identity")
    if not url:
        raise IncompleteStoreError("dataset was not opened with open_staged: cannot check it")
    record, now = _completion({"url": url}, target)
    if record is None or now != etag:
        raise IncompleteStoreError(
            f"{url} changed while it was being read (completion marker "
            f"{'deleted' if record is None else 'rewritten'} by another run): the result is not "
            "written — re-run the stage rule, then this step"
        )


def open_staged(manifest: dict[str, Any] | str | Path, target: dict[str, Any]) -> xr.Dataset:
    """Open a staged Zarr store lazily, refusing it unless it is complete and matches the manifest.

    A store is complete when `.pcflow/complete.json` exists (written last, after verification),
    its checksum equals the manifest's, and every chunk it records exists (one listing per
    array): a store being rewritten, resumed or wiped is refused. The dataset reads through
    StrictStore (a chunk that vanishes later is an error, not NaN) and holds the marker's ETag
    in `ds.encoding["pcflow_identity"]` for `check_unchanged`.
    """
    doc = load_manifest(manifest)
    for key in ("url", "checksum"):
        if key not in doc:
            raise IncompleteStoreError(f"manifest lacks {key!r}: re-run the stage rule")
    # Credential first: without one, fail in seconds with one line (not ~85 s of retries).
    options = reader_storage_options(storage.target_storage_options(target), target["account_name"])
    record, etag = _completion(doc, target, options)
    if record is None:
        raise IncompleteStoreError(
            f"{doc['url']} is incomplete (no completion marker): re-run the stage rule to finish it"
        )
    if record.get("checksum") != doc["checksum"]:
        raise IncompleteStoreError(
            f"{doc['url']} changed since this manifest was written (checksum "
            f"{record.get('checksum', '?')[:12]} != {doc['checksum'][:12]}): re-run the stage rule"
        )
    so = options
    fs = storage.filesystem(so)
    root = doc["url"].split("://", 1)[1]
    try:
        zmeta = json.loads(fs.cat_file(f"{root}/.zmetadata"))
    except FileNotFoundError:
        raise IncompleteStoreError(
            f"{doc['url']} has a completion marker but no .zmetadata: re-run the stage rule"
        ) from None
    if "absent" not in record:
        raise IncompleteStoreError(
            f"{doc['url']} was staged by an older pcflow (no chunk list in its completion "
            "marker): re-run the stage rule to check and re-mark it"
        )
    gone = missing_chunks(root, fs, zmeta, record, list(doc.get("variables", {})))
    if gone:
        name, keys = next(iter(gone.items()))
        raise IncompleteStoreError(
            f"{doc['url']} is incomplete: {sum(map(len, gone.values()))} chunks are missing "
            f"(e.g. {name}/{keys[0]}) though it is marked complete — re-run the stage rule"
        )
    inner = FsspecStore.from_url(doc["url"], storage_options=so, read_only=True)
    store = StrictStore(inner, record["absent"], doc["url"])
    ds = xr.open_zarr(store, **doc.get("xarray:open_kwargs", {"consolidated": True}))
    ds.encoding.update({"pcflow_url": doc["url"], "pcflow_identity": etag})
    missing = [v for v in doc.get("variables", {}) if v not in ds.variables]
    if missing:
        raise IncompleteStoreError(f"{doc['url']} lacks variables {missing}: re-run the stage rule")
    return ds
