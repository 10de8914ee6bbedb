# ruff: noqa: E402  (sys.path must be fixed before `import kbatch`)
"""Benchmark: submit N trivial jobs through the kbatch executor's client and status poll.

    eval "$(pcflow sandbox env)"   # not needed: this starts its own local kbatch
    .venv/bin/python bench/kbatch.py [--sizes 10 100]

For each N it starts nothing but a local kbatch (temp state dir, free port), submits N jobs
(`sleep 1`) with the executor's KbatchClient, then runs the executor's own check_active_jobs
until all jobs ended, and reports submissions/s and API requests per poll (one list_jobs,
plus one list_pods only while some job has not started: constant in N). Last line is JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named kbatch.py: keep its folder off sys.path so `import kbatch` is the library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
import types

import httpx
from snakemake_executor_plugin_kbatch import Executor, ExecutorSettings
from snakemake_executor_plugin_kbatch.client import KbatchClient
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from throttler import Throttler

import kbatch

TOKEN = "bench-token-0123456789"


def start_local_kbatch(state: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pcflow.sandbox.kbatch",
            "--port",
            str(port),
            "--state-dir",
            str(state),
        ],
        env={**os.environ, "PCFLOW_KBATCH_TOKEN": TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(150):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("local kbatch did not start")


class _Job:
    def __init__(self, i: int) -> None:
        self.jobid = i

    def log_error(self, msg=None, **kwargs) -> None:
        print(f"job {self.jobid} failed: {msg}", file=sys.stderr)


def bare_executor(url: str, log_dir: Path) -> Executor:
    """The real Executor class without a Snakemake workflow: client, settings, status poll."""
    ex = Executor.__new__(Executor)
    finished: list = []
    ex.workflow = types.SimpleNamespace(
        scheduler=types.SimpleNamespace(
            finish_callback=finished.append, error_callback=finished.append
        )
    )
    ex.logger = logging.getLogger("bench")
    ex.settings = ExecutorSettings(stuck_timeout=600)
    ex.client = KbatchClient(url, TOKEN)
    ex.log_dir = log_dir
    ex.submitted = {}
    ex.poll_requests = []
    ex.unreachable_since = None
    ex.kbatch_gone = False
    ex.status_rate_limiter = Throttler(rate_limit=100, period=1)
    ex.finished = finished
    return ex


async def poll_until_done(ex: Executor, infos: list[SubmittedJobInfo]) -> int:
    active, polls = list(infos), 0
    while active:
        active = [i async for i in ex.check_active_jobs(active)]
        polls += 1
        if active:
            await asyncio.sleep(0.5)
    return polls


def run(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-kbatch-") as tmp:
        proc, url = start_local_kbatch(Path(tmp) / "state")
        try:
            ex = bare_executor(url, Path(tmp))
            body = kbatch.make_job(
                kbatch.Job(name="bench", image="bench:1", command=["sh", "-c", "sleep 1"])
            ).to_dict()
            t0 = time.perf_counter()
            infos = []
            for i in range(n):
                created = ex.client.submit(body)
                name = created["metadata"]["name"]
                info = SubmittedJobInfo(
                    job=_Job(i),
                    external_jobid=name,
                    aux={"submitted": time.monotonic(), "missing": 0},
                )
                ex.submitted[name] = info
                infos.append(info)
            submit_s = time.perf_counter() - t0
            polls = asyncio.run(poll_until_done(ex, infos))
            ok = sum(1 for _ in ex.finished)
            left = len(ex.client.list_jobs()["items"])
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    per_poll = ex.poll_requests
    return {
        "n": n,
        "submit_per_s": round(n / submit_s, 1),
        "polls": polls,
        "requests_per_poll_max": max(per_poll),
        "requests_per_poll_mean": round(sum(per_poll) / len(per_poll), 2),
        "finished": ok,
        "jobs_left": left,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    args = parser.parse_args()
    results = {}
    for n in args.sizes:
        r = run(n)
        results[n] = r
        print(
            f"N={n}: {r['submit_per_s']} submissions/s; {r['polls']} polls, API requests per "
            f"poll max {r['requests_per_poll_max']} mean {r['requests_per_poll_mean']}; "
            f"finished {r['finished']}, jobs left {r['jobs_left']}"
        )
    summary = {}
    for n, r in results.items():
        summary[f"submit_per_s_{n}"] = r["submit_per_s"]
        summary[f"requests_per_poll_{n}"] = r["requests_per_poll_max"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
