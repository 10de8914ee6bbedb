"""The Sandbox: start, stop and describe the local MPC stand-ins of one state dir."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pcflow.sandbox import services as svc
from pcflow.sandbox.private import private_dir
from pcflow.sandbox.process import (
    SandboxError,
    is_alive,
    port_is_free,
    read_pid_file,
    spawn,
    stop_group,
    wait_ready,
)

DEFAULT_STATE_DIR = ".sandbox"
DEFAULT_BASE_PORT = 10000
STATE_DIR_ENV = "PCFLOW_SANDBOX_DIR"
BASE_PORT_ENV = "PCFLOW_SANDBOX_PORT_BASE"
STATE_FILE = "sandbox.json"


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    port: int
    log: Path
    note: str = ""

    def line(self) -> str:
        state = "up" if self.running else "down"
        pid = f"pid {self.pid}" if self.running and self.pid else "-"
        note = f"  ({self.note})" if self.note else ""
        return f"{self.name:<8} {state:<5} {pid:<11} port {self.port}  log {self.log}{note}"


class Sandbox:
    """Local stand-ins for MPC (Azurite, STAC API, SAS endpoint, ...) on 127.0.0.1.

    state_dir holds pid files, logs, certificates, account keys, Azurite's data and the STAC
    JSON; base_port P places the services (Azurite P, STAC P+10, SAS P+11, ...).
    """

    def __init__(
        self,
        state_dir: Path | str = DEFAULT_STATE_DIR,
        base_port: int = DEFAULT_BASE_PORT,
        *,
        sas_expiry_seconds: int = 3600,
    ) -> None:
        if not 1024 <= base_port <= 65535 - 20:
            raise SandboxError(f"base_port {base_port} is out of range; use 1024..65515")
        self.state_dir = Path(state_dir).resolve()
        self.base_port = base_port
        self.ctx = svc.Context(
            self.state_dir, base_port, {svc.SAS_EXPIRY_OPTION: str(int(sas_expiry_seconds))}
        )
        self._procs: dict = {}  # Popen objects of services started by this instance (reaping)

    # -- paths and recorded state ---------------------------------------------------------------

    def pid_path(self, name: str) -> Path:
        return self.state_dir / "pids" / f"{name}.pid"

    def log_path(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    def _read_state(self) -> dict:
        try:
            return json.loads((self.state_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def _write_state(self, names: Sequence[str]) -> None:
        state = {"base_port": self.base_port, "services": list(names)}
        (self.state_dir / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n")

    def _known_services(self) -> list[str]:
        recorded = self._read_state().get("services", [])
        names = list(dict.fromkeys([*svc.DEFAULT_SERVICES, *recorded]))
        pid_dir = self.state_dir / "pids"
        if pid_dir.is_dir():
            names += [p.stem for p in sorted(pid_dir.glob("*.pid")) if p.stem not in names]
        return names

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One `up`/`down` at a time per state dir (two shells, or pytest + a shell)."""
        # 0700: keys, the CA key, the gateway password and pod logs live below it.
        private_dir(self.state_dir)
        with (self.state_dir / ".lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- public API ----------------------------------------------------------------------------

    def up(self, services: Sequence[str] = svc.DEFAULT_SERVICES, seed: bool = True) -> list[str]:
        """Start the services not yet running (idempotent); seed demo data if absent.

        Returns one human-readable line per service/seeding step. Raises SandboxError with a
        one-line message on a taken port, a missing tool, or a service failing to start.
        """
        names = list(dict.fromkeys(services))
        for name in names:
            svc.get(name)
        svc.check_port_layout(names)
        missing = svc.missing_requirements(names)
        if missing:
            raise SandboxError("cannot start the sandbox, missing: " + "; ".join(missing))
        messages: list[str] = []
        with self._locked():
            self._check_base_port()
            running = [n for n in self._known_services() if self._alive(n)]
            # Record the base port first, so `env`/`status` agree with a partly failed `up`.
            self._write_state(list(dict.fromkeys([*running, *names])))
            messages += self._start([svc.get(name) for name in names])
            if seed:
                if "azurite" in names:
                    from pcflow.sandbox import seed as seeding

                    messages += seeding.seed_all(self.ctx)
                else:
                    messages.append("seed: skipped (azurite not among the started services)")
        return messages

    def down(self) -> list[str]:
        """Stop every service of this state dir (whole process groups); remove pid files."""
        messages = []
        with self._locked():
            for name in self._known_services():
                path = self.pid_path(name)
                record = read_pid_file(path)
                if is_alive(record):
                    stop_group(record.pid)
                    messages.append(f"{name}: stopped (pid {record.pid})")
                proc = self._procs.pop(name, None)
                if proc is not None:
                    try:
                        proc.wait(timeout=5)
                    except Exception:  # noqa: BLE001 - reaping is best effort
                        pass
                path.unlink(missing_ok=True)
        return messages or ["nothing was running"]

    def status(self) -> list[ServiceStatus]:
        """Each known service: up/down, pid, port, log path."""
        result = []
        for name in self._known_services():
            record = read_pid_file(self.pid_path(name))
            alive = is_alive(record)
            spec = svc.REGISTRY.get(name)
            port = spec.ports(self.ctx)[0] if spec else (record.port if record else 0)
            note = "stale pid file" if record is not None and not alive else ""
            if alive and record and record.port != port:
                note = f"running on port {record.port} (another base port)"
            pid = record.pid if alive and record else None
            result.append(ServiceStatus(name, alive, pid, port, self.log_path(name), note))
        return result

    def env(self) -> dict[str, str]:
        """Environment for clients: PCFLOW_STAC_API, PC_SDK_SAS_URL, account host, keys, CA."""
        names = [n for n in self._known_services() if n in svc.REGISTRY]
        result = {
            STATE_DIR_ENV: str(self.state_dir),
            BASE_PORT_ENV: str(self.base_port),
        }
        for name in names:
            result.update(svc.REGISTRY[name].exports(self.ctx))
        return result

    # -- internals -----------------------------------------------------------------------------

    def _alive(self, name: str) -> bool:
        return is_alive(read_pid_file(self.pid_path(name)))

    def _check_base_port(self) -> None:
        recorded = self._read_state().get("base_port")
        if recorded is None or recorded == self.base_port:
            return
        for name in self._known_services():
            if self._alive(name):
                raise SandboxError(
                    f"the sandbox in {self.state_dir} already runs on base port {recorded}; "
                    f"run `pcflow sandbox down` first or use --port {recorded}"
                )

    def _start(self, specs: list[svc.ServiceSpec]) -> list[str]:
        """Launch every service not yet running, then wait for all (they start in parallel).

        Ports are checked before anything is launched; if one service fails, the ones this
        call launched are stopped again, so a failed `up` leaves nothing half-started.
        """
        messages: dict[str, str] = {}
        to_launch = []
        for spec in specs:
            port = spec.ports(self.ctx)[0]
            record = read_pid_file(self.pid_path(spec.name))
            if is_alive(record):
                if record.port != port:
                    raise SandboxError(
                        f"service {spec.name} already runs on port {record.port}, not {port}; "
                        f"run `pcflow sandbox down` first or use that base port"
                    )
                self._wait_existing(spec, self.log_path(spec.name))
                messages[spec.name] = (
                    f"{spec.name}: already running (pid {record.pid}, port {port})"
                )
                continue
            for p in spec.ports(self.ctx):
                if not port_is_free(p):
                    raise SandboxError(
                        f"port {p} for sandbox service {spec.name} is already in use by another "
                        f"process; free it or choose another base port (--port / {BASE_PORT_ENV})"
                    )
            to_launch.append(spec)
        launched = []
        try:
            for spec in to_launch:
                t0 = time.monotonic()
                if spec.prepare is not None:
                    spec.prepare(self.ctx)
                argv = spec.argv(self.ctx)
                env = {**os.environ, **spec.env(self.ctx)}
                pid_path = self.pid_path(spec.name)
                pid_path.parent.mkdir(parents=True, exist_ok=True)
                log = self.log_path(spec.name)
                port = spec.ports(self.ctx)[0]
                proc = spawn(argv, env, log, pid_path, port, cwd=self.state_dir)
                self._procs[spec.name] = proc
                launched.append((spec, proc, t0))
            for spec, proc, t0 in launched:
                log = self.log_path(spec.name)
                wait_ready(
                    proc, lambda s=spec: s.ready(self.ctx), spec.start_timeout, spec.name, log
                )
                took = time.monotonic() - t0
                port = spec.ports(self.ctx)[0]
                messages[spec.name] = (
                    f"{spec.name}: started (pid {proc.pid}, port {port}) in {took:.1f}s"
                )
        except BaseException:
            for spec, proc, _ in launched:
                stop_group(proc.pid)
                self.pid_path(spec.name).unlink(missing_ok=True)
            raise
        return [messages[spec.name] for spec in specs]

    def _wait_existing(self, spec: svc.ServiceSpec, log: Path) -> None:
        """A running service (maybe started a moment ago by another `up`) must answer too."""
        deadline = time.monotonic() + spec.start_timeout
        while not spec.ready(self.ctx):
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"service {spec.name} runs but does not answer on port "
                    f"{spec.ports(self.ctx)[0]}; see its log: {log} (try `pcflow sandbox down`)"
                )
            time.sleep(0.1)


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def default_base_port(state_dir: Path | None = None) -> int:
    """$PCFLOW_SANDBOX_PORT_BASE, else the port recorded by the last `up`, else 10000."""
    value = os.environ.get(BASE_PORT_ENV)
    if value:
        try:
            return int(value)
        except ValueError:
            raise SandboxError(f"{BASE_PORT_ENV}={value!r} is not a port number") from None
    if state_dir is not None:
        try:
            return int(json.loads((Path(state_dir) / STATE_FILE).read_text())["base_port"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return DEFAULT_BASE_PORT
