"""The last phase: consolidated metadata, verification, the completion record, and a check
that what is stored is what this run planned (so the manifest never describes another's)."""

from __future__ import annotations

import json
import logging
from typing import Any

from pcflow.staging import plan as planmod
from pcflow.staging.codec import ArrayMeta
from pcflow.staging.lease import StoreLease
from pcflow.staging.plan import VarPlan
from pcflow.staging.retry import StagingError
from pcflow.staging.source import OpenedSource
from pcflow.staging.verify import array_checksum, chunk_md5s, verify_store
from pcflow.staging.writer import COMPLETE, FORMAT, PLAN, StoreWriter


def finalize(
    writer: StoreWriter,
    lease: StoreLease,
    src: OpenedSource,
    plans: dict[str, VarPlan],
    metas: dict[str, ArrayMeta],
    done: dict[str, dict[str, Any]],
    attrs: dict[str, Any],
    complete: dict[str, Any] | None,
    fp: str,
    reader: Any,
    verify_sample: int,
    url: str,
    storage_options: dict[str, Any],
    log: logging.Logger,
) -> tuple[dict[str, Any], str]:
    """Write `.zattrs`/`.zmetadata`, verify, write the completion record; (record, its ETag).

    A store already complete with the same plan, checksums and absent chunks is left as is.
    The completion record is written last, after the lease and the stored plan are checked.
    """
    zattrs = writer.read_json(".zattrs") or {}
    if zattrs != json.loads(json.dumps(attrs, default=str)):
        if complete:
            writer.drop_completion()
            complete = None
        writer.write_json(".zattrs", attrs)
    zmeta = writer.consolidated(list(plans) + src.index_names)
    checksums = {n: array_checksum(chunk_md5s(done, n)) for n in plans}
    absent = {n: sorted(k for k, md5 in chunk_md5s(done, n).items() if md5 is None) for n in plans}
    if (
        complete
        and complete.get("fingerprint") == fp
        and complete.get("checksums") == checksums
        and complete.get("absent") == absent
    ):
        log.info("%s is complete already: nothing written", url)
    else:
        if complete:
            writer.drop_completion()
        writer.write_json(".zmetadata", zmeta)
        expected_coords = {d: src.sub[d].values for d in src.index_names}
        verified = verify_store(
            writer, plans, metas, done, reader, verify_sample, expected_coords, url,
            storage_options,
        )  # fmt: skip
        complete = {
            "format": FORMAT,
            "fingerprint": fp,
            "checksums": checksums,
            "checksum": planmod.fingerprint({"checksums": checksums, "zmetadata": zmeta}),
            "absent": absent,  # chunks the source lacked: every other chunk must exist
            "verification": verified,
        }
        writer.sync(lease.verify)  # still ours: nobody else wrote in between
        _check_stored_plan(writer, fp, url)
        writer.write_json(COMPLETE, complete)
    # The manifest describes what is stored: the completion record (read back, with the ETag
    # readers hold) and the stored arrays' chunking.
    stored = writer.read_json(COMPLETE)
    if stored != json.loads(json.dumps(complete, default=str)):
        raise StagingError(
            f"{url}/{COMPLETE} is not the one this run wrote: another run changed the store "
            "— re-run staging"
        )
    identity = writer.sync(writer.blobs.etag, writer.blob(COMPLETE))
    for n, p in plans.items():
        if tuple(metas[n].chunks) != tuple(p.chunks):
            raise StagingError(
                f"{url}: stored chunks of {n} {metas[n].chunks} differ from the plan "
                f"{p.chunks} — another run changed the store; re-run staging"
            )
    return complete, identity


def _check_stored_plan(writer: StoreWriter, fp: str, url: str) -> None:
    """The store's plan is still this run's (the manifest must never describe another's)."""
    stored = writer.read_json(PLAN) or {}
    if stored.get("fingerprint") != fp:
        raise StagingError(
            f"{url} now holds another plan ({str(stored.get('fingerprint'))[:12]} != "
            f"{fp[:12]}): another run rewrote it — re-run staging"
        )
