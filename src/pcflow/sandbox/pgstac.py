"""A throwaway stac-fastapi-pgstac server: the faithful local stand-in for MPC's STAC API.

MPC runs stac-fastapi on pgstac (PostgreSQL + PostGIS). The sandbox's fast default,
`rustac serve` in memory, implements neither `query` nor `filter`; this module starts the
real thing on loopback so tests can prove discovery against both kinds of API:

1. a fresh PostgreSQL cluster (Debian's initdb/pg_ctl) in a temporary directory, listening
   on 127.0.0.1:<port_base> only, with a random password that is never written to disk;
2. `pypgstac migrate` (schema + PostGIS), then `pypgstac load` for collections and items;
3. `uvicorn stac_fastapi.pgstac.app:create_app` on 127.0.0.1:<port_base + 1>.

pypgstac and stac-fastapi-pgstac live in their own venv (`.venv-pgstac`, made by
scripts/setup-pgstac-venv.sh from envs/pgstac-requirements.lock), so they are only ever run
as subprocesses here. PostgreSQL refuses to run as root: as root the cluster is owned by,
and run as, the `postgres` system user via `runuser`.

Command line (serves until Ctrl-C):
    python -m pcflow.sandbox.pgstac --port-base 11100 collection.json items.ndjson
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pcflow.paths import REPO_ROOT

INSTALL_HINT = "run `bash scripts/install-system-deps.sh` (as root)"
VENV_HINT = "run `bash scripts/setup-pgstac-venv.sh`"


class PgstacError(RuntimeError):
    """The pgstac stand-in cannot start; str() is one line saying what and how to fix it."""


def find_pg_bindir() -> Path | None:
    """PostgreSQL server binaries: $PCFLOW_PG_BINDIR, Debian's newest version, or PATH."""
    if env := os.environ.get("PCFLOW_PG_BINDIR"):
        return Path(env)
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if debian:
        return debian[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _postgis_installed(bindir: Path) -> bool:
    # Debian: /usr/lib/postgresql/<v>/bin -> /usr/share/postgresql/<v>/extension
    candidates = [Path("/usr/share/postgresql") / bindir.parent.name / "extension"]
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        out = subprocess.run([pg_config, "--sharedir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()) / "extension")
    return any((c / "postgis.control").exists() for c in candidates)


def default_venv() -> Path:
    return Path(os.environ.get("PCFLOW_PGSTAC_VENV", REPO_ROOT / ".venv-pgstac"))


def missing_requirements(venv: Path | None = None) -> list[str]:
    """What is missing to run the stand-in, one line each naming the fix; [] when ready."""
    problems = []
    bindir = find_pg_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        problems.append(f"PostgreSQL server (initdb) not found — {INSTALL_HINT}")
    elif not _postgis_installed(bindir):
        problems.append(f"PostGIS for PostgreSQL {bindir.parent.name} not found — {INSTALL_HINT}")
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            problems.append("running as root needs `runuser` (util-linux) to start PostgreSQL")
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            problems.append(f"running as root needs a `postgres` system user — {INSTALL_HINT}")
    venv = venv or default_venv()
    for tool in ("pypgstac", "uvicorn"):
        if not (venv / "bin" / tool).exists():
            problems.append(f"{venv}/bin/{tool} not found — {VENV_HINT}")
    return problems


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _wait_http(url: str, timeout: float, proc: subprocess.Popen | None, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise PgstacError(f"STAC API server exited ({proc.returncode}):\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise PgstacError(f"STAC API at {url} not ready after {timeout:.0f}s:\n{_tail(log)}")


class PgstacServer:
    """PostgreSQL + pgstac + stac-fastapi on 127.0.0.1 ports `port_base` (db), `port_base+1` (API).

    Use as a context manager, or call start()/stop(). `timings` records seconds per phase.
    """

    def __init__(
        self,
        port_base: int = 11100,
        *,
        venv: Path | None = None,
        base_dir: Path | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        self.pg_port = port_base
        self.api_port = port_base + 1
        self.venv = venv or default_venv()
        self.base_dir = base_dir
        self.ready_timeout = ready_timeout
        self.timings: dict[str, float] = {}
        self.workdir: Path | None = None
        self._password = secrets.token_urlsafe(24)  # only ever in memory and child env
        self._api: subprocess.Popen | None = None
        self._pg_started = False
        self._bindir = find_pg_bindir()
        self._as_postgres = os.geteuid() == 0

    # -- public --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The STAC API root, as given to pystac_client.Client.open / PCFLOW_STAC_API."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def dsn(self) -> str:
        """libpq DSN without the password (children get it through PGPASSWORD)."""
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/pgstac"

    def env(self) -> dict[str, str]:
        return {"PCFLOW_STAC_API": self.url}

    def start(self) -> PgstacServer:
        problems = missing_requirements(self.venv)
        if problems:
            raise PgstacError("; ".join(problems))
        for port in (self.pg_port, self.api_port):
            if _port_in_use(port):
                raise PgstacError(
                    f"127.0.0.1:{port} is already in use (a leftover pgstac stand-in?) — "
                    "stop what holds it or pass another port_base"
                )
        try:
            t0 = time.monotonic()
            self._start_cluster()
            t1 = time.monotonic()
            self._migrate()
            t2 = time.monotonic()
            self._start_api()
            t3 = time.monotonic()
        except BaseException:
            self.stop()
            raise
        self.timings.update(cluster_start=t1 - t0, migrate=t2 - t1, api_ready=t3 - t2)
        return self

    def load_collections(self, collections: Iterable[dict[str, Any]]) -> None:
        self._load("collections", list(collections))

    def load_items(self, items: Iterable[dict[str, Any]]) -> None:
        self._load("items", list(items))

    def stop(self) -> None:
        if self._api is not None:
            if self._api.poll() is None:
                os.killpg(self._api.pid, signal.SIGTERM)
                try:
                    self._api.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self._api.pid, signal.SIGKILL)
                    self._api.wait()
            self._api = None
        if self._pg_started and self.workdir is not None:
            self._pg_ctl("stop", "-m", "fast", check=False)
            self._pg_started = False
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> PgstacServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------
    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            PGHOST="127.0.0.1",
            PGPORT=str(self.pg_port),
            PGUSER="postgres",
            PGPASSWORD=self._password,
            PGDATABASE="pgstac",
        )
        return env

    def _pg_cmd(self, *args: str | Path) -> list[str]:
        cmd = [str(a) for a in args]
        return ["runuser", "-u", "postgres", "--", *cmd] if self._as_postgres else cmd

    def _run(self, cmd: list[str], what: str, **kw: Any) -> subprocess.CompletedProcess:
        # cwd: somewhere `postgres` may enter (runuser keeps ours, which may be /root/...).
        kw.setdefault("cwd", self.workdir)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self._child_env(), **kw)
        if proc.returncode != 0:
            out = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            raise PgstacError(f"{what} failed ({proc.returncode}):\n" + "\n".join(out))
        return proc

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        assert self.workdir is not None and self._bindir is not None
        cmd = self._pg_cmd(self._bindir / "pg_ctl", "-D", self.workdir / "pg" / "data", *args)
        if check:
            self._run(cmd, f"pg_ctl {args[0]}")
        else:
            subprocess.run(cmd, capture_output=True, env=self._child_env(), cwd=self.workdir)

    def _start_cluster(self) -> None:
        assert self._bindir is not None
        # Not under pytest's tmp_path: its parents are 0700 root, which `postgres` cannot enter.
        self.workdir = Path(tempfile.mkdtemp(prefix="pcflow-pgstac-", dir=self.base_dir))
        self.workdir.chmod(0o711)  # traversable by `postgres`, not listable
        pgdir = self.workdir / "pg"
        pgdir.mkdir(mode=0o700)
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(pgdir, pw.pw_uid, pw.pw_gid)
        # Unix socket: trust, but it lives in the 0700 data dir, so only the cluster's owner
        # reaches it. TCP (127.0.0.1): scram with a password that never touches the disk.
        self._run(
            self._pg_cmd(
                self._bindir / "initdb",
                "-D",
                pgdir / "data",
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ),
            "initdb",
        )
        sock = pgdir / "data"
        # Throwaway test cluster: loopback only, socket in the data dir, durability off.
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.pg_port} -k {sock} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        try:
            self._pg_ctl("start", "-w", "-t", "60", "-l", str(pgdir / "postgres.log"), "-o", opts)
        except PgstacError as err:
            raise PgstacError(f"{err}\n{_tail(pgdir / 'postgres.log')}") from None
        self._pg_started = True
        # The password goes in on psql's stdin (an inherited fd): not in argv, not on disk.
        password = _sql_literal(self._password)
        sql = f"ALTER USER postgres PASSWORD {password};\nCREATE DATABASE pgstac;\n"
        psql = self._pg_cmd(
            self._bindir / "psql",
            "-h",
            sock,
            "-p",
            str(self.pg_port),
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-f",
            "-",
        )
        self._run(psql, "set password + create database", input=sql)

    def _migrate(self) -> None:
        self._run([str(self.venv / "bin" / "pypgstac"), "migrate", "--dsn", self.dsn], "migrate")

    def _start_api(self) -> None:
        assert self.workdir is not None
        log = self.workdir / "api.log"
        env = self._child_env()
        # All extensions (query, filter, sort, fields, ...) as MPC; no transactions.
        env.pop("ENABLED_EXTENSIONS", None)
        env["ENABLE_TRANSACTIONS_EXTENSIONS"] = "false"
        env.setdefault("STAC_FASTAPI_TITLE", "pcflow pgstac stand-in")
        env.setdefault("STAC_FASTAPI_DESCRIPTION", "stac-fastapi-pgstac on a throwaway cluster")
        env.setdefault("STAC_FASTAPI_LANDING_ID", "pcflow-pgstac")
        env.setdefault("STAC_FASTAPI_VERSION", "local")
        with log.open("wb") as out:
            self._api = subprocess.Popen(
                [
                    str(self.venv / "bin" / "uvicorn"),
                    "stac_fastapi.pgstac.app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.api_port),
                    "--log-level",
                    "warning",
                ],
                cwd=self.workdir,  # stac-fastapi reads a `.env` from cwd: keep the repo's out
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() ends it and its children
            )
        _wait_http(f"{self.url}/_mgmt/ping", self.ready_timeout, self._api, log)

    def _load(self, table: str, objs: list[dict[str, Any]]) -> None:
        if self.workdir is None:
            raise PgstacError(f"load {table}: server not started — call start() first")
        if not objs:
            return
        t0 = time.monotonic()
        path = self.workdir / f"load-{table}-{time.monotonic_ns()}.ndjson"
        path.write_text("".join(json.dumps(o) + "\n" for o in objs))
        self._run(
            [
                str(self.venv / "bin" / "pypgstac"),
                "load",
                table,
                str(path),
                "--dsn",
                self.dsn,
                "--method",
                "upsert",
            ],
            f"pypgstac load {table}",
        )
        path.unlink()
        self.timings[f"load_{table}"] = time.monotonic() - t0


def _read_stac(paths: list[Path]) -> tuple[list[dict], list[dict]]:
    """Split JSON / NDJSON / FeatureCollection files into (collections, items)."""
    collections: list[dict] = []
    items: list[dict] = []
    for path in paths:
        text = path.read_text()
        try:
            docs = [json.loads(text)]
        except json.JSONDecodeError:
            docs = [json.loads(line) for line in text.splitlines() if line.strip()]
        for doc in docs:
            if doc.get("type") == "FeatureCollection":
                items.extend(doc["features"])
            elif doc.get("type") == "Feature":
                items.append(doc)
            elif doc.get("type") == "Collection":
                collections.append(doc)
            else:
                raise PgstacError(
                    f"{path}: type {doc.get('type')!r} is not a STAC Collection, Feature or "
                    "FeatureCollection — pass collection/item JSON or NDJSON files"
                )
    return collections, items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pcflow.sandbox.pgstac", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("files", nargs="*", type=Path, help="collection/item JSON or NDJSON")
    parser.add_argument("--port-base", type=int, default=11100, help="db port; API is +1")
    args = parser.parse_args(argv)
    collections, items = _read_stac(args.files)

    # SIGTERM, and SIGINT even where a non-interactive shell started us with it ignored
    # (`cmd &`), must unwind through stop() so no cluster or server is left behind.
    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    with PgstacServer(args.port_base) as server:
        server.load_collections(collections)
        server.load_items(items)
        timing = ", ".join(f"{k} {v:.1f}s" for k, v in server.timings.items())
        print(f"export PCFLOW_STAC_API={server.url}  # {timing}; Ctrl-C stops", flush=True)
        signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
