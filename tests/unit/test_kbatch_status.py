"""Status parsing of kbatch job/pod listings (shapes as kbatch-proxy returns them)."""

from __future__ import annotations

from snakemake_executor_plugin_kbatch import status
from snakemake_executor_plugin_kbatch.client import is_transient, redact, remember_secret


def job(name="j-1", **st):
    return {"metadata": {"name": name}, "status": {"active": None, "ready": None, **st}}


def pod(job_name="j-1", phase="Pending", waiting=None, terminated=None, created="2026-01-01"):
    state = {"waiting": waiting, "running": None, "terminated": terminated}
    return {
        "metadata": {
            "name": f"{job_name}-abcde",
            "labels": {"batch.kubernetes.io/job-name": job_name},
            "creation_timestamp": created,
        },
        "status": {"phase": phase, "container_statuses": [{"state": state}]},
    }


def test_missing_succeeded_running():
    assert status.job_state(None, None).kind == "missing"
    assert status.job_state(job(succeeded=1), None).kind == "succeeded"
    assert status.job_state(job(active=1, ready=1), None).kind == "running"
    assert status.job_state(job(active=1, ready=0), pod(phase="Running")).kind == "running"


def test_failed_reports_condition_and_exit_code():
    failed = job(
        failed=1,
        conditions=[
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "late"}
        ],
    )
    state = status.job_state(failed, pod(phase="Failed", terminated={"exit_code": 143}))
    assert state.kind == "failed"
    assert "DeadlineExceeded: late" in state.reason and "143" in state.reason


def test_pending_reason_from_waiting_container_or_scheduling():
    stuck = pod(waiting={"reason": "ImagePullBackOff", "message": 'Back-off pulling "x"'})
    state = status.job_state(job(active=1, ready=0), stuck)
    assert state.kind == "pending" and state.reason.startswith("ImagePullBackOff")
    unsched = pod(waiting=None)
    unsched["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "cpu"}
    ]
    assert status.job_state(job(active=1), unsched).reason.startswith("Unschedulable")
    assert status.job_state(job(active=1), None).reason == "no pod yet"


def test_pod_lookup_only_when_needed():
    assert status.needs_pods(job(active=1, ready=0))
    assert status.needs_pods(job(active=1))  # ready unknown (old clusters)
    assert not status.needs_pods(job(active=1, ready=1))
    assert not status.needs_pods(job(succeeded=1))
    assert not status.needs_pods(None)


def test_pods_by_job_keeps_newest():
    old = pod(created="2026-01-01T00:00:00", phase="Failed")
    new = pod(created="2026-01-01T00:01:00", phase="Running")
    assert status.pods_by_job([new, old, {"metadata": {"labels": {}}}]) == {"j-1": new}


def test_transient_errors_and_redaction():
    import httpx

    req = httpx.Request("GET", "http://k/jobs/")
    assert is_transient(httpx.ConnectError("refused", request=req))
    for code, transient in ((503, True), (429, True), (404, False), (401, False)):
        err = httpx.HTTPStatusError("x", request=req, response=httpx.Response(code, request=req))
        assert is_transient(err) is transient
    assert not is_transient(ValueError("x"))
    remember_secret("super-secret-token-value")
    text = redact("a super-secret-token-value b sig=abc%2F&x AccountKey=zz; token abcdefghij")
    assert "super-secret" not in text and "abc%2F" not in text and "zz" not in text
    assert "abcdefghij" not in text
