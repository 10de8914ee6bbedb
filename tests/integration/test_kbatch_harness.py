"""Snakemake's own executor test harness (`snakemake.common.tests.TestWorkflowsBase`) on kbatch.

The harness runs its stock workflows (`simple`: four rules, a report output, log files, nested
output dirs, threads and mem resources; `groups`: three-sample group jobs) in-process through the
Snakemake API with our executor, against the local kbatch (real kbatch-proxy) and with Azurite
as the default storage (snakemake-storage-plugin-azure), with no shared file system: every job
deploys the sources archive and reads/writes through storage, as on a hub.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from snakemake.common.tests import TestWorkflowsBase
from snakemake_interface_common.plugin_registry.plugin import TaggedSettings

from tests.integration.kbatch_helpers import TOKEN, jobs

pytestmark = pytest.mark.integration

CONTAINER = "snakemake"


def kbatch_logs(workdir: Path) -> list[Path]:
    return sorted((workdir / ".snakemake" / "kbatch-logs").glob("*.log"))


class TestKbatchWorkflows(TestWorkflowsBase):
    __test__ = True

    @pytest.fixture(autouse=True)
    def _services(self, kbatch, monkeypatch, tmp_path):
        self.kbatch_url, _ = kbatch
        self.prefix = f"harness-{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv("KBATCH_TOKEN", TOKEN)
        monkeypatch.chdir(tmp_path)  # the API changes into the workdir; restore it afterwards
        yield
        # The harness's cleanup_test ran already; what a user relies on: no Job left behind.
        assert jobs(self.kbatch_url) == []

    def get_executor(self) -> str:
        return "kbatch"

    def get_executor_settings(self):
        from snakemake_executor_plugin_kbatch import ExecutorSettings

        return ExecutorSettings(
            url=self.kbatch_url,
            poll_interval=1,
            envvars=["PCFLOW_AZURE_ACCOUNT_HOST"],
            sas_env=["PCFLOW_TARGET_SAS_TOKEN=pcflow"],
            storage_account_name_env="PCFLOW_TARGET_ACCOUNT_NAME",
            storage_account_key_env="PCFLOW_TARGET_ACCOUNT_KEY",
            storage_account_host_env="PCFLOW_AZURE_ACCOUNT_HOST",
        )

    def get_remote_execution_settings(self):
        from snakemake.settings import types as settings

        # Snakemake's standard image setting is what the executor puts in the Job spec.
        return settings.RemoteExecutionSettings(
            seconds_between_status_checks=0,
            envvars=self.get_envvars(),
            container_image="pcflow/kbatch-job:test",
        )

    def get_assume_shared_fs(self) -> bool:
        return False  # kbatch jobs see neither the submitting machine's disk nor each other's

    def get_default_storage_provider(self) -> str:
        return "azure"

    def get_default_storage_prefix(self) -> str:
        return f"az://{CONTAINER}/{self.prefix}"

    def get_default_storage_provider_settings(self):
        from snakemake_storage_plugin_azure import StorageProviderSettings

        tagged = TaggedSettings()
        tagged.register_settings(
            StorageProviderSettings(account_name=os.environ["PCFLOW_TARGET_ACCOUNT_NAME"])
        )
        return {"azure": tagged}

    def container(self):
        from azure.storage.blob import BlobServiceClient

        bsc = BlobServiceClient.from_connection_string(os.environ["AZURITE_CONNECTION_STRING"])
        return bsc.get_container_client(CONTAINER)

    def cleanup_test(self) -> None:
        # Runs after each harness case (also on failure): note what it stored, then delete it.
        container = self.container()
        names = [b.name for b in container.list_blobs(name_starts_with=f"{self.prefix}/")]
        self.outputs = {name.removeprefix(f"{self.prefix}/") for name in names}
        for name in names:
            container.delete_blob(name)

    def test_simple_workflow(self, tmp_path):
        super().test_simple_workflow(tmp_path)
        # The harness only checks that the run succeeded; the outputs must also be in storage.
        for name in ("test1.out", "test2.out", "test3.out", "res/somedir1.out"):
            assert name in self.outputs, sorted(self.outputs)
        assert "res/somedir2/subdir.out" in self.outputs
        # Every job ran as a kbatch Job (its pod log fetched): a, b, c and d twice.
        assert len(kbatch_logs(tmp_path / "simple")) == 5

    def test_group_workflow(self, tmp_path):
        super().test_group_workflow(tmp_path)
        assert {f"test2.{i}.out" for i in (1, 2, 3)} <= self.outputs, sorted(self.outputs)
        assert "test3.out" in self.outputs
        # One kbatch Job per group instance (a+b for each sample) and one for c.
        assert len(kbatch_logs(tmp_path / "groups")) == 4
