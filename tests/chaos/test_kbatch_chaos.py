"""kbatch under faults: the server gone mid-run, Snakemake SIGKILLed mid-run.

Each test starts its own local kbatch (the real kbatch-proxy over pcflow's job runner, a
subprocess), so killing it or leaving Jobs behind cannot disturb other tests. What must hold:
an unreachable kbatch fails the run in bounded time with one line naming the URL and where the
logs are; Jobs whose Snakemake died end by their deadline (activeDeadlineSeconds), which every
Job now has even when its rule sets no `runtime`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.integration.kbatch_helpers import TOKEN, local_kbatch, processes_with

pytestmark = pytest.mark.integration

SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def _server(state: Path) -> psutil.Process:
    (proc,) = [p for p in processes_with(str(state)) if "pcflow.sandbox.kbatch" in p.cmdline()]
    return proc


def _kill(procs: list[psutil.Process]) -> None:
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def _start(wd: Path, url: str, marker: str, *args: str) -> subprocess.Popen:
    """Snakemake with two 300 s jobs (rules without `runtime`) in its own process group."""
    (wd / "Snakefile").write_text(
        textwrap.dedent(
            f"""
            rule all:
                input: expand("out/{{i}}.txt", i=range(2))
            rule long:
                output: "out/{{i}}.txt"
                shell: "python -c 'import time; time.sleep(300)' {marker} {{wildcards.i}}"
            """
        )
    )
    env = {**os.environ, "KBATCH_URL": url, "KBATCH_TOKEN": TOKEN}
    cmd = [
        str(SNAKEMAKE),
        *("--executor", "kbatch", "--jobs", "2", "--seconds-between-status-checks", "1"),
        *("--default-storage-provider", "azure"),
        *("--default-storage-prefix", f"az://snakemake/chaos-{uuid.uuid4().hex[:8]}"),
        *("--storage-azure-account-name", os.environ["PCFLOW_TARGET_ACCOUNT_NAME"]),
        *("--container-image", "pcflow/kbatch-job:test"),
        *args,
    ]
    out = (wd / "snakemake.out").open("w")
    return subprocess.Popen(
        cmd, cwd=wd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_for_jobs(proc: subprocess.Popen, wd: Path, marker: str, n: int = 2) -> None:
    deadline = time.monotonic() + 240
    while len(processes_with(marker)) < n:
        assert proc.poll() is None, (wd / "snakemake.out").read_text()[-3000:]
        assert time.monotonic() < deadline, "jobs did not start"
        time.sleep(0.5)


def test_kbatch_unreachable_mid_run_fails_clearly_in_bounded_time(sandbox, tmp_path):
    marker = f"chaosunreach{uuid.uuid4().hex[:6]}"
    state = tmp_path / "kbatch"
    state.mkdir()
    wd = tmp_path / "wf"
    wd.mkdir()
    window = 15
    try:
        with local_kbatch(state) as url:
            proc = _start(wd, url, marker, "--kbatch-unreachable-timeout", str(window))
            try:
                _wait_for_jobs(proc, wd, marker)
                server = _server(state)
                orphans = processes_with(marker)
                server.kill()  # kbatch gone: connection refused from now on
                killed_at = time.monotonic()
                # Bound: the window, plus polls, cancel attempts and Snakemake's shutdown.
                proc.wait(timeout=window + 180)
                took = time.monotonic() - killed_at
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
    finally:
        _kill(processes_with(marker))  # the dead server's pods (their process groups outlive it)
    out = (wd / "snakemake.out").read_text()
    print(f"kbatch killed -> run failed after {took:.0f}s (window {window}s)")
    assert proc.returncode != 0, out[-3000:]
    assert took >= window, f"failed after {took:.0f}s, before the {window}s window"
    lines = [line for line in out.splitlines() if "unreachable for" in line]
    assert lines, out[-3000:]
    assert url in lines[0] and "kbatch-logs" in lines[0], lines[0]
    assert orphans  # the jobs it could no longer see were running when kbatch went away


def test_jobs_end_by_their_deadline_after_snakemake_is_sigkilled(sandbox, tmp_path):
    import kbatch

    marker = f"chaosdeadline{uuid.uuid4().hex[:6]}"
    state = tmp_path / "kbatch"
    state.mkdir()
    wd = tmp_path / "wf"
    wd.mkdir()
    # No rule sets `runtime`: the plugin's default gives the deadline. It counts from the pod's
    # start, which includes the job's own Snakemake start-up: both jobs' commands ran 9 s after
    # Snakemake's start on this machine (bytecode compiled at install), well inside 60 s.
    runtime_min = 1
    try:
        with local_kbatch(state) as url:
            started = time.monotonic()
            proc = _start(wd, url, marker, "--kbatch-default-runtime", str(runtime_min))
            _wait_for_jobs(proc, wd, marker)
            print(f"both jobs' commands running {time.monotonic() - started:.0f}s after start")
            os.killpg(proc.pid, signal.SIGKILL)  # no cancel, no cleanup: Snakemake just dies
            killed = time.monotonic()
            proc.wait(timeout=30)
            listed = kbatch.list_jobs(kbatch_url=url, token=TOKEN)["items"]
            assert len(listed) == 2
            for job in listed:
                assert job["spec"]["active_deadline_seconds"] == runtime_min * 60
            assert len(processes_with(marker)) == 2  # both still running: Snakemake is gone
            # Deadline 60 s from each pod's start; generous slack for a loaded machine.
            deadline = time.monotonic() + runtime_min * 60 + 180
            while processes_with(marker):
                assert time.monotonic() < deadline, "job processes outlived their deadline"
                time.sleep(1)
            print(
                f"Snakemake SIGKILLed -> job processes gone after {time.monotonic() - killed:.0f}s"
            )
            ended = kbatch.list_jobs(kbatch_url=url, token=TOKEN)["items"]
            reasons = {
                c.get("reason")
                for job in ended
                for c in (job.get("status") or {}).get("conditions") or []
                if c.get("type") == "Failed"
            }
            assert reasons == {"DeadlineExceeded"}, ended
    finally:
        _kill(processes_with(marker))
