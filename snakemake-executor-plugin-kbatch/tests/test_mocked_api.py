"""The executor against a mocked kbatch HTTP API: no server, cluster or storage needed.

The kbatch client library makes every request through `kbatch._core._client()` (an
httpx.Client); the tests hand it an httpx.MockTransport that answers like kbatch-proxy
(jobs, pods, logs, profiles), so submit, status, log, cancel and failure paths run the
plugin's real code down to the HTTP requests it sends.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from snakemake_executor_plugin_kbatch import Executor, ExecutorSettings
from snakemake_executor_plugin_kbatch.client import redact
from snakemake_interface_common.exceptions import WorkflowError

URL = "http://kbatch.test/services/kbatch/"
TOKEN = "mocked-hub-token-0123456789"


class FakeKbatch:
    """kbatch-proxy's REST API in memory: what it was sent, and what it answers."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.auth: set[str] = set()
        self.profiles: dict[str, Any] = {}
        self.down = False  # True: every request fails like a refused connection
        self.counter = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path.removeprefix("/services/kbatch/")
        self.requests.append((request.method, path))
        if path == "profiles/":
            return httpx.Response(200, json=self.profiles)
        self.auth.add(request.headers.get("authorization", ""))
        if request.headers.get("authorization") != f"token {TOKEN}":
            return httpx.Response(401, json={"detail": "Incorrect token"})
        if request.method == "POST" and path == "jobs/":
            return self._create(json.loads(request.content)["job"])
        if request.method == "GET" and path == "jobs/":
            return httpx.Response(200, json={"items": list(self.jobs.values())})
        if request.method == "GET" and path == "pods/":
            return httpx.Response(200, json={"items": list(self.pods.values())})
        if request.method == "GET" and path.startswith("jobs/logs/"):
            name = path.split("/")[2]
            if name not in self.logs:
                return httpx.Response(404, json={"detail": "not found"})
            return httpx.Response(200, text=self.logs[name])
        if request.method == "DELETE" and path.startswith("jobs/"):
            name = path.removeprefix("jobs/")
            if self.jobs.pop(name, None) is None:
                return httpx.Response(404, json={"detail": "not found"})
            self.pods.pop(name, None)
            return httpx.Response(200, json={"metadata": {"name": name}})
        return httpx.Response(404, json={"detail": f"no route {request.method} {path}"})

    def _create(self, job: dict[str, Any]) -> httpx.Response:
        self.counter += 1
        name = f"{job['metadata']['generate_name']}{self.counter:05d}"
        job = {**job, "metadata": {**job["metadata"], "name": name}, "status": {"active": 1}}
        self.jobs[name] = job
        return httpx.Response(201, json=job)

    # what a cluster would do to a job
    def run(self, name: str) -> None:
        self.jobs[name]["status"] = {"active": 1, "ready": 1}

    def finish(self, name: str, ok: bool, log: str) -> None:
        self.logs[name] = log
        if ok:
            self.jobs[name]["status"] = {"succeeded": 1}
        else:
            cond = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
            self.jobs[name]["status"] = {"failed": 1, "conditions": [cond]}

    def stuck(self, name: str, reason: str) -> None:
        self.pods[name] = {
            "metadata": {"name": f"{name}-p", "labels": {"job-name": name}},
            "status": {
                "phase": "Pending",
                "container_statuses": [{"state": {"waiting": {"reason": reason}}}],
            },
        }


class FakeJob:
    """What the executor reads from a Snakemake job."""

    def __init__(self, name: str, jobid: int, resources: dict[str, Any] | None = None) -> None:
        self.name = name
        self.jobid = jobid
        self.attempt = 1
        self.resources = resources or {"_cores": 1}
        self.output = [f"out/{name}.txt"]
        self.errors: list[str] = []
        self.error_logs: list[str] = []

    def format_wildcards(self, pattern: str) -> str:
        return f"sample={self.jobid}"

    def register(self, external_jobid: str | None = None) -> None:
        pass

    def log_error(self, msg: str | None = None, **kwargs: Any) -> None:
        self.errors.append(msg or "")
        self.error_logs.extend(kwargs.get("aux_logs", []))


