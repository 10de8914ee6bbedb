"""The kbatch client library behind one small object that counts its HTTP requests."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import httpx

_SECRET_PATTERNS = (
    re.compile(r"(sig=)[^&\s\"';]+"),
    re.compile(r"(AccountKey=)[^;\s\"']+"),
    re.compile(r"(SharedAccessSignature=)[^;\s\"']+"),
    re.compile(r"((?:token|bearer)\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE),
)
_known_secrets: set[str] = set()


def remember_secret(value: str) -> None:
    """Values redact() must hide wherever they show up (tokens, SAS strings)."""
    if value and len(value) >= 8:
        _known_secrets.add(value)


def redact(text: str) -> str:
    for value in sorted(_known_secrets, key=len, reverse=True):
        text = text.replace(value, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


def is_transient(err: BaseException) -> bool:
    """Network trouble, timeouts, 429 and 5xx: worth retrying, not a job failure."""
    if isinstance(err, httpx.TransportError):
        return True
    if isinstance(err, httpx.HTTPStatusError):
        code = err.response.status_code
        return code == 429 or code >= 500
    return False


class KbatchClient:
    """kbatch calls with explicit url and token; `requests` counts HTTP requests made."""

    def __init__(self, url: str, token: str, submit_retries: int = 3) -> None:
        self.url = url
        self.token = token
        self.submit_retries = submit_retries
        self.requests = 0
        self._lock = threading.Lock()
        remember_secret(token)

    def _count(self, n: int = 1) -> None:
        with self._lock:
            self.requests += n

    def profiles(self) -> dict[str, Any]:
        import kbatch._core

        self._count()
        return kbatch._core.show_profiles(self.url)

    def submit(self, job: dict[str, Any]) -> dict[str, Any]:
        """POST a ready Job spec (what kbatch.submit_job sends after make_job), with retries."""
        import kbatch._core
        from kubernetes.client.models import V1Job

        delay = 1.0
        for attempt in range(1, self.submit_retries + 1):
            self._count()
            try:
                return kbatch._core._request_action(
                    self.url, self.token, "POST", V1Job, json_data={"job": job}
                )
            except Exception as err:
                if attempt == self.submit_retries or not is_transient(err):
                    raise
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def list_jobs(self) -> dict[str, Any]:
        import kbatch

        self._count()
        return kbatch.list_jobs(kbatch_url=self.url, token=self.token)

    def list_pods(self) -> dict[str, Any]:
        import kbatch

        self._count()
        return kbatch.list_pods(kbatch_url=self.url, token=self.token)

    def job_logs(self, name: str) -> str:
        import kbatch

        self._count()
        return kbatch.job_logs(name, kbatch_url=self.url, token=self.token)

    def delete(self, name: str) -> dict[str, Any]:
        import kbatch

        self._count()
        return kbatch.delete_job(name, kbatch_url=self.url, token=self.token)
