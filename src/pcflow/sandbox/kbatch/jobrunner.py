"""A tiny in-process stand-in for the Kubernetes API that kbatch-proxy talks to.

kbatch-proxy calls `get_k8s_api()` for a (CoreV1Api, BatchV1Api) pair and uses a dozen methods
on them. `LocalJobRunner.apis()` returns objects with exactly those methods; Jobs become local
subprocesses (one "pod" each) instead of containers. What is emulated, and what is not, is in
docs/kbatch.md.

State lives in memory; job specs (with env values moved into Secrets by kbatch-proxy, so no
secret values) and pod logs are written under the state dir. Secrets are never written to disk.
"""

from __future__ import annotations

import base64
import fnmatch
import io
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from kubernetes.client import (
    ApiClient,
    ApiException,
    V1ConfigMap,
    V1Job,
    V1JobList,
    V1JobStatus,
    V1ListMeta,
    V1Namespace,
    V1ObjectMeta,
    V1Pod,
    V1PodList,
    V1Secret,
    V1Status,
)

from pcflow.sandbox.kbatch.k8s_api import BatchApi, CoreApi
from pcflow.sandbox.kbatch.records import (
    JobRecord,
    PodRecord,
    bad_request,
    name_suffix,
    not_found,
    now,
)
from pcflow.sandbox.kbatch.views import job_view, matches, pod_view

_SERIALIZER = ApiClient()


