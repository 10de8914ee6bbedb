"""Snakemake executor plugin: run each job as a kbatch Job (`snakemake --executor kbatch`).

Jobs share nothing with the submitting machine but the default storage provider (Azure):
Snakemake uploads its sources archive there and every job deploys it before running. The
executor builds the Job spec (name, resources, env), submits it through the kbatch client,
watches all jobs with one `list_jobs` call per poll (plus one `list_pods` only while some job
has not started), fetches each job's log when it ends into .snakemake/kbatch-logs/, and
deletes every Job it created: finished, failed or cancelled.
"""

import datetime as dt
import secrets
import subprocess
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional  # noqa: UP035

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

from snakemake_executor_plugin_kbatch import credentials, interrupts, spec, status
from snakemake_executor_plugin_kbatch.client import (
    KbatchClient,
    is_transient,
    redact,
    remember_secret,
)


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    """Settings: `--kbatch-<name>` on the command line, `kbatch-<name>` in a profile, and for
    those marked so, environment variables SNAKEMAKE_KBATCH_<NAME>."""

    url: Optional[str] = field(  # noqa: UP045 (Snakemake parses typing.Optional only)
        default=None,
        metadata={
            "help": "kbatch URL (default: $KBATCH_URL, then `kbatch configure`'s file).",
            "env_var": True,
        },
    )
    profile: Optional[str] = field(  # noqa: UP045 (Snakemake parses typing.Optional only)
        default=None,
        metadata={
            "help": "kbatch profile name (server-side defaults: image, resources).",
            "env_var": True,
        },
    )
    job_ttl: int = field(
        default=3600,
        metadata={"help": "ttlSecondsAfterFinished for jobs (kbatch-proxy may override it)."},
    )
    poll_interval: Optional[float] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "Seconds between status polls (default: --seconds-between-status-checks)."
        },
    )
    envvars: List[str] = field(  # noqa: UP006
        default_factory=list,
        metadata={
            "help": "Names of extra environment variables passed to jobs when set.",
            "nargs": "+",
        },
    )
    sas_env: List[str] = field(  # noqa: UP006
        default_factory=list,
        metadata={
            "help": "ENV=container (or ENV=account/container): mint a per-run container SAS "
            "and pass it to jobs as ENV.",
            "nargs": "+",
        },
    )
    storage_connection_string_env: str = field(
        default="AZURE_STORAGE_CONNECTION_STRING",
        metadata={
            "help": "Name of the environment variable holding a storage connection string with "
            "an account key, used here to mint per-run SAS (never passed to jobs).",
            "env_var": True,
        },
    )
    storage_account_name_env: str = field(
        default="AZURE_STORAGE_ACCOUNT",
        metadata={
            "help": "Name of the environment variable holding the storage account name "
            "(with --kbatch-storage-account-key-env, an alternative to a connection string).",
            "env_var": True,
        },
    )
    storage_account_key_env: str = field(
        default="AZURE_STORAGE_KEY",
        metadata={
            "help": "Name of the environment variable holding that account's key (used here "
            "to mint per-run SAS, never passed to jobs).",
            "env_var": True,
        },
    )
    storage_account_host_env: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "Name of an environment variable holding the blob host as a template, "
            "e.g. 127.0.0.1:10000/{account_name} (default: {account_name}.blob.core.windows.net).",
            "env_var": True,
        },
    )
    sas_permissions: str = field(
        default="rwdl",
        metadata={
            "help": "Permissions of the per-run container SAS (--kbatch-sas-env): letters of "
            "r(ead) w(rite) d(elete) l(ist) a(dd) c(reate).",
            "env_var": True,
        },
    )
    credential_hours: float = field(
        default=12.0,
        metadata={
            "help": "Lifetime of the SAS tokens minted for a run (hours from its start; a SAS "
            "cannot be revoked earlier).",
            "env_var": True,
        },
    )
    default_runtime: float = field(
        default=360.0,
        metadata={
            "help": "Minutes a job may run when its rule sets no `runtime` resource: every Job "
            "gets activeDeadlineSeconds, so none outlives a killed Snakemake (0: none).",
            "env_var": True,
        },
    )
    unreachable_timeout: int = field(
        default=300,
        metadata={
            "help": "Fail the run when kbatch has not answered a status poll for this many "
            "seconds (network errors, 429, 5xx are retried until then).",
            "env_var": True,
        },
    )
    stuck_timeout: int = field(
        default=300,
        metadata={"help": "Fail a job whose pod has not started after this many seconds."},
    )
    keep_jobs: bool = field(
        default=False,
        metadata={"help": "Keep finished Jobs in kbatch instead of deleting them."},
    )


