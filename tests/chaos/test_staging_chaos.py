"""Staging under faults, through Snakemake (issue 12): kills, storage pauses and outages, two
runs on one target. Each case ends in the same chunk bytes as a clean run (MD5 of every chunk
object) or in one clear failure within a deadline — never a half-made store that opens.

Kills and pauses happen at observed progress (region markers in the target, the completion
marker's disappearance), not after sleeps. Storage goes through a latency proxy so that a run
spreads over seconds even on a busy machine. Figures of each case go to CHAOS_REPORT (JSON
lines) when that variable is set (docs/reliability.md's table).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pcflow import staging, storage
from pcflow.sandbox.process import read_pid_file
from pcflow.staging.staged import IncompleteStoreError, completion_record
from pcflow.staging.writer import STATE
from pcflow.testing.faultproxy import FaultProxy
from tests.integration.staging_helpers import (
    DAYMET_CFG,
    DAYMET_SUBSET,
    PROVENANCE,
    TEST_MEMORY_MB,
    items_doc,
    log,
    store_objects,
    target,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
STAGING = {"chunk_mb": 0.2, "region_mb": 0.2, "concurrency": 2, "memory_mb": TEST_MEMORY_MB}
DATASET = {**DAYMET_CFG, **DAYMET_SUBSET, "reductions": ["spatial_mean"]}
DEADLINE_S = 300  # every case's runs end within this, or the case fails (2 busy cores)


def _report(case: str, **fig) -> None:
    path = os.environ.get("CHAOS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"case": case, **fig}) + "\n")


@pytest.fixture(scope="module")
def reference(sandbox):
    """A clean in-process staging of the chaos dataset: the bytes every case must reproduce."""
    tgt = target()
    cfg = {k: v for k, v in DATASET.items() if k != "reductions"}
    t0 = time.monotonic()
    manifest = staging.stage(items_doc(DAYMET_CFG), "daymet-hi", cfg, tgt, STAGING, PROVENANCE,
                             log())  # fmt: skip
    objs = chunks(tgt)
    return {"objects": objs, "regions": manifest["run"]["regions_total"],
            "seconds": time.monotonic() - t0}  # fmt: skip


@pytest.fixture()
def proxy(sandbox):
    with FaultProxy(sandbox.base_port, sandbox.state_dir / "certs", rate=0.0, latency=0.02) as p:
        yield p


class Run:
    """A Snakemake run of the stage rule in its own process group (killed as a whole)."""

    def __init__(self, tmp: Path, tgt: dict, proxy_port: int, staging_cfg=None, name="run"):
        self.dir = tmp / name
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = {"stac_api": os.environ["PCFLOW_STAC_API"], "target": tgt,
               "staging": staging_cfg or STAGING, "compute": {"backend": "local"},
               "datasets": {"daymet-hi": DATASET}}  # fmt: skip
        self.config = self.dir / "config.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.tgt = tgt
        host = f"127.0.0.1:{proxy_port}/{{account_name}}"
        self.env = {**os.environ, storage.ACCOUNT_HOST_ENV: host}
        self.proc: subprocess.Popen | None = None

    def cmd(self, *extra: str, goal: str = "staged.json") -> list[str]:
        return [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(self.dir),
                "--configfile", str(self.config), "--cores", "2",
                f"results/daymet-hi/{goal}", *extra]  # fmt: skip

    def discover(self) -> Run:
        """Only the discover rule, so that a later start reaches staging at once (where a case
        races two runs). Elsewhere each run discovers first: kills wait for observed staging
        progress, so they land in staging either way."""
        subprocess.run(self.cmd(goal="items.json"), env=self.env, capture_output=True,
                       timeout=DEADLINE_S, check=True)  # fmt: skip
        return self

    def start(self) -> Run:
        self.out = open(self.dir / "snakemake.log", "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(self.cmd(), stdout=self.out, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)  # fmt: skip
        return self

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)  # the whole group: snakemake and its script
        self.proc.wait()
        self.out.close()

    def drop_lock(self) -> None:
        """What `snakemake --unlock` does (the lock a SIGKILL leaves), without its start-up."""
        for lock in (self.dir / ".snakemake" / "locks").glob("*"):
            lock.unlink()

    def wait(self, timeout: float = DEADLINE_S) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            self.out.close()
        return rc

    def finish(self) -> float:
        """Unlock (a killed Snakemake leaves its lock), run to the end; returns seconds."""
        self.drop_lock()  # `--unlock` is a whole Snakemake start-up (minutes on busy cores)
        t0 = time.monotonic()
        rc = self.start().wait()
        assert rc == 0, (self.dir / "snakemake.log").read_text()[-4000:] + self.stage_log()
        return time.monotonic() - t0

    def stage_log(self) -> str:
        p = self.dir / "logs" / "stage" / "daymet-hi.log"
        return p.read_text()[-3000:] if p.exists() else ""

    def manifest(self) -> dict:
        return json.loads((self.dir / "results" / "daymet-hi" / "staged.json").read_text())


def chunks(tgt) -> dict[str, str]:
    """{key: MD5} of the store's chunk objects. Metadata (`.zattrs`, `.zmetadata`) is left out:
    it holds each run's provenance record (the reference is staged outside Snakemake)."""
    return {k: v for k, v in store_objects(tgt, "daymet-hi").items()
            if not k.rsplit("/", 1)[-1].startswith(".")}  # fmt: skip


