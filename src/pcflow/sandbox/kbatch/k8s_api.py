"""The CoreV1Api / BatchV1Api surface kbatch-proxy uses, answered by a LocalJobRunner."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kubernetes.client import (
    ApiException,
    V1ConfigMap,
    V1Job,
    V1JobList,
    V1Namespace,
    V1Pod,
    V1PodList,
    V1Secret,
    V1Status,
)

if TYPE_CHECKING:
    from pcflow.sandbox.kbatch.jobrunner import LocalJobRunner


class CoreApi:
    """The CoreV1Api methods kbatch-proxy uses."""

    def __init__(self, cluster: LocalJobRunner) -> None:
        self.cluster = cluster
        self.api_client = None

    def create_namespace(self, body: V1Namespace) -> V1Namespace:
        return self.cluster.create_namespace(body)

    def create_namespaced_secret(self, namespace: str, body: V1Secret) -> V1Secret:
        return self.cluster.create_secret(namespace, body)

    def patch_namespaced_secret(self, name: str, namespace: str, body: V1Secret) -> V1Secret:
        return self.cluster.patch_secret(name, namespace, body)

    def delete_namespaced_secret(self, name: str, namespace: str) -> None:
        self.cluster.delete_secret(name, namespace)

    def create_namespaced_config_map(self, namespace: str, body: V1ConfigMap) -> V1ConfigMap:
        return self.cluster.create_config_map(namespace, body)

    def patch_namespaced_config_map(
        self, name: str, namespace: str, body: V1ConfigMap
    ) -> V1ConfigMap:
        return self.cluster.patch_config_map(name, namespace, body)

    def list_namespaced_pod(self, namespace: str, label_selector: str | None = None) -> V1PodList:
        return self.cluster.list_pods(namespace, label_selector)

    def read_namespaced_pod(self, name: str, namespace: str) -> V1Pod:
        return self.cluster.read_pod(name, namespace)

    def read_namespaced_pod_log(self, name: str, namespace: str, **_: Any) -> str:
        return self.cluster.read_pod_log(name, namespace)


class BatchApi:
    """The BatchV1Api methods kbatch-proxy uses (CronJobs are not emulated)."""

    def __init__(self, cluster: LocalJobRunner) -> None:
        self.cluster = cluster

    def create_namespaced_job(self, namespace: str, body: V1Job) -> V1Job:
        return self.cluster.create_job(namespace, body)

    def list_namespaced_job(self, namespace: str) -> V1JobList:
        return self.cluster.list_jobs(namespace)

    def read_namespaced_job(self, name: str, namespace: str) -> V1Job:
        return self.cluster.read_job(name, namespace)

    def delete_namespaced_job(
        self, name: str, namespace: str, propagation_policy: str | None = None
    ) -> V1Status:
        return self.cluster.delete_job(name, namespace, propagation_policy)

    def __getattr__(self, name: str) -> Any:
        if "cron_job" in name:

            def unsupported(*args: Any, **kwargs: Any) -> Any:
                exc = ApiException(status=501, reason="Not Implemented")
                exc.body = json.dumps({"message": "CronJobs are not emulated by local kbatch"})
                raise exc

            return unsupported
        raise AttributeError(name)
