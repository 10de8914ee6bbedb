"""What the local job runner remembers per Job and its pod, and the API errors it raises."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes.client import ApiException, V1Job

# Kubernetes' generateName alphabet (no vowels, no look-alikes).
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def name_suffix() -> str:
    return "".join(secrets.choice(_NAME_CHARS) for _ in range(5))


def not_found(kind: str, name: str) -> ApiException:
    exc = ApiException(status=404, reason="Not Found")
    exc.body = json.dumps({"message": f'{kind} "{name}" not found', "code": 404})
    return exc


def bad_request(message: str) -> ApiException:
    exc = ApiException(status=400, reason="Bad Request")
    exc.body = json.dumps({"message": message, "code": 400})
    return exc


@dataclass
class PodRecord:
    """One pod of a Job: a local process group, or a pod stuck before start."""

    name: str
    created: dt.datetime
    workdir: Path
    log_path: Path
    phase: str = "Pending"
    waiting_reason: str | None = "ContainerCreating"
    waiting_message: str | None = None
    started: dt.datetime | None = None
    finished: dt.datetime | None = None
    exit_code: int | None = None
    terminated_reason: str | None = None
    proc: subprocess.Popen | None = None


@dataclass
class JobRecord:
    job: V1Job
    namespace: str
    pod: PodRecord
    finished_at: float | None = None  # monotonic, for the TTL janitor
    deleting: bool = False
    failure: tuple[str, str] | None = None  # (reason, message) of the Failed condition
    done: threading.Event = field(default_factory=threading.Event)