def _fs_root(tgt):
    fs = storage.filesystem(storage.target_storage_options(tgt))
    return fs, storage.target_url(tgt, "daymet-hi").split("://", 1)[1]


def _exists(tgt, key: str) -> bool:
    """Whether the store holds `key` now (no listing cache)."""
    fs, root = _fs_root(tgt)
    fs.invalidate_cache()
    return fs.exists(f"{root}/{key}")


def regions_done(tgt) -> tuple[int, bool]:
    fs, root = _fs_root(tgt)
    try:
        names = fs.find(f"{root}/{STATE}")
    except FileNotFoundError:
        return 0, False
    return sum("/regions/" in p for p in names), any(p.endswith("plan.json") for p in names)


def wait_for(cond, run: Run, what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert run.proc.poll() is None, f"run ended before {what}: " + run.stage_log()
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def assert_not_complete(tgt) -> None:
    """A killed or failed run leaves no store that passes as complete or opens."""
    url = storage.target_url(tgt, "daymet-hi")
    assert completion_record({"url": url}, tgt) is None
    fs, root = _fs_root(tgt)
    assert not fs.exists(f"{root}/.zmetadata")


def test_sigkill_of_snakemake_at_three_points_then_resume(reference, proxy, tmp_path):
    tgt = target()
    run = Run(tmp_path, tgt, proxy.port)
    total = reference["regions"]
    points = []
    t0 = time.monotonic()
    for threshold in (0, total // 3, 2 * total // 3):
        run.start()
        wait_for(lambda t=threshold: (lambda n, p: p and n >= t)(*regions_done(tgt)), run,
                 f"{threshold} regions")  # fmt: skip
        run.kill()
        run.drop_lock()
        points.append(regions_done(tgt)[0])
        assert_not_complete(tgt)
    assert points[-1] > points[0] and points[-1] < total
    seconds = run.finish()
    got = chunks(tgt)
    assert got == reference["objects"]
    staging.open_staged(run.manifest(), tgt).close()
    _report("SIGKILL of the Snakemake process group at 3 points of staging",
            outcome=f"resumed; identical bytes (kills at {points} of {total} regions)",
            seconds_to_outcome=round(seconds, 1), chunks_compared=len(got),
            total_seconds=round(time.monotonic() - t0, 1))  # fmt: skip


def test_sigkill_during_a_wipe_then_rerun(reference, proxy, tmp_path):
    """A plan change wipes the store; killed mid-wipe, nothing opens, and a re-run rebuilds."""
    tgt = target()
    first = Run(tmp_path, tgt, proxy.port, name="first")
    first.finish()
    old = first.manifest()
    # Another plan on the same target: it wipes the store first. Killed once the wipe's first
    # phase (completion marker, then `.zmetadata`, one after the other) is over, while chunks
    # are still being deleted. Polling the marker alone could kill between the two deletes,
    # where the old, still whole store keeps its `.zmetadata` (CI run of session 5).
    other = Run(tmp_path, tgt, proxy.port, {**STAGING, "chunk_mb": 0.1}, name="other")
    other.start()
    wait_for(lambda: completion_record(old, tgt) is None and not _exists(tgt, ".zmetadata"),
             other, "wipe")  # fmt: skip
    other.kill()
    with pytest.raises(IncompleteStoreError):
        staging.open_staged(old, tgt)
    assert_not_complete(tgt)
    seconds = Run(tmp_path, tgt, proxy.port, name="again").finish()
    got = chunks(tgt)
    assert got == reference["objects"]
    _report("SIGKILL of Snakemake during a wipe (plan change)",
            outcome="old manifest refused; re-run rebuilt identical bytes",
            seconds_to_outcome=round(seconds, 1), chunks_compared=len(got))  # fmt: skip


def _azurite_group(sandbox) -> int:
    rec = read_pid_file(sandbox.pid_path("azurite"))
    assert rec is not None, "no azurite pid file"
    return os.getpgid(rec.pid)


def test_storage_paused_mid_stage_recovers(sandbox, reference, proxy, tmp_path):
    tgt = target()
    run = Run(tmp_path, tgt, proxy.port).start()
    total = reference["regions"]
    wait_for(lambda: regions_done(tgt)[0] >= total // 4, run, "a quarter of the regions")
    pgid = _azurite_group(sandbox)
    t0 = time.monotonic()
    os.killpg(pgid, signal.SIGSTOP)
    try:
        time.sleep(15)  # the fault's length, not a synchronisation: storage frozen 15 s
    finally:
        os.killpg(pgid, signal.SIGCONT)
    rc = run.wait()
    assert rc == 0, run.stage_log()
    got = chunks(tgt)
    assert got == reference["objects"]
    seconds = round(time.monotonic() - t0, 1)
    _report("storage paused 15 s (SIGSTOP of Azurite) mid-stage",
            outcome="recovered; identical bytes", seconds_to_outcome=seconds,
            chunks_compared=len(got))  # fmt: skip


def test_storage_gone_mid_stage_fails_clearly_in_bounded_time(sandbox, reference, tmp_path):
    """The storage endpoint dies mid-stage (the proxy in front of Azurite closes: connections
    refused): the run fails with one line naming the operation, nothing is marked complete."""
    tgt = target()
    p = FaultProxy(sandbox.base_port, sandbox.state_dir / "certs", rate=0.0, latency=0.02)
    p.__enter__()
    try:
        run = Run(tmp_path, tgt, p.port).start()
        wait_for(lambda: regions_done(tgt)[0] >= reference["regions"] // 4, run, "regions")
    finally:
        p.__exit__(None, None, None)
    t0 = time.monotonic()
    rc = run.wait()
    seconds = time.monotonic() - t0
    assert rc != 0
    text = run.stage_log()
    error = [ln for ln in text.splitlines() if "ERROR" in ln]
    assert error and "stage[daymet-hi] failed" in error[-1], text
    assert "TaskGroup" not in error[-1] and "connect" in error[-1].lower(), error[-1]
    assert_not_complete(tgt)
    _report("storage endpoint gone mid-stage (connections refused)",
            outcome="failed with one line: " + error[-1].split("failed: ", 1)[-1][:90],
            seconds_to_outcome=round(seconds, 1), chunks_compared=0)  # fmt: skip


def test_two_concurrent_runs_on_one_target(sandbox, reference, proxy, tmp_path):
    tgt = target()
    # B has discovered already: it reaches its stage step as soon as its Snakemake starts.
    b = Run(tmp_path, tgt, proxy.port, {**STAGING, "chunk_mb": 0.1}, name="b").discover()
    # A talks to storage through its own proxy, slowed to 2 s a request once A holds the lease
    # and has written its plan, until B is done: A is still staging, lease held, however long
    # B's start-up takes on busy cores. (Slow from the start, A's own lease and plan took 80 s.)
    certs = sandbox.state_dir / "certs"
    with FaultProxy(sandbox.base_port, certs, rate=0.0, latency=0.02) as slow:
        a = Run(tmp_path, tgt, slow.port, name="a").start()
        wait_for(lambda: regions_done(tgt)[1], a, "run A's plan")
        slow.latency = 2.0
        b.start()
        t0 = time.monotonic()
        rc_b = b.wait()
        seconds_b = time.monotonic() - t0
        assert a.proc.poll() is None, "A must still be staging while B tries (the runs overlap)"
        assert rc_b != 0, b.stage_log()
        assert "being staged by host" in b.stage_log() and "lease until" in b.stage_log()
        slow.latency = 0.0  # B was refused: let A finish at full speed
        assert a.wait() == 0, a.stage_log()
    got = chunks(tgt)
    assert got == reference["objects"]
    staging.open_staged(a.manifest(), tgt).close()
    _report("two runs, different plans, one target at once",
            outcome="second refused naming the holder; first identical bytes",
            seconds_to_outcome=round(seconds_b, 1), chunks_compared=len(got))  # fmt: skip