class Scheduler:
    def __init__(self) -> None:
        self.submitted: list[FakeJob] = []
        self.finished: list[FakeJob] = []
        self.failed: list[FakeJob] = []

    def submit_callback(self, job: FakeJob) -> None:
        self.submitted.append(job)

    def finish_callback(self, job: FakeJob) -> None:
        self.finished.append(job)

    def error_callback(self, job: FakeJob) -> None:
        self.failed.append(job)


class Logger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    warning = error = debug = info


@pytest.fixture
def api(monkeypatch) -> FakeKbatch:
    import kbatch._core

    fake = FakeKbatch()

    def client(**kwargs: Any) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(fake.handle), **kwargs)

    monkeypatch.setattr(kbatch._core, "_client", client)
    monkeypatch.setenv("KBATCH_TOKEN", TOKEN)
    for name in ("KBATCH_URL", "JUPYTERHUB_API_TOKEN", "SNAKEMAKE_KBATCH_URL"):
        monkeypatch.delenv(name, raising=False)
    return fake


def make_executor(tmp_path: Path, image: str = "registry.test/job:1", **settings: Any) -> Executor:
    """The plugin's Executor on a stand-in for Snakemake's workflow object."""
    (tmp_path / "Snakefile").write_text("")
    settings.setdefault("url", URL)
    workflow = SimpleNamespace(
        dag=None,
        main_snakefile=str(tmp_path / "Snakefile"),
        executor_settings=ExecutorSettings(**settings),
        remote_execution_settings=SimpleNamespace(
            max_status_checks_per_second=100,
            jobname="snakejob.{rulename}.{jobid}.sh",
            jobscript=None,
            container_image=image,
            immediate_submit=False,
            seconds_between_status_checks=3600,
        ),
        storage_settings=SimpleNamespace(shared_fs_usage=[], default_storage_prefix=None),
        # The executor's own status thread sleeps; the tests drive check_active_jobs directly.
        executor_plugin=SimpleNamespace(
            common_settings=SimpleNamespace(init_seconds_before_status_checks=3600)
        ),
        persistence=SimpleNamespace(path=str(tmp_path / ".snakemake")),
        scheduler=Scheduler(),
        spawned_job_args_factory=SimpleNamespace(envvars=lambda: {"SNAKEMAKE_X": "1"}),
    )
    executor = Executor(workflow, Logger())
    # Snakemake's job command needs a whole workflow; its shape is not what is tested here.
    executor.format_job_exec = lambda job: f"python -m snakemake --rule {job.name}"
    return executor


def poll(executor: Executor) -> list[str]:
    """One status poll over every job the executor has submitted: names still active."""

    async def run() -> list[str]:
        active = list(executor.submitted.values())
        return [i.external_jobid async for i in executor.check_active_jobs(active)]

    return asyncio.run(run())


