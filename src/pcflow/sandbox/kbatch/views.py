"""Kubernetes objects (V1Job, V1Pod) as the API shows them, rendered from the runner's records."""

from __future__ import annotations

from kubernetes.client import (
    V1ContainerState,
    V1ContainerStateRunning,
    V1ContainerStateTerminated,
    V1ContainerStateWaiting,
    V1ContainerStatus,
    V1Job,
    V1JobCondition,
    V1JobStatus,
    V1ObjectMeta,
    V1Pod,
    V1PodStatus,
)

from pcflow.sandbox.kbatch.records import JobRecord


def matches(record: JobRecord, wanted: dict[str, str]) -> bool:
    labels = pod_labels(record)
    return all(labels.get(k) == v for k, v in wanted.items())


def pod_labels(record: JobRecord) -> dict[str, str]:
    template_labels = (record.job.spec.template.metadata.labels or {}) if record.job.spec else {}
    name = record.job.metadata.name
    return {
        **template_labels,
        "batch.kubernetes.io/job-name": name,
        "job-name": name,
        "batch.kubernetes.io/controller-uid": record.job.metadata.uid,
        "controller-uid": record.job.metadata.uid,
    }


def job_view(record: JobRecord) -> V1Job:
    pod = record.pod
    status = V1JobStatus(start_time=record.job.status.start_time)
    if pod.phase in ("Pending", "Running"):
        status.active = 1
        status.ready = 1 if pod.phase == "Running" else 0
        if record.deleting:
            status.terminating = 1
    elif pod.phase == "Succeeded":
        status.succeeded = 1
        status.ready = 0
        status.completion_time = pod.finished
        status.conditions = [
            V1JobCondition(
                type="SuccessCriteriaMet", status="True", last_transition_time=pod.finished
            ),
            V1JobCondition(type="Complete", status="True", last_transition_time=pod.finished),
        ]
    else:
        status.failed = 1
        status.ready = 0
        reason, message = record.failure or (
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
        status.conditions = [
            V1JobCondition(
                type="FailureTarget",
                status="True",
                reason=reason,
                message=message,
                last_transition_time=pod.finished,
            ),
            V1JobCondition(
                type="Failed",
                status="True",
                reason=reason,
                message=message,
                last_transition_time=pod.finished,
            ),
        ]
    return V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=record.job.metadata,
        spec=record.job.spec,
        status=status,
    )


def pod_view(record: JobRecord) -> V1Pod:
    pod = record.pod
    spec = record.job.spec.template.spec
    image = spec.containers[0].image if spec and spec.containers else None
    if pod.phase == "Pending":
        state = V1ContainerState(
            waiting=V1ContainerStateWaiting(reason=pod.waiting_reason, message=pod.waiting_message)
        )
    elif pod.phase == "Running":
        state = V1ContainerState(running=V1ContainerStateRunning(started_at=pod.started))
    else:
        state = V1ContainerState(
            terminated=V1ContainerStateTerminated(
                exit_code=pod.exit_code if pod.exit_code is not None else 137,
                reason=pod.terminated_reason,
                started_at=pod.started,
                finished_at=pod.finished,
            )
        )
    container_status = V1ContainerStatus(
        name="job",
        image=image or "",
        image_id="",
        ready=pod.phase == "Running",
        restart_count=0,
        started=pod.phase == "Running",
        state=state,
    )
    meta = V1ObjectMeta(
        name=pod.name,
        namespace=record.namespace,
        labels=pod_labels(record),
        creation_timestamp=pod.created,
        deletion_timestamp=record.job.metadata.deletion_timestamp,
    )
    return V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=meta,
        spec=spec,
        status=V1PodStatus(
            phase=pod.phase, start_time=pod.created, container_statuses=[container_status]
        ),
    )
