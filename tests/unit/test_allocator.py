"""pcflow.allocator: freed chunk-sized buffers are reused, not page-faulted in again.

Counted in page faults (deterministic), not time: a fresh process allocates, touches and frees
a 256 MB buffer three times from a worker thread (where Dask runs tasks).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pcflow import allocator

SCRIPT = """
import json, resource, sys, threading
if sys.argv[1] == "reuse":
    from pcflow import allocator
    assert allocator.reuse_large_buffers()
faults = []
def work():
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buf = bytearray(256 * 2**20)  # calloc'd
        buf[:: 4096] = b"x" * len(buf[:: 4096])  # touch every page
        del buf
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
thread = threading.Thread(target=work)
thread.start()
thread.join()
print(json.dumps(faults))
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")


def _faults(mode: str) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_a_freed_chunk_buffer_is_reused_by_the_next_chunk():
    plain, reuse = _faults("plain"), _faults("reuse")
    # Without: every 256 MB buffer is mapped and faulted in again (>= 128 huge or 65536 pages).
    assert min(plain[1:]) >= 100, plain
    # With: the first buffer faults in once; the next ones reuse its pages.
    assert max(reuse[1:]) <= 16, reuse


def test_localcluster_worker_processes_start_with_the_same_settings():
    import logging
    import os

    from pcflow import compute

    config = {"backend": "local", "threads": 1, "local": {"processes": True}}
    with compute.cluster(config, logging.getLogger("test")) as client:
        seen = client.run(lambda: {k: os.environ.get(k) for k in allocator.environment()})
    assert list(seen.values()) == [allocator.environment()]
    assert allocator.environment()["MALLOC_ARENA_MAX"] == "1"
