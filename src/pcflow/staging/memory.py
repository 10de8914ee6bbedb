"""How much staging holds at once, and how to keep it within `staging.memory_mb`.

One pure function, `fit`, used by staging (chunks in flight, source prefetch, cache cap) and by
the plan (memory per worker), so that the figure a warning or the plan prints is the figure the
run uses. Costs are upper bounds per chunk in flight:

- a copied chunk: its stored bytes twice (the SDK's download buffer and the bytes it returns);
- a chunk re-encoded from raw source chunks: its values + its encoded bytes (2 x target chunk),
  plus, for each source chunk being loaded for it, the decoded values + the compressed bytes
  twice (downloaded, as for a copy; incompressible at worst) = 3 x source chunk;
- a chunk re-encoded through xarray (CF encoding): the values read, the encoded values and the
  encoded bytes (3 x target chunk).

The decoded-source cache gets what is left of the budget, up to a write strip's working set;
it is a hard cap (`ChunkCache`): a chunk that does not fit is read again by its next reader.
Whatever memory_mb says, the process also holds the interpreter and its libraries:
OVERHEAD_MB (measured: python + numpy/xarray/zarr/dask/adlfs/azure/pyproj imported is about
240 MiB; HTTP sessions, codec threads and allocator slack add the rest).
"""

from __future__ import annotations

from dataclasses import dataclass

OVERHEAD_MB = 320  # documented in docs/staging.md; bench/staging.py measures it
LOAD_COST = 3  # x source chunk bytes per source chunk being loaded
ENCODE_COST = 2  # x target chunk bytes per re-encoded chunk in flight
GENERIC_COST = 3  # x target chunk bytes per chunk re-encoded through xarray
COPY_COST = 2  # x chunk bytes per copied chunk in flight
PREFETCH = 2  # source chunks loaded at once for one target chunk, when the budget allows


@dataclass(frozen=True)
class VarCost:
    """What one variable's chunks cost in flight (bytes)."""

    mode: str  # "copy" | "encode"
    chunk_nbytes: int  # target chunk, uncompressed
    source_chunk_nbytes: int = 0  # raw source chunk (0: read through xarray)
    working_set_nbytes: int = 0  # decoded source chunks one write strip keeps for later readers

    def per_chunk(self, prefetch: int) -> int:
        if self.mode == "copy":
            return COPY_COST * self.chunk_nbytes
        if self.source_chunk_nbytes:
            return ENCODE_COST * self.chunk_nbytes + prefetch * LOAD_COST * self.source_chunk_nbytes
        return GENERIC_COST * self.chunk_nbytes


@dataclass(frozen=True)
class Fit:
    """The sizes staging runs with, and what they add up to."""

    budget: int
    in_flight: int
    prefetch: int
    per_chunk: int
    cache: int  # cap of the decoded-source cache (0: nothing kept between readers)
    working_set: int  # what the cache would need to read every source chunk once

    @property
    def peak(self) -> int:
        """Most bytes held by staging's data at once (add OVERHEAD_MB for the process)."""
        return self.in_flight * self.per_chunk + self.cache

    @property
    def over_budget(self) -> bool:
        return self.peak > self.budget

    @property
    def rereads(self) -> bool:
        return self.cache < self.working_set


def fit(memory_mb: float, concurrency: int, threads: int, costs: list[VarCost]) -> Fit:
    """Chunks in flight, per-chunk prefetch and cache cap within `memory_mb` (MB = 1e6 bytes).

    If even one chunk in flight loading one source chunk at a time does not fit, staging still
    runs one chunk at a time and `Fit.over_budget` says so (with the true peak).
    """
    budget = int(memory_mb * 1e6)
    costs = costs or [VarCost("copy", 1)]
    limit = max(1, int(concurrency))
    if any(c.mode == "encode" for c in costs):
        # Re-encoding is CPU work on `threads` codec threads; more chunks in flight than twice
        # that only hold more memory (bench: 4 and 8 in flight take the same time).
        limit = min(limit, 2 * max(1, int(threads)))
    src = max((c.source_chunk_nbytes for c in costs), default=0)
    working = max((c.working_set_nbytes for c in costs), default=0)
    for prefetch in (PREFETCH, 1):
        per = max(c.per_chunk(prefetch) for c in costs)
        n = min(limit, budget // max(per, 1))
        if n >= 1:
            break
    n = max(1, n)
    left = max(0, budget - n * per)
    cache = min(left, working + 2 * src) if src else 0
    return Fit(budget, n, prefetch, per, cache, working)


def describe(f: Fit, memory_mb: float) -> str:
    """One line: the arithmetic behind the run's memory (for logs, warnings and the plan)."""
    return (
        f"{f.in_flight} chunk(s) in flight x {f.per_chunk / 1e6:.1f} MB + decoded-source cache "
        f"{f.cache / 1e6:.1f} MB = {f.peak / 1e6:.1f} MB for staging.memory_mb={memory_mb:g} "
        f"(+ ~{OVERHEAD_MB} MB for the interpreter and libraries)"
    )
