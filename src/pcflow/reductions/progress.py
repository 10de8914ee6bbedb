"""Computing a lazy result with progress lines (task counts) in the rule log while a
distributed client runs it."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import xarray as xr

log = logging.getLogger("pcflow.reductions")

PROGRESS_INTERVAL = 10.0  # seconds between progress lines in the rule log


def compute(result: xr.Dataset, interval: float | None = None) -> xr.Dataset:
    """Compute a lazy result, logging progress (task counts) while a distributed client runs it."""
    interval = PROGRESS_INTERVAL if interval is None else interval
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        return result.compute()
    if not any(v.chunks for v in result.variables.values()):
        return result.compute()  # already in memory: client.compute would hand back no future
    future = client.compute(result)
    stop = threading.Event()

    def task_states(dask_scheduler: Any = None) -> dict[str, int]:
        # Runs on the scheduler. A closure, so cloudpickle ships it by value: a Gateway
        # scheduler image need not have pcflow installed.
        states = [ts.state for ts in dask_scheduler.tasks.values()]
        done = ("memory", "erred", "forgotten", "released")
        return {
            "total": len(states),
            "done": sum(s in done for s in states),
            "processing": sum(s == "processing" for s in states),
            "workers": len(dask_scheduler.workers),
        }

    def report() -> None:
        start = time.monotonic()
        while not stop.wait(interval):
            try:
                counts = client.run_on_scheduler(task_states)
            except Exception as err:  # progress is best effort; never fail the reduction
                log.debug("progress unavailable: %s", err)
                continue
            log.info(
                "progress after %.0fs: %d/%d tasks done, %d running, %d workers",
                time.monotonic() - start,
                counts["done"],
                counts["total"],
                counts["processing"],
                counts["workers"],
            )

    thread = threading.Thread(target=report, name="pcflow-progress", daemon=True)
    thread.start()
    try:
        return future.result()
    finally:
        stop.set()
        future.release()
