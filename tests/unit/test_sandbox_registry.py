"""Sandbox service registry and lifecycle logic, with tiny real processes (no Node/Azurite)."""

from __future__ import annotations

import socket
import sys
import time

import psutil
import pytest

from pcflow.sandbox import REGISTRY, Sandbox, SandboxError, ServiceSpec, register
from pcflow.sandbox import services as svc

BASE = 11400  # this file's own port range (the session sandbox uses 11000-11020)


@pytest.fixture
def temp_services():
    """Register services for one test; restore the registry afterwards."""
    saved = dict(REGISTRY)
    yield register
    REGISTRY.clear()
    REGISTRY.update(saved)


def http_server(offset: int) -> ServiceSpec:
    return ServiceSpec(
        name=f"web{offset}",
        port_offset=offset,
        argv=lambda ctx: [
            sys.executable,
            "-m",
            "http.server",
            str(ctx.port(offset)),
            "--bind",
            "127.0.0.1",
        ],
        ready=lambda ctx: svc.http_ready(f"http://127.0.0.1:{ctx.port(offset)}/"),
        exports=lambda ctx: {f"WEB{offset}_URL": f"http://127.0.0.1:{ctx.port(offset)}"},
        start_timeout=15,
    )


def test_default_layout_matches_the_contract():
    ctx = svc.Context(state_dir=None, base_port=10000)  # type: ignore[arg-type]
    assert svc.DEFAULT_SERVICES == ("azurite", "stac", "sas")
    assert {n: REGISTRY[n].ports(ctx)[0] for n in svc.DEFAULT_SERVICES} == {
        "azurite": 10000,
        "stac": 10010,
        "sas": 10011,
    }


def test_unknown_service_is_a_one_line_error(tmp_path):
    with pytest.raises(SandboxError, match="unknown sandbox service 'nope'; known services: "):
        Sandbox(tmp_path, BASE).up(services=("nope",))


def test_two_services_on_one_port_offset_are_refused(temp_services):
    temp_services(http_server(15))
    temp_services(ServiceSpec("clash", 15, argv=lambda c: ["true"], ready=lambda c: True))
    with pytest.raises(SandboxError, match=r"web15 and clash both use port offset \+15"):
        svc.check_port_layout(["web15", "clash"])


def test_base_port_out_of_range(tmp_path):
    with pytest.raises(SandboxError, match="base_port 80 is out of range"):
        Sandbox(tmp_path, 80)


def test_registered_service_starts_once_stops_and_exports(temp_services, tmp_path):
    temp_services(http_server(15))
    sb = Sandbox(tmp_path, BASE)
    try:
        first = sb.up(services=("web15",), seed=False)
        assert first[0].startswith("web15: started (pid ")
        pid = sb.status()[-1].pid
        second = sb.up(services=("web15",), seed=False)
        assert second == [f"web15: already running (pid {pid}, port {BASE + 15})"]
        assert sb.env()["WEB15_URL"] == f"http://127.0.0.1:{BASE + 15}"
        # A second Sandbox object on the same state dir sees the same process.
        other = Sandbox(tmp_path, BASE)
        assert {s.name: s.pid for s in other.status()}["web15"] == pid
    finally:
        assert "web15: stopped" in " ".join(sb.down())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not (tmp_path / "pids" / "web15.pid").exists()
    assert "web15" in {s.name for s in sb.status() if not s.running}


def test_another_base_port_while_running_is_refused(temp_services, tmp_path):
    temp_services(http_server(15))
    sb = Sandbox(tmp_path, BASE)
    try:
        sb.up(services=("web15",), seed=False)
        with pytest.raises(SandboxError, match=f"already runs on base port {BASE}"):
            Sandbox(tmp_path, BASE + 100).up(services=("web15",), seed=False)
    finally:
        sb.down()


def test_port_taken_names_port_and_service(temp_services, tmp_path):
    temp_services(http_server(16))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", BASE + 16))
        blocker.listen()
        with pytest.raises(SandboxError) as err:
            Sandbox(tmp_path, BASE).up(services=("web16",), seed=False)
    assert f"port {BASE + 16} for sandbox service web16 is already in use" in str(err.value)
    assert not (tmp_path / "pids" / "web16.pid").exists()


def test_service_dying_at_start_names_it_and_its_log(temp_services, tmp_path):
    temp_services(
        ServiceSpec(
            "crasher",
            17,
            argv=lambda ctx: [
                sys.executable,
                "-c",
                "print('boom: bad config'); raise SystemExit(3)",
            ],
            ready=lambda ctx: False,
            start_timeout=60,
        )
    )
    t0 = time.monotonic()
    with pytest.raises(SandboxError) as err:
        Sandbox(tmp_path, BASE).up(services=("crasher",), seed=False)
    assert time.monotonic() - t0 < 20  # noticed the exit, did not wait for the timeout
    log = tmp_path / "logs" / "crasher.log"
    assert str(err.value) == (
        f"service crasher exited with code 3 while starting; see its log: {log}"
    )
    assert "boom: bad config" in log.read_text()


