"""Dry runs with the default storage out of reach (pcflow.workflow.offline_storage).

The last two tests run the real `snakemake --profile kbatch -n` with no service at all: before
this module existed, that command retried each storage question for minutes (> 10 min).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pcflow.workflow import invocation, offline_storage

REPO = Path(__file__).resolve().parents[2]


class FakeWorkflow:
    """Stands for Snakemake's `workflow` while parsing: only the dry-run flag is known."""

    def __init__(self, dryrun: bool):
        self.output_settings = type("OutputSettings", (), {"dryrun": dryrun})()


@pytest.mark.parametrize(
    ("argv", "dryrun", "expected"),
    [
        (["snakemake", "-n"], True, True),
        (["snakemake", "-np", "--profile", "kbatch"], True, True),
        (["snakemake", "--dry-run"], True, True),
        (["snakemake", "--dag"], False, True),
        (["snakemake", "--dag", "mermaid-js"], False, True),
        (["snakemake", "--rulegraph"], False, True),
        (["snakemake", "--profile", "kbatch"], False, False),
        (["snakemake", "--summary"], False, False),  # about what IS stored: no assumption allowed
        (["snakemake", "--report", "r.html"], False, False),
        (["snakemake", "--mode", "remote", "--cores", "1"], False, False),  # a kbatch job
    ],
)
def test_only_plans_and_pictures_may_assume(argv, dryrun, expected):
    assert invocation.of(FakeWorkflow(dryrun), argv, {}).plan_only is expected


def test_deadline_returns_without_waiting_for_a_blocked_probe():
    t0 = time.monotonic()
    finished, value = offline_storage.run_with_deadline(lambda: time.sleep(30), 0.2)
    assert not finished and value is None
    assert time.monotonic() - t0 < 5


def test_deadline_hands_back_the_exception():
    finished, value = offline_storage.run_with_deadline(lambda: 1 / 0, 5)
    assert finished and isinstance(value, ZeroDivisionError)


class FakeObject:
    """Stands for a storage plugin's StorageObject: exists() would need the network."""

    def __init__(self, query: str):
        self.query = query

    def exists(self) -> bool:
        raise AssertionError("network call")


class FakeProvider:
    def get_storage_object_cls(self):
        return FakeObject

    def object(self, query: str):
        return self.get_storage_object_cls()(query)


def test_assume_nothing_stored_answers_without_the_network():
    provider = FakeProvider()
    offline_storage.assume_nothing_stored(provider)
    offline_storage.assume_nothing_stored(provider)  # idempotent: no subclass of a subclass
    obj = provider.object("az://c/x")
    assert obj.exists() is False
    assert isinstance(obj, FakeObject) and type(obj).__mro__[1] is FakeObject


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_is_named_with_no_secret():
    from azure.storage.blob import BlobServiceClient

    key = "c2VjcmV0LWtleS1mb3ItdGhlLXRlc3Q="
    port = closed_port()
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={key};"
        f"BlobEndpoint=http://127.0.0.1:{port}/acct;"
    )

    class Provider:
        bsc = BlobServiceClient.from_connection_string(conn)

    t0 = time.monotonic()
    # The path check_default_storage takes: one probe, then its one-line reason.
    finished, value = offline_storage.probe_storage(Provider(), "az://snakemake/pcflow", 20)
    reason = offline_storage.reason_for(finished, value, 20)
    assert reason is not None and "refused" in reason.lower(), reason
    assert key not in reason
    assert time.monotonic() - t0 < 15  # no SDK retries with back-off


def kbatch_dry_run(
    tmp_path: Path, extra_env: dict[str, str], flags: tuple[str, ...] = ("-n",)
) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path)}
    env.update(extra_env)
    cmd = ["snakemake", "--profile", "kbatch", *flags, "--configfile", "config/demo.yaml"]
    return subprocess.run(
        [*cmd, "--directory", str(tmp_path / "work")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=150,
    )  # fmt: skip


def assert_full_plan(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "is out of reach" in out and "planning as if no output is stored yet" in out
    for rule in ("discover", "stage", "reduce", "plot"):
        assert f"\n{rule} " in out, f"rule {rule} missing from the plan"
    return out


@pytest.mark.timeout(200)
def test_kbatch_dry_run_without_any_service_or_credential(tmp_path):
    """Nothing running, no credential: Azure identity fails, the plan still comes out."""
    proc = kbatch_dry_run(tmp_path, {"PCFLOW_TARGET_ACCOUNT_NAME": "pcflowdemo"})
    out = assert_full_plan(proc)
    assert "ClientAuthenticationError" in out or "no answer within" in out


KEY = "c2VjcmV0LWtleS1mb3ItdGhlLXRlc3Q="


def storage_down_env() -> dict[str, str]:
    """What `pcflow sandbox env` exports, with the sandbox stopped (its port closed)."""
    port = closed_port()
    conn = (
        f"DefaultEndpointsProtocol=https;AccountName=pcflowdemo;AccountKey={KEY};"
        f"BlobEndpoint=https://127.0.0.1:{port}/pcflowdemo;"
    )
    return {
        "PCFLOW_TARGET_ACCOUNT_NAME": "pcflowdemo",
        "PCFLOW_TARGET_ACCOUNT_KEY": KEY,
        "AZURITE_CONNECTION_STRING": conn,
        "PCFLOW_AZURE_ACCOUNT_HOST": f"127.0.0.1:{port}/{{account_name}}",
        "PCFLOW_ALLOW_DIRTY": "1",
    }


@pytest.mark.timeout(200)
def test_kbatch_dry_run_with_sandbox_settings_but_storage_down(tmp_path):
    """The usual case: `pcflow sandbox env` exported, sandbox stopped."""
    out = assert_full_plan(kbatch_dry_run(tmp_path, storage_down_env()))
    assert "refused" in out.lower()
    assert KEY not in out


@pytest.mark.timeout(200)
def test_kbatch_run_with_storage_down_stops_at_once_with_one_line(tmp_path):
    t0 = time.monotonic()
    proc = kbatch_dry_run(tmp_path, storage_down_env(), flags=())
    assert proc.returncode != 0
    line = next(x for x in proc.stderr.splitlines() if "out of reach" in x)
    assert "refused" in line.lower() and "nothing was run" in line and "pcflow sandbox up" in line
    assert KEY not in proc.stdout + proc.stderr
    assert time.monotonic() - t0 < 60  # not minutes of retries
    assert not (tmp_path / "work" / ".snakemake" / "kbatch-logs").exists()  # nothing submitted