common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=True,
    job_deploy_sources=True,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    # Env goes into the Job spec (kbatch-proxy moves it into a Secret), never the command line.
    pass_envvar_declarations_to_cmd=False,
    # The job image carries pinned plugins; auto-deploy would pip-install unpinned ones.
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=1,
)

LOG_TAIL_LINES = 40
# Snakemake's --container-image default is snakemake/snakemake:v<version>.
DEFAULT_IMAGE_REPO = "snakemake/snakemake:"


class Executor(RemoteExecutor):
    def __post_init__(self) -> None:
        settings: ExecutorSettings = self.workflow.executor_settings
        self.settings = settings
        try:
            url = credentials.resolve_url(settings.url)
            token = credentials.resolve_token()
            sas_targets = credentials.parse_sas_targets(settings.sas_env)
        except credentials.CredentialError as err:
            raise WorkflowError(str(err)) from err
        self.client = KbatchClient(url, token)
        self.commit = _git_commit(Path(self.workflow.main_snakefile).parent)
        self.run_id = secrets.token_hex(4)
        self.log_dir = Path(self.workflow.persistence.path) / "kbatch-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.profile = self._load_profile(settings.profile)
        self.image = self._image()
        self.storage_names = credentials.storage_env(settings)
        self.secret_envs = credentials.secret_env_names(settings)
        try:
            self.credentials = self._mint_credentials(sas_targets)
        except credentials.CredentialError as err:
            raise WorkflowError(str(err)) from err
        forbidden = spec.check_env(
            spec.job_env(self.envvars(), settings.envvars, _environ(), {}), self.secret_envs
        )
        if forbidden:
            raise WorkflowError(
                f"kbatch: refusing to pass {', '.join(forbidden)} to jobs (long-lived secrets); "
                "remove them from --envvars / --kbatch-envvars: jobs get per-run SAS tokens "
                "(kbatch-sas-env) and kbatch injects the hub token"
            )
        self.unreachable_since: float | None = None  # first failed status poll of a streak
        self.kbatch_gone = False  # set once kbatch stayed away past unreachable_timeout
        self.submitted: dict[str, SubmittedJobInfo] = {}  # Jobs created and not yet deleted
        self.poll_requests: list[int] = []  # API requests made by each status poll
        if settings.poll_interval:
            self.next_seconds_between_status_checks = float(settings.poll_interval)
        # Ctrl-C must cancel the run's Jobs even when it lands in Snakemake's log handler.
        interrupts.install()
        self.logger.info(f"kbatch: {url} image {self.image} (run {self.run_id})")

    # -- setup -------------------------------------------------------------------------------

    def _image(self) -> str:
        """Snakemake's --container-image; a kbatch profile's image replaces only its default."""
        image = self.workflow.remote_execution_settings.container_image
        if self.profile.get("image") and (not image or image.startswith(DEFAULT_IMAGE_REPO)):
            return str(self.profile["image"])
        return image

    def _load_profile(self, name: str | None) -> dict[str, Any]:
        if not name:
            return {}
        try:
            profiles = self.client.profiles()
        except Exception as err:
            raise WorkflowError(f"kbatch profiles: cannot list them ({redact(str(err))})") from err
        if name not in profiles:
            raise WorkflowError(
                f"kbatch-profile: no profile {name!r} on the server; known: {sorted(profiles)}"
            )
        return dict(profiles[name] or {})

    def _mint_credentials(self, sas_targets: dict[str, tuple[str, str | None]]) -> dict[str, str]:
        """Per-run SAS tokens for the jobs, in place of any account key."""
        environ = _environ()
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(hours=self.settings.credential_hours)
        out: dict[str, str] = {}
        # snakemake-storage-plugin-azure reads AZURITE_CONNECTION_STRING: give jobs one that
        # carries a blob-only account SAS instead of the account key (the plugin needs
        # container-level calls that a container SAS does not allow).
        prefix = getattr(self.workflow.storage_settings, "default_storage_prefix", None) or ""
        local = environ.get(credentials.STORAGE_PLUGIN_ENV)
        if local and prefix.startswith("az://"):
            cred = credentials.parse_connection_string(local)
            if cred is None:
                out[credentials.STORAGE_PLUGIN_ENV] = local  # already key-less (SAS)
            else:
                sas = credentials.storage_account_sas(cred, expiry)
                out[credentials.STORAGE_PLUGIN_ENV] = credentials.sas_connection_string(cred, sas)
        for env_name, (container, account) in sas_targets.items():
            cred = credentials.account_credential(account, environ, self.storage_names)
            if cred is None:
                self.logger.warning(
                    f"kbatch-sas-env {env_name}: no account key for "
                    f"{account or 'the target account'} here; jobs rely on their own identity"
                )
                continue
            out[env_name] = credentials.container_sas(
                cred, container, expiry, self.settings.sas_permissions
            )
        for value in out.values():
            remember_secret(value)
            remember_secret(value.rpartition("SharedAccessSignature=")[2])
        if out:
            self.logger.info(
                f"kbatch: per-run SAS for jobs ({', '.join(sorted(out))}), "
                f"valid until {expiry:%Y-%m-%d %H:%M} UTC (--kbatch-credential-hours)"
            )
            if self.settings.default_runtime > self.settings.credential_hours * 60:
                self.logger.warning(
                    "kbatch: --kbatch-default-runtime exceeds --kbatch-credential-hours: "
                    "jobs may outlive their storage SAS"
                )
        return out

    # -- submission --------------------------------------------------------------------------

    def job_spec(self, job: JobExecutorInterface) -> tuple[str, dict[str, Any]]:
        """(name prefix, kbatch Job as a dict) for a Snakemake job."""
        import kbatch

        try:
            wildcards = job.format_wildcards("{wildcards}")
        except Exception:
            wildcards = ",".join(sorted(map(str, job.output)))
        base = spec.job_base_name(job.name, wildcards, self.commit, job.attempt)
        env = spec.job_env(self.envvars(), self.settings.envvars, _environ(), self.credentials)
        command = self.format_job_exec(job)
        kjob = kbatch.Job(
            name=base,
            image=self.image,
            command=["/bin/sh", "-c", command],
            env=env,
            description=f"snakemake rule {job.name}",
        )
        v1 = kbatch.make_job(kjob, profile=self.profile)
        resources, deadline = spec.k8s_resources(
            dict(job.resources),
            base=self.profile.get("resources"),
            default_runtime=self.settings.default_runtime,
        )
        v1.spec.template.spec.containers[0].resources = resources or None
        v1.spec.active_deadline_seconds = deadline
        v1.spec.ttl_seconds_after_finished = self.settings.job_ttl
        labels = {
            "app.kubernetes.io/created-by": "snakemake",
            "snakemake.readthedocs.io/rule": spec.sanitize(job.name)[:63],
            "snakemake.readthedocs.io/run": self.run_id,
        }
        annotations = {
            "snakemake.readthedocs.io/jobid": str(job.jobid),
            "snakemake.readthedocs.io/attempt": str(job.attempt),
            "snakemake.readthedocs.io/commit": self.commit,
        }
        for meta in (v1.metadata, v1.spec.template.metadata):
            meta.labels = {**(meta.labels or {}), **labels}
            meta.annotations = {**(meta.annotations or {}), **annotations}
        return base, v1.to_dict()

    def run_job(self, job: JobExecutorInterface) -> None:
        base, body = self.job_spec(job)
        try:
            created = self.client.submit(body)
        except Exception as err:
            raise WorkflowError(f"kbatch: submitting {base} failed: {redact(str(err))}") from err
        name = created["metadata"]["name"]
        info = SubmittedJobInfo(
            job=job,
            external_jobid=name,
            aux={"submitted": time.monotonic(), "missing": 0},
        )
        self.submitted[name] = info
        self.logger.info(f"kbatch job {name} submitted (logs: {self.log_dir / name}.log)")
        self.report_job_submission(info)

    # -- status ------------------------------------------------------------------------------

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        if not active_jobs:
            return
        before = self.client.requests
        try:
            async with self.status_rate_limiter:
                listing = self.client.list_jobs()
        except Exception as err:
            if not is_transient(err):
                raise WorkflowError(f"kbatch: listing jobs failed: {redact(str(err))}") from err
            self._unreachable(err)  # raises once kbatch has been away too long
            for info in active_jobs:
                yield info
            return
        self.unreachable_since = None
        jobs = {item["metadata"]["name"]: item for item in listing.get("items", [])}
        pods: dict[str, Any] = {}
        if any(status.needs_pods(jobs.get(i.external_jobid)) for i in active_jobs):
            try:
                pods = status.pods_by_job(self.client.list_pods().get("items", []))
            except Exception as err:
                if not is_transient(err):
                    raise
                self.logger.warning(f"kbatch: pod listing failed ({redact(str(err))})")
        self.poll_requests.append(self.client.requests - before)

        now = time.monotonic()
        for info in active_jobs:
            name = info.external_jobid
            state = status.job_state(jobs.get(name), pods.get(name))
            if state.kind == "missing":
                info.aux["missing"] += 1
                if info.aux["missing"] < 2:  # tolerate one odd listing
                    yield info
                    continue
                self._end(info, ok=False, reason=state.reason, fetch_log=False)
            elif state.kind == "succeeded":
                self._end(info, ok=True)
            elif state.kind == "failed":
                self._end(info, ok=False, reason=state.reason)
            elif state.kind == "pending":
                waited = now - info.aux["submitted"]
                fatal = state.reason.split(" ")[0] in status.FATAL_WAITING
                if fatal or waited > self.settings.stuck_timeout:
                    why = "cannot start" if fatal else f"did not start within {waited:.0f}s"
                    self._end(info, ok=False, reason=f"pod {why}: {state.reason}", fetch_log=False)
                else:
                    yield info
            else:
                info.aux["missing"] = 0
                yield info

    def _unreachable(self, err: BaseException) -> None:
        """Log a failed poll; past --kbatch-unreachable-timeout, stop the run with one line."""
        now = time.monotonic()
        since = self.unreachable_since
        if since is None:
            since = self.unreachable_since = now
        away = now - since
        limit = self.settings.unreachable_timeout
        if away >= limit:
            self.kbatch_gone = True
            raise WorkflowError(
                f"kbatch at {self.client.url} unreachable for {away:.0f}s (limit "
                f"--kbatch-unreachable-timeout {limit}s: {redact(str(err))}); stopping the run. "
                f"Its Jobs end by their deadline; logs fetched so far: {self.log_dir}/"
            )
        self.logger.warning(
            f"kbatch: status poll failed ({redact(str(err))}); kbatch away for {away:.0f}s, "
            f"giving up after {limit}s"
        )

    def _end(
        self, info: SubmittedJobInfo, ok: bool, reason: str = "", fetch_log: bool = True
    ) -> None:
        """Save the job's log, delete the Job, tell Snakemake."""
        name = info.external_jobid
        log_path = self.log_dir / f"{name}.log"
        text = ""
        if fetch_log:
            try:
                text = redact(self.client.job_logs(name))
            except Exception as err:
                text = f"(kbatch: could not fetch the log of {name}: {redact(str(err))})\n"
        else:
            text = f"(kbatch: job {name} produced no log: {reason})\n"
        log_path.write_text(text)
        self._delete(name)
        if ok:
            self.report_job_success(info)
            return
        tail = "\n".join(text.rstrip("\n").splitlines()[-LOG_TAIL_LINES:])
        msg = (
            f"kbatch job {name} failed: {reason}\n"
            f"--- pod log (last {LOG_TAIL_LINES} lines) ---\n{tail}\n---\n"
        )
        self.report_job_error(info, msg=msg, aux_logs=[str(log_path)])

    def _delete(self, name: str) -> None:
        if self.settings.keep_jobs or self.kbatch_gone:
            self.submitted.pop(name, None)  # kept, or unreachable: its deadline ends it
            return
        try:
            self.client.delete(name)
        except Exception as err:
            if getattr(getattr(err, "response", None), "status_code", None) != 404:
                self.logger.warning(f"kbatch: deleting {name} failed ({redact(str(err))})")
                return  # stays in self.submitted: shutdown() tries again
        self.submitted.pop(name, None)

    # -- cancel / shutdown -------------------------------------------------------------------

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        """Delete every Job this run created (foreground: pods go first) and wait for them."""
        names = set(self.submitted) | {i.external_jobid for i in active_jobs}
        for name in sorted(names):
            self._delete(name)
        self._wait_gone(names)

    def _wait_gone(self, names: set[str], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while names and time.monotonic() < deadline:
            if self.kbatch_gone:
                break  # no answer is coming: the Jobs end by their activeDeadlineSeconds
            try:
                listed = {i["metadata"]["name"] for i in self.client.list_jobs().get("items", [])}
            except Exception:
                listed = names
            names = names & listed
            if names:
                time.sleep(0.5)
        if names:
            self.logger.warning(f"kbatch: jobs still terminating: {', '.join(sorted(names))}")

    def shutdown(self) -> None:
        super().shutdown()
        leftovers = set(self.submitted)
        if leftovers and not self.settings.keep_jobs:
            for name in sorted(leftovers):
                self._delete(name)
            self._wait_gone(leftovers, timeout=30.0)


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def _git_commit(path: Path) -> str:
    """Short commit of the workflow checkout ('nogit' outside git): part of every job name."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=7", "HEAD"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "nogit"
    return out.stdout.strip() if out.returncode == 0 else "nogit"
