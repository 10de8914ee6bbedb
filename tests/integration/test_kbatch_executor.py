"""The kbatch executor against local kbatch (real kbatch-proxy) with Azurite as default storage.

Each test runs a tiny workflow with `snakemake --executor kbatch` in a temp dir and then checks
what a user relies on: outputs in storage, the pod log in Snakemake's error output, stuck pods
failing with their reason, cancellation and retries, and that no Job (or job process) is left.
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

import pytest

from tests.integration.kbatch_helpers import TOKEN, jobs, processes_with

pytestmark = pytest.mark.integration

SNAKEMAKE = Path(sys.executable).parent / "snakemake"
# Runs a command with SIGINT at its default, as from a terminal. A shell without job control
# starts background commands with SIGINT ignored, and the children of this test process
# inherit that: run so (`bash .ci/run &`), Snakemake never saw the test's Ctrl-C.
WITH_DEFAULT_SIGINT = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])",
]


def _workflow(tmp_path: Path, snakefile: str) -> Path:
    wd = tmp_path / "wf"
    wd.mkdir()
    (wd / "Snakefile").write_text(textwrap.dedent(snakefile))
    return wd


def _snakemake(
    wd: Path, url: str, *args: str, popen: bool = False, timeout: int = 300, prefix: str = ""
):
    prefix = prefix or f"test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "KBATCH_URL": url, "KBATCH_TOKEN": TOKEN}
    cmd = [
        str(SNAKEMAKE),
        "--executor",
        "kbatch",
        "--default-storage-provider",
        "azure",
        "--default-storage-prefix",
        f"az://snakemake/{prefix}",
        "--storage-azure-account-name",
        os.environ["PCFLOW_TARGET_ACCOUNT_NAME"],
        "--container-image",
        "pcflow/kbatch-job:test",
        "--kbatch-sas-env",
        "PCFLOW_TARGET_SAS_TOKEN=pcflow",
        "--kbatch-storage-account-name-env",
        "PCFLOW_TARGET_ACCOUNT_NAME",
        "--kbatch-storage-account-key-env",
        "PCFLOW_TARGET_ACCOUNT_KEY",
        "--kbatch-storage-account-host-env",
        "PCFLOW_AZURE_ACCOUNT_HOST",
        "--kbatch-envvars",
        "PCFLOW_AZURE_ACCOUNT_HOST",
        "--jobs",
        "4",
        "--seconds-between-status-checks",
        "1",
        *args,
    ]
    if popen:
        out = (wd / "snakemake.out").open("w")
        return subprocess.Popen(
            WITH_DEFAULT_SIGINT + cmd, cwd=wd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return subprocess.run(cmd, cwd=wd, env=env, capture_output=True, text=True, timeout=timeout)


def test_workflow_runs_as_kbatch_jobs_and_leaves_none(kbatch, tmp_path):
    url, _ = kbatch
    wd = _workflow(
        tmp_path,
        """
        rule all:
            input: "out/b.txt"
        rule a:
            output: "out/a.txt"
            shell: "echo from-a > {output}; echo HOSTNAME=$HOSTNAME; test $PCFLOW_TARGET_SAS_TOKEN"
        rule b:
            input: "out/a.txt"
            output: "out/b.txt"
            resources: mem_mb=500, runtime=5
            shell: "cat {input} > {output}; echo from-b >> {output}"
        """,
    )
    from azure.storage.blob import BlobServiceClient

    prefix = f"test-{uuid.uuid4().hex[:8]}"
    proc = _snakemake(wd, url, prefix=prefix)
    assert proc.returncode == 0, proc.stderr[-4000:]
    bsc = BlobServiceClient.from_connection_string(os.environ["AZURITE_CONNECTION_STRING"])
    blob = bsc.get_blob_client("snakemake", f"{prefix}/out/b.txt")
    assert blob.download_blob().readall() == b"from-a\nfrom-b\n"
    logs = sorted((wd / ".snakemake/kbatch-logs").glob("*.log"))
    assert [p.name.split("-")[1] for p in logs] == ["a", "b"]
    assert "HOSTNAME=smk-a-" in logs[0].read_text()  # the pod's own name, fetched at job end
    assert jobs(url) == []


def test_failing_rule_shows_its_pod_log(kbatch, tmp_path):
    url, _ = kbatch
    marker = "BOOM-" + uuid.uuid4().hex[:6]
    wd = _workflow(
        tmp_path,
        f"""
        rule fail:
            output: "out/x.txt"
            shell: "echo {marker} >&2; exit 3"
        """,
    )
    proc = _snakemake(wd, url)
    assert proc.returncode != 0
    assert marker in proc.stderr  # the tail of the pod log is in Snakemake's error output
    assert "kbatch-logs" in proc.stderr and "BackoffLimitExceeded" in proc.stderr
    assert jobs(url) == []


def test_stuck_pod_fails_with_its_reason(kbatch, tmp_path):
    url, _ = kbatch
    wd = _workflow(
        tmp_path,
        """
        rule never:
            output: "out/x.txt"
            shell: "touch {output}"
        """,
    )
    t0 = time.monotonic()
    proc = _snakemake(
        wd, url, "--container-image", "registry.invalid/nope:1", "--kbatch-stuck-timeout", "6"
    )
    assert proc.returncode != 0
    assert "ImagePullBackOff" in proc.stderr and "did not start within" in proc.stderr
    assert time.monotonic() - t0 < 120
    assert jobs(url) == []


def test_cancel_deletes_jobs_and_kills_their_processes(kbatch, tmp_path):
    url, _ = kbatch
    marker = f"sleepmarker{uuid.uuid4().hex[:6]}"
    wd = _workflow(
        tmp_path,
        f"""
        rule all:
            input: expand("out/{{i}}.txt", i=range(2))
        rule long:
            output: "out/{{i}}.txt"
            shell: "python -c 'import time; time.sleep(300)' {marker} {{wildcards.i}}"
        """,
    )
    proc = _snakemake(wd, url, popen=True)
    deadline = time.monotonic() + 90
    while len(processes_with(marker)) < 2:
        assert proc.poll() is None, (wd / "snakemake.out").read_text()[-3000:]
        assert time.monotonic() < deadline, "jobs did not start"
        time.sleep(0.5)
    assert len(jobs(url)) == 2
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    assert jobs(url) == [], (wd / "snakemake.out").read_text()[-3000:]
    assert processes_with(marker) == []


def test_retries_submit_a_fresh_job_per_attempt(kbatch, tmp_path):
    url, _ = kbatch
    wd = _workflow(
        tmp_path,
        """
        rule flaky:
            output: "out/x.txt"
            resources: tries=lambda wildcards, attempt: attempt
            shell: "test {resources.tries} -ge 2 || exit 1; echo ok > {output}"
        """,
    )
    proc = _snakemake(wd, url, "--retries", "1")
    assert proc.returncode == 0, proc.stderr[-4000:]
    names = sorted(p.stem for p in (wd / ".snakemake/kbatch-logs").glob("*.log"))
    assert len(names) == 2
    assert "-a1-" in names[0] and "-a2-" in names[1]
    assert jobs(url) == []


def test_no_secret_in_job_specs_or_logs(kbatch, tmp_path):
    url, state = kbatch
    wd = _workflow(
        tmp_path,
        """
        rule show:
            output: "out/x.txt"
            shell: "env | cut -d= -f1 | sort; echo done > {output}"
        """,
    )
    proc = _snakemake(wd, url, "--kbatch-keep-jobs", "--verbose")
    assert proc.returncode == 0, proc.stderr[-4000:]
    import kbatch as kb

    kept = jobs(url)
    assert len(kept) == 1
    try:
        texts = {"snakemake output": proc.stdout + proc.stderr}
        for path in [*state.rglob("*.json"), *state.rglob("*.log"), *wd.rglob("*.log")]:
            texts[str(path)] = path.read_text(errors="replace")
        spec_files = list((state / "jobs").rglob("*.json"))
        assert spec_files, "local kbatch stored no job spec"
        secrets = [os.environ["PCFLOW_TARGET_ACCOUNT_KEY"], TOKEN]
        secrets.append(
            os.environ["AZURITE_CONNECTION_STRING"].split("AccountKey=")[1].split(";")[0]
        )
        for where, text in texts.items():
            for secret in secrets:
                assert secret not in text, f"secret found in {where}"
            assert "sig=" not in text.replace("sig=***", ""), f"SAS signature in {where}"
        spec = spec_files[0].read_text()
        # env values were moved into a Secret by kbatch-proxy: only references remain.
        assert "PCFLOW_TARGET_SAS_TOKEN" in spec and "secretKeyRef" in spec
        # the job did receive the SAS and the hub token (injected by kbatch-proxy), as env.
        pod_log = next((wd / ".snakemake/kbatch-logs").glob("*.log")).read_text()
        assert "PCFLOW_TARGET_SAS_TOKEN" in pod_log and "JUPYTERHUB_API_TOKEN" in pod_log
        assert "PCFLOW_TARGET_ACCOUNT_KEY" not in pod_log
    finally:
        for name in kept:
            kb.delete_job(name, kbatch_url=url, token=TOKEN)
