"""Dask clusters for reductions: a LocalCluster sized to the job, or a Dask Gateway cluster.

`cluster(config, log)` yields a `distributed.Client` and ALWAYS shuts the cluster down when the
block ends: on success, on an exception, and on SIGTERM/SIGINT (a paid Gateway cluster must
not outlive the rule that made it). SIGKILL cannot be caught; the Gateway server's
`idle_timeout` is the backstop for that.

Config (`compute:` in config.yaml), every key optional:

    backend: local | gateway          # env PCFLOW_COMPUTE_BACKEND overrides
    threads: 2                        # set by the rule (Snakemake threads / _cores)
    mem_mb: 4000                      # set by the rule (resources.mem_mb)
    local: {n_workers: 1, threads_per_worker: null, processes: false}
    gateway:
      address: https://hub/services/dask-gateway     # env DASK_GATEWAY__ADDRESS overrides
      proxy_address: gateway://host:80               # env DASK_GATEWAY__PROXY_ADDRESS
      public_address: ...                            # env DASK_GATEWAY__PUBLIC_ADDRESS
      auth: jupyterhub | basic                       # env DASK_GATEWAY__AUTH__TYPE
      username: me                                   # basic auth; the password only from
                                                     # env DASK_GATEWAY__AUTH__KWARGS__PASSWORD
      cluster_options: {worker_cores: 2, worker_memory: 8, image: ...}
      adapt: {minimum: 1, maximum: 10}               # or
      workers: 4                                     # fixed scale(n)
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import dask
import dask.config

from pcflow import allocator

BACKEND_ENV = "PCFLOW_COMPUTE_BACKEND"
SECRET_AUTH_KEYS = {"password", "api_token", "token"}


class Interrupted(BaseException):
    """Raised in the main thread by our SIGTERM/SIGINT handler so that cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _signals_raise(log: logging.Logger) -> Iterator[None]:
    """Turn SIGTERM/SIGINT into an exception for the duration of the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        log.debug("not in the main thread: no signal handlers (cleanup on exceptions only)")
        yield
        return
    sigs = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, _raise_interrupted) for s in sigs}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    # A second Ctrl-C or SIGTERM must not abort the shutdown that stops the billing.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def backend_name(config: dict[str, Any]) -> str:
    backend = os.environ.get(BACKEND_ENV) or config.get("backend") or "local"
    if backend not in ("local", "gateway"):
        raise ValueError(
            f"compute.backend={backend!r} is not supported; use 'local' or 'gateway'"
            f" (check config or ${BACKEND_ENV})"
        )
    return backend


# ----------------------------------------------------------------------------- local


def local_sizing(config: dict[str, Any]) -> dict[str, Any]:
    """LocalCluster arguments from the job's threads/_cores and mem_mb (machine size if unset)."""
    local = config.get("local") or {}
    threads = int(config.get("threads") or config.get("_cores") or os.cpu_count() or 1)
    n_workers = int(local.get("n_workers") or 1)
    per_worker = int(local.get("threads_per_worker") or max(1, threads // n_workers))
    kwargs: dict[str, Any] = {
        "n_workers": n_workers,
        "threads_per_worker": per_worker,
        # Threads by default: numpy and the Zarr codecs release the GIL, and worker processes
        # would re-import the `__main__` of Snakemake's `script:` (no __main__ guard there).
        "processes": bool(local.get("processes", False)),
        "dashboard_address": local.get("dashboard_address", "127.0.0.1:0"),
    }
    if kwargs["processes"]:
        kwargs["host"] = "127.0.0.1"  # loopback only; threads-only clusters talk in-process
    mem_mb = config.get("mem_mb") or config.get("mem_mib")
    if mem_mb:
        kwargs["memory_limit"] = f"{int(mem_mb) // n_workers}MiB"
    return kwargs


@contextlib.contextmanager
def _local(config: dict[str, Any], log: logging.Logger) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    kwargs = local_sizing(config)
    # Decoded chunks are large buffers: worker processes keep them for reuse (pcflow.allocator
    # says why). This process's own setting is the caller's, made before any thread starts.
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **allocator.environment()}
    settings = {"distributed.worker.daemon": False, "distributed.nanny.pre-spawn-environ": environ}
    with dask.config.set(settings):
        cluster = LocalCluster(**kwargs)
    client = Client(cluster)
    try:
        log.info(
            "cluster: LocalCluster %s, %d worker(s) x %d thread(s), memory limit %s; dashboard %s",
            cluster.scheduler_address,
            kwargs["n_workers"],
            kwargs["threads_per_worker"],
            kwargs.get("memory_limit", "auto"),
            _dashboard(client),
        )
        yield client
    finally:
        with _signals_ignored():
            _quietly(client.close, log, "client close")
            # A task stuck in a thread cannot be interrupted; do not wait for it long.
            _quietly(lambda: cluster.close(timeout=10), log, "LocalCluster close")
            log.info("cluster: LocalCluster shut down")


# ----------------------------------------------------------------------------- gateway


def gateway_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The dask `gateway` config: our YAML first, then DASK_GATEWAY__* from the env on top."""
    gw = dict(config.get("gateway") or {})
    auth = gw.get("auth")
    if isinstance(auth, dict):
        auth_type, auth_kwargs = auth.get("type"), dict(auth.get("kwargs") or {})
    else:
        auth_type, auth_kwargs = auth, {}
    if gw.get("username"):
        auth_kwargs["username"] = gw["username"]
    leaked = SECRET_AUTH_KEYS & set(auth_kwargs) | SECRET_AUTH_KEYS & set(gw)
    if leaked:
        key = sorted(leaked)[0]
        raise ValueError(
            f"compute.gateway.{key}: secrets must not be in the config file; "
            f"set DASK_GATEWAY__AUTH__KWARGS__{key.upper()} (or JUPYTERHUB_API_TOKEN) instead"
        )
    settings: dict[str, Any] = {}
    for ours, theirs in (
        ("address", "address"),
        ("proxy_address", "proxy-address"),
        ("public_address", "public-address"),
    ):
        if gw.get(ours):
            settings[theirs] = gw[ours]
    if auth_type:
        settings["auth"] = {"type": auth_type}
    if auth_kwargs:
        settings.setdefault("auth", {})["kwargs"] = auth_kwargs
    if gw.get("cluster_options"):
        settings["cluster"] = {"options": dict(gw["cluster_options"])}
    env = dask.config.collect_env().get("gateway", {})
    env = {
        k.replace("_", "-") if k in ("proxy_address", "public_address") else k: v
        for k, v in env.items()
    }
    merged = dask.config.merge(settings, env)
    if not merged.get("address"):
        raise ValueError(
            "compute.gateway.address is not set; set it in the config or export "
            "DASK_GATEWAY__ADDRESS (e.g. from `pcflow sandbox env`)"
        )
    return merged


def _flatten(settings: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Dotted dask config keys (setting the whole `gateway` dict would drop its defaults)."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        dotted = f"{prefix}.{key}"
        if isinstance(value, dict) and key in ("auth", "cluster"):
            flat.update(_flatten(value, dotted))
        else:
            flat[dotted] = value
    return flat


def _scaling(config: dict[str, Any]) -> tuple[str, Any]:
    gw = config.get("gateway") or {}
    env_workers = os.environ.get("PCFLOW_GATEWAY_WORKERS")
    if env_workers:
        return "scale", int(env_workers)
    if gw.get("adapt"):
        adapt = gw["adapt"]
        return "adapt", (int(adapt.get("minimum", 0)), int(adapt.get("maximum", 1)))
    return "scale", int(gw.get("workers", 1))


@contextlib.contextmanager
def _gateway(config: dict[str, Any], log: logging.Logger) -> Iterator[Any]:
    from dask_gateway import Gateway

    settings = gateway_settings(config)
    mode, size = _scaling(config)
    with dask.config.set(_flatten(settings, "gateway")):
        gateway = Gateway()
        cluster = None
        try:
            options = gateway.cluster_options()
            for key, value in ((config.get("gateway") or {}).get("cluster_options") or {}).items():
                if key not in options:
                    raise ValueError(
                        f"compute.gateway.cluster_options.{key} is not offered by "
                        f"{settings['address']}; available: {', '.join(sorted(options))}"
                    )
                options[key] = value
            cluster = gateway.new_cluster(options, shutdown_on_close=True)
            log.info("cluster: GatewayCluster %s created at %s", cluster.name, settings["address"])
            if mode == "adapt":
                cluster.adapt(minimum=size[0], maximum=size[1])
                sizing = f"adaptive {size[0]}..{size[1]} workers"
            else:
                cluster.scale(size)
                sizing = f"{size} worker(s)"
            shown = {k: v for k, v in dict(options).items()}
            log.info(
                "cluster: GatewayCluster %s, %s, options %s; dashboard %s",
                cluster.name,
                sizing,
                shown,
                cluster.dashboard_link,
            )
            client = cluster.get_client(set_as_default=True)
            watchdog = None
            try:
                if mode == "scale" and size > 0:
                    _wait_workers(client, min(size, 1), log)
                else:
                    # Adaptive: workers come when tasks do, so nothing to wait for here — but a
                    # gateway that never starts one would leave future.result() waiting forever.
                    timeout = float(
                        (config.get("gateway") or {}).get("worker_timeout", WORKER_TIMEOUT_S)
                    )
                    watchdog = NoWorkerWatchdog(client, timeout, log)
                    watchdog.start()
                yield client
            except Exception as err:
                if watchdog is not None and watchdog.fired:
                    raise TimeoutError(watchdog.fired) from err
                raise
            finally:
                if watchdog is not None:
                    watchdog.stop()
                with _signals_ignored():
                    _quietly(client.close, log, "client close")
        finally:
            with _signals_ignored():
                if cluster is not None:
                    name = cluster.name
                    try:
                        cluster.shutdown()
                    except Exception as err:
                        log.warning("cluster.shutdown() failed (%s); stopping by name", err)
                        _quietly(lambda: gateway.stop_cluster(name), log, "stop_cluster")
                    else:
                        # shutdown() closed the cluster's own Gateway client and stopped its
                        # loop; that client's __del__ would close it again on the stopped loop
                        # and print "Exception ignored ... RuntimeError: Accessing the loop
                        # property" into the job's log, which reads like a failure. Without a
                        # loop runner its __del__ does nothing.
                        own_client = getattr(cluster, "gateway", None)
                        if own_client is not None:
                            vars(own_client).pop("_loop_runner", None)
                    log.info("cluster: GatewayCluster %s shut down", name)
                # No gateway.close(): its __del__ closes again and fails noisily on a dead loop.


WORKER_TIMEOUT_S = 300.0  # compute.gateway.worker_timeout


class NoWorkerWatchdog:
    """Cancel the client's futures when tasks have waited `timeout` seconds with no worker.

    `future.result()` has no deadline of its own; on an adaptive Gateway cluster whose workers
    never start (quota, image pull, options the backend refuses) it would wait forever. The
    cancelled result raises in the waiting thread; `fired` holds the one line to report.
    """

    def __init__(self, client: Any, timeout: float, log: logging.Logger, poll: float = 2.0):
        self.client, self.timeout, self.log, self.poll = client, timeout, log, poll
        self.fired: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pcflow-no-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        idle_since: float | None = None
        while not self._stop.wait(self.poll):
            try:
                workers = len(self.client.scheduler_info().get("workers", {}))
                waiting = len(self.client.futures)
            except Exception as err:  # noqa: BLE001 - a closing client: nothing to watch
                self.log.debug("no-worker watchdog: %s", err)
                return
            if workers or not waiting:
                idle_since = None
                continue
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= self.timeout:
                self.fired = (
                    f"no Dask Gateway worker started within {self.timeout:g} s for {waiting} "
                    "waiting task(s) — check the gateway's worker logs and quota, or "
                    "compute.gateway.cluster_options / adapt (compute.gateway.worker_timeout "
                    "sets this deadline)"
                )
                self.log.error("%s", self.fired)
                self._cancel()
                return

    def _cancel(self) -> None:
        from distributed import Future

        keys = list(self.client.futures)
        self.client.cancel([Future(k, self.client) for k in keys], force=True)


def _wait_workers(client: Any, n: int, log: logging.Logger, timeout: float = 300) -> None:
    start = time.monotonic()
    client.wait_for_workers(n, timeout=timeout)
    log.info("cluster: %d worker(s) up after %.1fs", n, time.monotonic() - start)


# ----------------------------------------------------------------------------- common


def _dashboard(client: Any) -> str:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return "unavailable (bokeh not installed)"
    return client.dashboard_link


def _quietly(fn: Any, log: logging.Logger, what: str) -> None:
    try:
        fn()
    except Exception as err:  # cleanup must go on; say what failed
        log.warning("%s failed: %s", what, err)


def describe(client: Any) -> str:
    """One line naming the cluster's size, for logs at the end of a reduction."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    mem = sum(w.get("memory_limit", 0) for w in workers.values())
    return f"{len(workers)} worker(s), {threads} thread(s), {mem / 2**30:.1f} GiB"


def _exit_watchdog(code: int, grace: float = 5.0) -> None:
    """Make sure a signalled process does exit: a task still running in a worker thread would
    otherwise keep the interpreter alive at shutdown (thread join) until it finishes."""

    def hard_exit() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    timer = threading.Timer(grace, hard_exit)
    timer.daemon = True
    timer.start()


@contextlib.contextmanager
def cluster(config: dict[str, Any], log: logging.Logger) -> Iterator[Any]:
    """A dask.distributed Client on the configured backend; the cluster never outlives the block.

    SIGTERM/SIGINT during the block shut the cluster down, then the process exits with
    128+signal (SIGTERM) or KeyboardInterrupt (SIGINT), as it would have without us.
    """
    backend = backend_name(config)
    make = _local if backend == "local" else _gateway
    interrupted: Interrupted | None = None
    with _signals_raise(log):
        try:
            with make(config, log) as client:
                yield client
                log.info("cluster at end: %s", describe(client))
        except Interrupted as sig:
            interrupted = sig
    if interrupted is not None:
        log.warning("received %s: cluster shut down, exiting", interrupted)
        _exit_watchdog(128 + interrupted.signum)
        if interrupted.signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + interrupted.signum)