def test_service_never_ready_times_out_and_is_stopped(temp_services, tmp_path):
    temp_services(
        ServiceSpec(
            "sleeper",
            18,
            argv=lambda ctx: [sys.executable, "-c", "import time; time.sleep(600)"],
            ready=lambda ctx: False,
            start_timeout=1.5,
        )
    )
    sb = Sandbox(tmp_path, BASE)
    t0 = time.monotonic()
    with pytest.raises(
        SandboxError, match=r"service sleeper was not ready within 2s \(stopped it\)"
    ):
        sb.up(services=("sleeper",), seed=False)
    assert time.monotonic() - t0 < 15
    assert not any(s.running for s in sb.status())


def test_down_stops_the_whole_process_group(temp_services, tmp_path):
    # The service forks a grandchild; `down` must not leave it behind.
    code = (
        "import subprocess, sys, time, http.server, socketserver;"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
        f"http.server.ThreadingHTTPServer(('127.0.0.1', {BASE + 19}),"
        " http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    temp_services(
        ServiceSpec(
            "forker",
            19,
            argv=lambda ctx: [sys.executable, "-c", code],
            ready=lambda ctx: svc.tcp_ready(BASE + 19),
            start_timeout=15,
        )
    )
    sb = Sandbox(tmp_path, BASE)
    sb.up(services=("forker",), seed=False)
    leader = psutil.Process(next(s.pid for s in sb.status() if s.name == "forker"))
    deadline = time.monotonic() + 10
    while not leader.children() and time.monotonic() < deadline:
        time.sleep(0.05)
    kids = leader.children(recursive=True)
    assert kids
    sb.down()
    for proc in [leader, *kids]:
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE


def test_stale_pid_file_of_a_recycled_pid_is_not_trusted(tmp_path):
    from pcflow.sandbox.process import PidRecord, is_alive

    me = psutil.Process()
    assert is_alive(PidRecord(me.pid, me.create_time(), 1))
    assert not is_alive(PidRecord(me.pid, me.create_time() - 1000, 1))  # same pid, other start


def test_a_wall_clock_step_does_not_make_a_running_service_look_stale(monkeypatch, tmp_path):
    """A VM restored from a snapshot stepped the clock by 17 s: psutil's create_time (boot time
    + start ticks) moved with it and every running sandbox service read as a stale pid file,
    so `up` tried to start them again on their own ports. Simulated here by moving psutil's
    boot time, which is what the kernel reports after such a step."""
    from pcflow.sandbox import process
    from pcflow.sandbox.process import PidRecord, is_alive, read_pid_file

    me = psutil.Process()
    record = PidRecord(me.pid, me.create_time(), 1, process.started_since_boot(me))
    real_boot = psutil.boot_time()
    stepped = real_boot + 17.0
    monkeypatch.setattr(psutil, "boot_time", lambda: stepped)
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: stepped + (
        record.create_time - real_boot))  # fmt: skip
    assert is_alive(record)
    assert not is_alive(PidRecord(me.pid, record.create_time, 1))  # old pid file: absolute time
    assert not is_alive(PidRecord(me.pid, 0.0, 1, record.since_boot - 5))  # another process
    (tmp_path / "svc.pid").write_text(record.to_json())
    assert read_pid_file(tmp_path / "svc.pid") == record
    assert not is_alive(None)


def test_missing_tools_are_named(monkeypatch):
    monkeypatch.setattr(svc, "azurite_bin", lambda: None)
    monkeypatch.setattr(svc.shutil, "which", lambda name: None)
    missing = " ".join(svc.missing_requirements(["azurite"]))
    assert "node" in missing and "azurite-blob" in missing and "make install" in missing


def test_failed_up_stops_what_it_launched(temp_services, tmp_path):
    temp_services(http_server(15))
    temp_services(
        ServiceSpec(
            "crasher",
            17,
            argv=lambda ctx: [sys.executable, "-c", "raise SystemExit(2)"],
            ready=lambda ctx: False,
        )
    )
    sb = Sandbox(tmp_path, BASE)
    with pytest.raises(SandboxError, match="service crasher exited with code 2"):
        sb.up(services=("web15", "crasher"), seed=False)
    assert not any(s.running for s in sb.status())
    # The kernel may release a dead process's listening socket a moment after the process is
    # reaped (its last file reference is dropped by deferred work): poll, with a deadline.
    deadline = time.monotonic() + 10
    while svc.tcp_ready(BASE + 15) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert svc.tcp_ready(BASE + 15) is False