def job_env(body: dict[str, Any]) -> dict[str, str | None]:
    container = body["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def submit(executor: Executor, job: FakeJob) -> str:
    executor.run_job(job)
    return next(n for n, i in executor.submitted.items() if i.job is job)


def test_submit_sends_a_valid_job_spec_with_the_token_in_a_header(api, tmp_path):
    ex = make_executor(tmp_path, envvars=["MY_SETTING"])
    name = submit(ex, FakeJob("reduce_mean", 7, {"_cores": 2, "mem_mb": 1000, "runtime": 30}))
    body = api.jobs[name]
    assert api.requests[-1] == ("POST", "jobs/")
    assert api.auth == {f"token {TOKEN}"}  # the token travels only as a header
    assert name.startswith("smk-reduce-mean-") and len(name) <= 63
    spec = body["spec"]
    container = spec["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.test/job:1"  # Snakemake's --container-image
    assert container["command"] == ["/bin/sh", "-c", "python -m snakemake --rule reduce_mean"]
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "1000M"}
    assert spec["active_deadline_seconds"] == 30 * 60
    assert spec["ttl_seconds_after_finished"] == 3600
    labels = body["metadata"]["labels"]
    assert labels["snakemake.readthedocs.io/rule"] == "reduce-mean"  # a valid label value
    assert body["metadata"]["annotations"]["snakemake.readthedocs.io/jobid"] == "7"
    env = job_env(body)
    assert env["SNAKEMAKE_X"] == "1"
    assert TOKEN not in json.dumps(body)
    assert ex.workflow.scheduler.submitted == [ex.submitted[name].job]


def test_status_success_fetches_the_log_and_deletes_the_job(api, tmp_path):
    ex = make_executor(tmp_path)
    job = FakeJob("a", 1)
    name = submit(ex, job)
    assert poll(ex) == [name]  # active, no pod yet: still waiting
    api.run(name)
    assert poll(ex) == [name]
    api.finish(name, ok=True, log=f"done; token {TOKEN}\n")
    assert poll(ex) == []
    assert ex.workflow.scheduler.finished == [job]
    log = (tmp_path / ".snakemake" / "kbatch-logs" / f"{name}.log").read_text()
    assert log.startswith("done;") and TOKEN not in log  # fetched and redacted
    assert ("GET", f"jobs/logs/{name}/") in api.requests
    assert ("DELETE", f"jobs/{name}") in api.requests and name not in api.jobs


def test_status_failure_reports_reason_and_log_tail(api, tmp_path):
    ex = make_executor(tmp_path)
    job = FakeJob("b", 2)
    name = submit(ex, job)
    api.finish(name, ok=False, log="line 1\nTraceback: ValueError: bad input\n")
    assert poll(ex) == []
    assert ex.workflow.scheduler.failed == [job]
    (message,) = job.errors
    assert "BackoffLimitExceeded" in message and "ValueError: bad input" in message
    (log,) = job.error_logs  # Snakemake prints it with the error
    assert log.endswith(f"kbatch-logs/{name}.log") and "bad input" in Path(log).read_text()
    assert name not in api.jobs


def test_a_pod_that_cannot_start_fails_at_once(api, tmp_path):
    ex = make_executor(tmp_path)
    job = FakeJob("c", 3)
    name = submit(ex, job)
    api.stuck(name, "InvalidImageName")
    assert poll(ex) == []
    assert "InvalidImageName" in job.errors[0]
    assert ("GET", "pods/") in api.requests


def test_a_job_gone_from_the_listing_fails_after_two_polls(api, tmp_path):
    ex = make_executor(tmp_path)
    job = FakeJob("d", 4)
    name = submit(ex, job)
    del api.jobs[name]
    assert poll(ex) == [name]  # one odd listing is tolerated
    assert poll(ex) == []
    assert "gone from kbatch" in job.errors[0]


def test_cancel_deletes_every_job_of_the_run(api, tmp_path):
    ex = make_executor(tmp_path)
    names = [submit(ex, FakeJob("e", i)) for i in range(3)]
    api.run(names[0])
    ex.cancel_jobs(list(ex.submitted.values()))
    assert api.jobs == {}
    assert {p for m, p in api.requests if m == "DELETE"} == {f"jobs/{n}" for n in names}
    assert ex.submitted == {}


def test_a_transient_poll_error_keeps_jobs_active(api, tmp_path):
    ex = make_executor(tmp_path)
    name = submit(ex, FakeJob("f", 5))
    api.down = True
    assert poll(ex) == [name]
    api.down = False
    assert poll(ex) == [name]


def test_a_wrong_token_stops_the_run(api, tmp_path, monkeypatch):
    ex = make_executor(tmp_path)
    submit(ex, FakeJob("g", 6))
    ex.client.token = "wrong-token-xxxxxxxx"
    with pytest.raises(WorkflowError, match="401"):
        poll(ex)


def test_settings_come_from_env_vars_and_the_url_is_required(api, tmp_path, monkeypatch):
    with pytest.raises(WorkflowError, match="kbatch url"):
        make_executor(tmp_path, url=None)
    monkeypatch.setenv("KBATCH_URL", URL)
    assert make_executor(tmp_path, url=None).client.url == URL


def test_long_lived_secrets_are_refused_before_any_submission(api, tmp_path, monkeypatch):
    monkeypatch.setenv("WF_ACCOUNT_KEY", "a2V5" * 10)
    with pytest.raises(WorkflowError, match="WF_ACCOUNT_KEY"):
        make_executor(
            tmp_path, envvars=["WF_ACCOUNT_KEY"], storage_account_key_env="WF_ACCOUNT_KEY"
        )
    assert api.requests == []


def test_per_run_container_sas_replaces_the_key(api, tmp_path, monkeypatch):
    from urllib.parse import parse_qs

    monkeypatch.setenv("WF_ACCT", "acct")
    monkeypatch.setenv("WF_KEY", "a2V5" * 11)
    ex = make_executor(
        tmp_path,
        sas_env=["DATA_SAS=zarr-data"],
        storage_account_name_env="WF_ACCT",
        storage_account_key_env="WF_KEY",
    )
    name = submit(ex, FakeJob("h", 8))
    env = job_env(api.jobs[name])
    sas = parse_qs(env["DATA_SAS"])
    assert sas["sr"] == ["c"]  # one container
    assert "WF_KEY" not in env and ("a2V5" * 11) not in json.dumps(api.jobs[name])
    assert redact(env["DATA_SAS"]) == "***"  # never printed


def test_the_kbatch_profile_image_replaces_only_snakemakes_default(api, tmp_path):
    api.profiles = {"small": {"image": "registry.test/profile:2", "resources": {}}}
    default = "snakemake/snakemake:v9.0.0"
    assert make_executor(tmp_path, image=default, profile="small").image == (
        "registry.test/profile:2"
    )
    assert make_executor(tmp_path, profile="small").image == "registry.test/job:1"
    with pytest.raises(WorkflowError, match="no profile 'big'"):
        make_executor(tmp_path, profile="big")


def test_a_rule_without_runtime_still_gets_the_default_deadline(api, tmp_path):
    ex = make_executor(tmp_path)
    name = submit(ex, FakeJob("i", 9, {"_cores": 1}))
    assert api.jobs[name]["spec"]["active_deadline_seconds"] == 6 * 3600
    ex = make_executor(tmp_path, default_runtime=0.5)
    name = submit(ex, FakeJob("j", 10, {"_cores": 1}))
    assert api.jobs[name]["spec"]["active_deadline_seconds"] == 30


def test_kbatch_away_longer_than_the_window_stops_the_run_with_one_line(api, tmp_path):
    ex = make_executor(tmp_path, unreachable_timeout=60)
    name = submit(ex, FakeJob("k", 11))
    api.down = True
    assert poll(ex) == [name]  # first failure: retried
    ex.unreachable_since -= 58  # (time travel: the streak began 58 s ago)
    assert poll(ex) == [name]  # still inside the window
    api.down = False
    assert poll(ex) == [name]  # an answer resets the window
    assert ex.unreachable_since is None
    api.down = True
    assert poll(ex) == [name]
    ex.unreachable_since -= 61
    with pytest.raises(WorkflowError) as err:
        poll(ex)
    message = str(err.value)
    assert "\n" not in message
    assert URL in message and "unreachable for 61s" in message
    assert str(tmp_path / ".snakemake" / "kbatch-logs") in message
    # Cancelling afterwards does not wait (60 s) for an answer that cannot come.
    started = time.monotonic()
    ex.cancel_jobs(list(ex.submitted.values()))
    assert time.monotonic() - started < 10
    assert ex.submitted == {}


def test_bad_sas_permissions_fail_before_any_submission(api, tmp_path, monkeypatch):
    monkeypatch.setenv("WF_ACCT", "acct")
    monkeypatch.setenv("WF_KEY", "a2V5" * 11)
    with pytest.raises(WorkflowError, match="kbatch-sas-permissions"):
        make_executor(
            tmp_path,
            sas_env=["DATA_SAS=zarr-data"],
            sas_permissions="rwx",
            storage_account_name_env="WF_ACCT",
            storage_account_key_env="WF_KEY",
        )
    assert [r for r in api.requests if r[0] == "POST"] == []
