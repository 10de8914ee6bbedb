"""Pure status parsing: kbatch job and pod listings -> what Snakemake should do with a job."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# A pending pod with one of these will never start by itself: fail at once.
FATAL_WAITING = frozenset(
    {"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError"}
)


@dataclass(frozen=True)
class JobState:
    kind: str  # "pending" | "running" | "succeeded" | "failed" | "missing"
    reason: str = ""


def _get(d: Mapping[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(key)
    return d


def pods_by_job(pods: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Newest pod per job name (from the job-name labels Kubernetes puts on Job pods)."""
    out: dict[str, Mapping[str, Any]] = {}
    for pod in pods:
        labels = _get(pod, "metadata", "labels") or {}
        job = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
        if not job:
            continue
        created = str(_get(pod, "metadata", "creation_timestamp") or "")
        if job not in out or created >= str(_get(out[job], "metadata", "creation_timestamp") or ""):
            out[job] = pod
    return out


def waiting_reason(pod: Mapping[str, Any] | None) -> str:
    """Why a pod has not started: waiting reason, else scheduling condition, else phase."""
    if pod is None:
        return "no pod yet"
    for status in _get(pod, "status", "container_statuses") or []:
        waiting = _get(status, "state", "waiting")
        if waiting and waiting.get("reason"):
            message = waiting.get("message")
            return f"{waiting['reason']} ({message})" if message else waiting["reason"]
    for cond in _get(pod, "status", "conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"{cond.get('reason') or 'Unschedulable'} ({cond.get('message') or ''})"
    return str(_get(pod, "status", "phase") or "Pending")


def exit_code(pod: Mapping[str, Any] | None) -> int | None:
    for status in _get(pod, "status", "container_statuses") or []:
        terminated = _get(status, "state", "terminated")
        if terminated and terminated.get("exit_code") is not None:
            return int(terminated["exit_code"])
    return None


def needs_pods(job: Mapping[str, Any] | None) -> bool:
    """Only jobs that are active but not ready need a pod lookup (pending vs running)."""
    if job is None:
        return False
    status = job.get("status") or {}
    if status.get("succeeded") or status.get("failed") or _failed_condition(job):
        return False
    return not status.get("ready")


def _failed_condition(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in _get(job, "status", "conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return cond
    return None


def job_state(job: Mapping[str, Any] | None, pod: Mapping[str, Any] | None) -> JobState:
    """Classify one job from its listing entry and (optionally) its newest pod."""
    if job is None:
        return JobState("missing", "the job is gone from kbatch (deleted, or removed by its TTL)")
    status = job.get("status") or {}
    failed = _failed_condition(job)
    if status.get("failed") or failed:
        reason = ": ".join(
            str(x) for x in ((failed or {}).get("reason"), (failed or {}).get("message")) if x
        )
        code = exit_code(pod)
        if code is not None:
            reason = f"{reason}; container exit code {code}" if reason else f"exit code {code}"
        return JobState("failed", reason or "job failed")
    if status.get("succeeded"):
        return JobState("succeeded")
    if status.get("ready") or _get(pod, "status", "phase") == "Running":
        return JobState("running")
    if _get(pod, "status", "phase") in ("Succeeded", "Failed"):
        return JobState("running", "pod finished, job status not yet updated")
    return JobState("pending", waiting_reason(pod))