class LocalJobRunner:
    """Jobs, pods, Secrets and ConfigMaps of a single-node, image-less 'cluster'."""

    def __init__(
        self,
        state_dir: Path,
        python_bin_dir: Path,
        inherit_env: dict[str, str] | None = None,
        unpullable_images: tuple[str, ...] = ("*.invalid/*",),
        grace_seconds: float = 5.0,
        janitor_interval: float = 5.0,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.python_bin_dir = Path(python_bin_dir)
        self.inherit_env = dict(inherit_env or {})
        self.unpullable_images = unpullable_images
        self.grace_seconds = grace_seconds
        self.lock = threading.RLock()
        self.namespaces: set[str] = set()
        self.jobs: dict[tuple[str, str], JobRecord] = {}
        self.secrets: dict[tuple[str, str], V1Secret] = {}  # memory only, never on disk
        self.config_maps: dict[tuple[str, str], V1ConfigMap] = {}
        self._stop = threading.Event()
        self._janitor = threading.Thread(
            target=self._janitor_loop, args=(janitor_interval,), daemon=True
        )
        self._janitor.start()

    # -- the seam kbatch-proxy calls ---------------------------------------------------------

    def apis(self) -> tuple[CoreApi, BatchApi]:
        return CoreApi(self), BatchApi(self)

    # -- namespaces, secrets, config maps ----------------------------------------------------

    def create_namespace(self, body: V1Namespace) -> V1Namespace:
        with self.lock:
            name = body.metadata.name
            if name in self.namespaces:
                exc = ApiException(status=409, reason="AlreadyExists")
                exc.body = json.dumps({"message": f'namespaces "{name}" already exists'})
                raise exc
            self.namespaces.add(name)
            return body

    def _named(self, meta: V1ObjectMeta) -> str:
        if meta.name:
            return meta.name
        if not meta.generate_name:
            raise bad_request("metadata.name or metadata.generateName is required")
        return meta.generate_name + name_suffix()

    def _stamp(self, meta: V1ObjectMeta, namespace: str) -> None:
        meta.name = self._named(meta)
        meta.namespace = namespace
        meta.uid = str(uuid.uuid4())
        meta.creation_timestamp = now()
        meta.resource_version = str(time.monotonic_ns())

    def create_secret(self, namespace: str, body: V1Secret) -> V1Secret:
        with self.lock:
            self._stamp(body.metadata, namespace)
            self.secrets[(namespace, body.metadata.name)] = body
            return body

    def patch_secret(self, name: str, namespace: str, body: V1Secret) -> V1Secret:
        with self.lock:
            if (namespace, name) not in self.secrets:
                raise not_found("secrets", name)
            self.secrets[(namespace, name)] = body
            return body

    def delete_secret(self, name: str, namespace: str) -> None:
        with self.lock:
            self.secrets.pop((namespace, name), None)

    def create_config_map(self, namespace: str, body: V1ConfigMap) -> V1ConfigMap:
        with self.lock:
            self._stamp(body.metadata, namespace)
            self.config_maps[(namespace, body.metadata.name)] = body
            return body

    def patch_config_map(self, name: str, namespace: str, body: V1ConfigMap) -> V1ConfigMap:
        with self.lock:
            if (namespace, name) not in self.config_maps:
                raise not_found("configmaps", name)
            self.config_maps[(namespace, name)] = body
            return body

    # -- jobs --------------------------------------------------------------------------------

    def create_job(self, namespace: str, body: V1Job) -> V1Job:
        with self.lock:
            if namespace not in self.namespaces:
                raise not_found("namespaces", namespace)
            self._stamp(body.metadata, namespace)
            name = body.metadata.name
            if (namespace, name) in self.jobs:
                exc = ApiException(status=409, reason="AlreadyExists")
                exc.body = json.dumps({"message": f'jobs.batch "{name}" already exists'})
                raise exc
            labels = body.metadata.labels or {}
            body.metadata.labels = labels
            labels.setdefault("batch.kubernetes.io/job-name", name)
            labels.setdefault("job-name", name)
            body.status = V1JobStatus(active=1, ready=0, start_time=now())
            pod_name = f"{name}-{name_suffix()}"
            pod_dir = self.state_dir / "pods" / namespace / pod_name
            pod = PodRecord(
                name=pod_name,
                created=now(),
                workdir=pod_dir,
                log_path=self.state_dir / "logs" / namespace / f"{pod_name}.log",
            )
            record = JobRecord(job=body, namespace=namespace, pod=pod)
            self.jobs[(namespace, name)] = record
            self._write_spec(record)
        threading.Thread(target=self._run_pod, args=(record,), daemon=True).start()
        return body

    def list_jobs(self, namespace: str) -> V1JobList:
        with self.lock:
            items = [job_view(r) for (ns, _), r in self.jobs.items() if ns == namespace]
        return V1JobList(items=items, metadata=V1ListMeta(resource_version="1"))

    def read_job(self, name: str, namespace: str) -> V1Job:
        with self.lock:
            record = self.jobs.get((namespace, name))
            if record is None:
                raise not_found("jobs.batch", name)
            return job_view(record)

    def delete_job(self, name: str, namespace: str, propagation_policy: str | None) -> V1Status:
        """Foreground deletion: the Job stays listed (deletionTimestamp) until its pod is gone."""
        with self.lock:
            record = self.jobs.get((namespace, name))
            if record is None:
                raise not_found("jobs.batch", name)
            record.deleting = True
            record.job.metadata.deletion_timestamp = now()
            proc = record.pod.proc
        if proc is not None and proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            threading.Thread(target=self._reap, args=(record,), daemon=True).start()
        elif propagation_policy == "Orphan":
            self._forget(record)
        else:
            self._forget(record)
        return V1Status(status="Success", details={"name": name, "kind": "jobs"})

    # -- pods --------------------------------------------------------------------------------

    def list_pods(self, namespace: str, label_selector: str | None = None) -> V1PodList:
        wanted: dict[str, str] = {}
        for term in (label_selector or "").split(","):
            if "=" in term:
                key, value = term.split("=", 1)
                wanted[key.strip()] = value.strip()
        with self.lock:
            pods = [
                pod_view(r)
                for (ns, _), r in self.jobs.items()
                if ns == namespace and matches(r, wanted)
            ]
        return V1PodList(items=pods, metadata=V1ListMeta(resource_version="1"))

    def read_pod(self, name: str, namespace: str) -> V1Pod:
        with self.lock:
            for (ns, _), record in self.jobs.items():
                if ns == namespace and record.pod.name == name:
                    return pod_view(record)
        raise not_found("pods", name)

    def read_pod_log(self, name: str, namespace: str) -> str:
        with self.lock:
            record = next(
                (r for (ns, _), r in self.jobs.items() if ns == namespace and r.pod.name == name),
                None,
            )
        if record is None:
            raise not_found("pods", name)
        if record.pod.phase == "Pending":
            reason = record.pod.waiting_reason or "ContainerCreating"
            raise bad_request(f'container "job" in pod "{name}" is waiting to start: {reason}')
        try:
            return record.pod.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- running a pod -----------------------------------------------------------------------

    def _image_pullable(self, image: str | None) -> bool:
        return bool(image) and not any(
            fnmatch.fnmatchcase(image, pattern) for pattern in self.unpullable_images
        )

    def _run_pod(self, record: JobRecord) -> None:
        pod = record.pod
        spec = record.job.spec.template.spec
        container = spec.containers[0]
        if not self._image_pullable(container.image):
            # Like a kubelet that cannot pull: the pod stays Pending forever, the Job active.
            with self.lock:
                pod.waiting_reason = "ErrImagePull"
                pod.waiting_message = f'failed to pull image "{container.image}"'
            time.sleep(2.0)
            with self.lock:
                if pod.phase == "Pending":
                    pod.waiting_reason = "ImagePullBackOff"
                    pod.waiting_message = f'Back-off pulling image "{container.image}"'
            return
        try:
            env = self._container_env(record)
            workdir = self._prepare_workdir(record)
        except ApiException as exc:
            with self.lock:
                pod.waiting_reason = "CreateContainerConfigError"
                pod.waiting_message = json.loads(exc.body or "{}").get("message", str(exc))
            return
        argv = list(container.command or []) + list(container.args or [])
        if not argv:
            self._finish(record, 128, "ContainerCannotRun", ("BackoffLimitExceeded", "no command"))
            return
        pod.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            if record.deleting:
                self._forget(record)
                return
            try:
                with pod.log_path.open("wb") as log:
                    pod.proc = subprocess.Popen(
                        argv,
                        cwd=workdir,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # deletion kills the whole group
                    )
            except OSError as exc:
                pod.log_path.write_text(f"failed to start container command: {exc}\n")
                self._finish(record, 128, "StartError", None)
                return
            pod.phase = "Running"
            pod.waiting_reason = None
            pod.started = now()
        deadline = record.job.spec.active_deadline_seconds
        try:
            code = pod.proc.wait(timeout=deadline)
            failure = None
        except subprocess.TimeoutExpired:
            _signal_group(pod.proc, signal.SIGTERM)
            try:
                code = pod.proc.wait(timeout=self.grace_seconds)
            except subprocess.TimeoutExpired:
                _signal_group(pod.proc, signal.SIGKILL)
                code = pod.proc.wait()
            failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
        # The command may have left children in its group: a finished pod has no processes.
        _signal_group(pod.proc, signal.SIGKILL)
        reason = "Completed" if code == 0 else "Error"
        self._finish(record, code if code >= 0 else 128 - code, reason, failure)

    def _finish(
        self,
        record: JobRecord,
        exit_code: int,
        reason: str,
        failure: tuple[str, str] | None,
    ) -> None:
        with self.lock:
            pod = record.pod
            pod.exit_code = exit_code
            pod.terminated_reason = reason
            pod.finished = now()
            pod.phase = "Succeeded" if exit_code == 0 and failure is None else "Failed"
            record.failure = failure
            record.finished_at = time.monotonic()
        record.done.set()
        shutil.rmtree(pod.workdir, ignore_errors=True)  # emptyDir volumes go with the pod

    def _container_env(self, record: JobRecord) -> dict[str, str]:
        """Container env: image-like defaults, then the Job's env with Secret refs resolved."""
        container = record.job.spec.template.spec.containers[0]
        home = record.pod.workdir / "home"
        env = {
            "PATH": f"{self.python_bin_dir}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "HOSTNAME": record.pod.name,
            "KBATCH_LOCAL": "1",
            **self.inherit_env,
        }
        with self.lock:
            for var in container.env or []:
                if var.value is not None:
                    env[var.name] = var.value
                elif var.value_from is not None and var.value_from.secret_key_ref is not None:
                    ref = var.value_from.secret_key_ref
                    secret = self.secrets.get((record.namespace, ref.name))
                    if secret is None or ref.key not in (secret.data or {}):
                        if ref.optional:
                            continue
                        raise bad_request(f'secret "{ref.name}" key "{ref.key}" not found')
                    env[var.name] = base64.b64decode(secret.data[ref.key]).decode("utf8")
        return env

    def _prepare_workdir(self, record: JobRecord) -> Path:
        """Working dir for the container; kbatch's code ConfigMap (zip) is unpacked into /code."""
        container = record.job.spec.template.spec.containers[0]
        root = record.pod.workdir
        (root / "home").mkdir(parents=True, exist_ok=True)
        workdir = root / (container.working_dir or "/code").lstrip("/")
        workdir.mkdir(parents=True, exist_ok=True)
        for volume in record.job.spec.template.spec.volumes or []:
            if volume.config_map is None:
                continue
            with self.lock:
                cm = self.config_maps.get((record.namespace, volume.config_map.name))
            if cm is None:
                raise bad_request(f'configmap "{volume.config_map.name}" not found')
            data = (cm.binary_data or {}).get("code")
            if data:
                with zipfile.ZipFile(io.BytesIO(base64.b64decode(data))) as zf:
                    zf.extractall(root / "code")
        return workdir

    # -- deletion, TTL -----------------------------------------------------------------------

    def _reap(self, record: JobRecord) -> None:
        proc = record.pod.proc
        assert proc is not None
        try:
            proc.wait(timeout=self.grace_seconds)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
        record.done.wait(timeout=self.grace_seconds + 5)
        self._forget(record)

    def _forget(self, record: JobRecord) -> None:
        """Remove a Job with its pod, log, spec file and owned Secrets/ConfigMaps."""
        with self.lock:
            name = record.job.metadata.name
            self.jobs.pop((record.namespace, name), None)
            for store in (self.secrets, self.config_maps):
                for key, obj in list(store.items()):
                    owners = obj.metadata.owner_references or []
                    if key[0] == record.namespace and any(o.name == name for o in owners):
                        del store[key]
        record.pod.log_path.unlink(missing_ok=True)
        self._spec_path(record).unlink(missing_ok=True)
        shutil.rmtree(record.pod.workdir, ignore_errors=True)

    def _janitor_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            now = time.monotonic()
            with self.lock:
                expired = [
                    r
                    for r in self.jobs.values()
                    if r.finished_at is not None
                    and r.job.spec.ttl_seconds_after_finished is not None
                    and now - r.finished_at >= r.job.spec.ttl_seconds_after_finished
                ]
            for record in expired:
                self._forget(record)

    def shutdown(self) -> None:
        """Stop every running pod (process groups) and forget all jobs."""
        self._stop.set()
        with self.lock:
            records = list(self.jobs.values())
        for record in records:
            proc = record.pod.proc
            if proc is not None and proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        for record in records:
            proc = record.pod.proc
            if proc is not None:
                try:
                    proc.wait(timeout=self.grace_seconds)
                except subprocess.TimeoutExpired:
                    _signal_group(proc, signal.SIGKILL)
            self._forget(record)

    # -- files -------------------------------------------------------------------------------

    def _spec_path(self, record: JobRecord) -> Path:
        return self.state_dir / "jobs" / record.namespace / f"{record.job.metadata.name}.json"

    def _write_spec(self, record: JobRecord) -> None:
        """The Job as submitted (kbatch-proxy has already moved env values into a Secret)."""
        path = self._spec_path(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        data: Any = _SERIALIZER.sanitize_for_serialization(record.job)
        path.write_text(json.dumps(data, indent=1, default=str))


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
