"""Background processes with pid files: start, readiness wait, liveness, stop (process groups).

Each service runs in its own session (process group) so `down` can stop it together with any
children (node, uvicorn workers) without touching anything else. A pid file records the pid
and the process start time (since boot), so a recycled pid is never mistaken for our service.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil


class SandboxError(RuntimeError):
    """A sandbox problem with a one-line, actionable message."""


@dataclass(frozen=True)
class PidRecord:
    pid: int
    create_time: float
    port: int
    # Start time in seconds since boot: unlike create_time (boot time + that), it does not move
    # when the wall clock steps (a VM restored from a snapshot moved it by 17 s here, and every
    # running service then looked stale). None in pid files of older pcflow versions.
    since_boot: float | None = None

    def to_json(self) -> str:
        doc = {"pid": self.pid, "create_time": self.create_time, "port": self.port}
        if self.since_boot is not None:
            doc["since_boot"] = self.since_boot
        return json.dumps(doc)


def started_since_boot(proc: psutil.Process) -> float:
    """Seconds from boot to the process's start: stable across wall-clock steps."""
    boot = psutil.boot_time()  # first: psutil then computes create_time from this fresh value
    return proc.create_time() - boot


def read_pid_file(path: Path) -> PidRecord | None:
    try:
        data = json.loads(path.read_text())
        since = data.get("since_boot")
        return PidRecord(
            int(data["pid"]),
            float(data["create_time"]),
            int(data["port"]),
            None if since is None else float(since),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_alive(record: PidRecord | None) -> bool:
    """True when the recorded process still runs (same pid AND same start time, not a zombie)."""
    if record is None:
        return False
    try:
        proc = psutil.Process(record.pid)
        if record.since_boot is not None:
            started, recorded = started_since_boot(proc), record.since_boot
        else:
            started, recorded = proc.create_time(), record.create_time
        if abs(started - recorded) > 0.5:
            return False  # the pid was recycled by an unrelated process
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Can we bind host:port? (SO_REUSEADDR so a TIME_WAIT leftover does not count as taken.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def tcp_ready(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def spawn(
    argv: list[str], env: dict[str, str], log_path: Path, pid_path: Path, port: int, cwd: Path
) -> subprocess.Popen:
    """Start argv detached in its own session, output appended to log_path, pid file written."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {argv[0]}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: `down` kills the whole group
        )
    try:
        started = psutil.Process(proc.pid)
        since_boot = started_since_boot(started)
        create_time = started.create_time()
    except psutil.NoSuchProcess:
        since_boot, create_time = None, 0.0
    pid_path.write_text(PidRecord(proc.pid, create_time, port, since_boot).to_json())
    return proc


def wait_ready(
    proc: subprocess.Popen,
    ready: Callable[[], bool],
    timeout: float,
    name: str,
    log_path: Path,
) -> None:
    """Poll ready() until true; bounded. A dead process or a timeout raises SandboxError."""
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            raise SandboxError(
                f"service {name} exited with code {code} while starting; see its log: {log_path}"
            )
        if ready():
            return
        if time.monotonic() > deadline:
            stop_group(proc.pid)
            raise SandboxError(
                f"service {name} was not ready within {timeout:.0f}s (stopped it); "
                f"see its log: {log_path}"
            )
        time.sleep(0.1)


def stop_group(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group led by pid, then SIGKILL whatever is left after grace seconds."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    if pgid != pid:
        # Not a group leader we created: signal only the process itself.
        _signal_and_wait([pid], signal.SIGTERM, grace)
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    members = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == pgid]
    _wait_gone(members or [pid], grace)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _wait_gone(members or [pid], 5.0)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _signal_and_wait(pids: list[int], sig: int, grace: float) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    _wait_gone(pids, grace)


def _wait_gone(pids: list[int], timeout: float) -> None:
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + timeout
    while procs and time.monotonic() < deadline:
        alive = []
        for p in procs:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
                else:
                    _reap(p.pid)
            except psutil.NoSuchProcess:
                pass
        procs = alive
        if procs:
            time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collect a zombie child of this process (a no-op for other processes' children)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
