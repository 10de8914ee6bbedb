"""Job naming, resource mapping, env and credential helpers of the kbatch executor."""

from __future__ import annotations

import re

import pytest
from snakemake_executor_plugin_kbatch import credentials, spec

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


@pytest.mark.parametrize(
    "rule",
    ["stage", "Reduce_Spatial_Mean", "plot.png!!", "__", "x" * 200, "ümlaut-rule"],
)
def test_job_names_are_valid_kubernetes_names(rule):
    name = spec.job_base_name(rule, "dataset=daymet-hi", "abc1234def", 1)
    assert NAME.match(name), name
    # kbatch appends "-xxxxx", pods another "-xxxxx": still a DNS label (<= 63).
    assert len(name) + 12 <= 63
    assert name.startswith("smk-")


def test_job_names_are_readable_and_distinct():
    a = spec.job_base_name("reduce", "dataset=a,reduction=mean", "0123456789", 1)
    b = spec.job_base_name("reduce", "dataset=b,reduction=mean", "0123456789", 1)
    retry = spec.job_base_name("reduce", "dataset=a,reduction=mean", "0123456789", 2)
    assert "reduce" in a and "0123456" in a and a.endswith("-a1")
    assert len({a, b, retry}) == 3
    assert spec.job_base_name("reduce", "dataset=a,reduction=mean", "0123456789", 1) == a
    assert spec.job_base_name("r", "", "", 1).split("-")[-2] == "nogit"


def test_resources_map_to_requests_limits_and_deadline():
    res, deadline = spec.k8s_resources(
        {"_cores": 2, "mem_mb": 4000, "mem_mib": 3815, "disk_mb": 1000, "runtime": 30}
    )
    assert res["requests"] == {"cpu": "2", "memory": "3815Mi", "ephemeral-storage": "1000M"}
    assert res["limits"] == {"memory": "3815Mi"}  # no CPU limit on purpose
    assert deadline == 1800


def test_resources_fallbacks_and_profile_base():
    res, deadline = spec.k8s_resources(
        {"_cores": 0.5, "mem_mb": 1500, "runtime": "x", "tmpdir": "/tmp"},
        base={"requests": {"cpu": "1", "nvidia.com/gpu": "1"}, "limits": {"memory": "8Gi"}},
    )
    assert res["requests"] == {"cpu": "500m", "nvidia.com/gpu": "1", "memory": "1500M"}
    assert res["limits"] == {"memory": "1500M"}
    assert deadline is None
    assert spec.k8s_resources({}) == ({}, None)


def test_env_check_flags_long_lived_secrets():
    env = spec.job_env(
        {"SNAKEMAKE_STORAGE_AZURE_ACCOUNT_NAME": "acct"},
        ["PCFLOW_STAC_API", "UNSET_NAME", "PCFLOW_TARGET_ACCOUNT_KEY"],
        {"PCFLOW_STAC_API": "http://x", "PCFLOW_TARGET_ACCOUNT_KEY": "k" * 40},
        {"PCFLOW_TARGET_SAS_TOKEN": "sv=1&sig=abc"},
    )
    assert "UNSET_NAME" not in env
    assert env["PCFLOW_TARGET_SAS_TOKEN"] == "sv=1&sig=abc"
    # A workflow's own key variable is forbidden once the settings name it as the key's home.
    assert spec.check_env(env) == []
    assert spec.check_env(env, {"PCFLOW_TARGET_ACCOUNT_KEY"}) == ["PCFLOW_TARGET_ACCOUNT_KEY"]
    assert spec.check_env({"AZURE_STORAGE_KEY": "k" * 40}) == ["AZURE_STORAGE_KEY"]
    assert spec.check_env({"X": "DefaultEndpointsProtocol=https;AccountKey=abc"}) == ["X"]
    assert spec.check_env({"X": "BlobEndpoint=https://h/a;SharedAccessSignature=sv=1"}) == []


def test_token_never_from_arguments_and_in_documented_order(tmp_path):
    cfg = tmp_path / "kbatch" / "config.json"
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    with pytest.raises(credentials.CredentialError, match="KBATCH_TOKEN"):
        credentials.resolve_token(env)
    cfg.parent.mkdir()
    cfg.write_text('{"kbatch_url": "http://k/", "token": "from-file"}')
    assert credentials.resolve_token(env) == "from-file"
    assert credentials.resolve_token({**env, "JUPYTERHUB_API_TOKEN": "hub"}) == "hub"
    assert (
        credentials.resolve_token({**env, "JUPYTERHUB_API_TOKEN": "hub", "KBATCH_TOKEN": "kb"})
        == "kb"
    )
    assert credentials.resolve_url(None, env) == "http://k/"
    assert credentials.resolve_url("http://x", env) == "http://x/"


def test_connection_string_parsing_and_sas_targets():
    cred = credentials.parse_connection_string(
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;"
        "BlobEndpoint=https://127.0.0.1:10000/acct;"
    )
    assert cred == credentials.AccountCredential("acct", "a2V5", "https://127.0.0.1:10000/acct")
    assert credentials.parse_connection_string("BlobEndpoint=x;SharedAccessSignature=y") is None
    real = credentials.parse_connection_string("AccountName=a;AccountKey=k")
    assert real.blob_endpoint == "https://a.blob.core.windows.net"
    assert credentials.parse_sas_targets(["A=pcflow", "B=acct/zarr-data"]) == {
        "A": ("pcflow", None),
        "B": ("zarr-data", "acct"),
    }
    with pytest.raises(credentials.CredentialError, match="kbatch-sas-env"):
        credentials.parse_sas_targets(["NOEQUALS"])
    with pytest.raises(credentials.CredentialError, match="container"):
        credentials.parse_sas_targets(["A=Bad_Container"])


def test_container_sas_is_scoped_and_expires():
    import datetime as dt
    from urllib.parse import parse_qs

    cred = credentials.AccountCredential("acct", "a2V5a2V5a2V5", "https://h/acct")
    expiry = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    sas = parse_qs(credentials.container_sas(cred, "pcflow", expiry))
    assert sas["sr"] == ["c"] and sas["se"][0].startswith("2030-01-01")
    assert sas["spr"] == ["https"]
    acct = parse_qs(credentials.storage_account_sas(cred, expiry))
    assert acct["ss"] == ["b"] and acct["srt"] == ["co"]  # blob only, no service-level calls


def test_account_credential_reads_the_variables_the_settings_name():
    names = credentials.StorageEnv(
        connection_string="WF_CONN",
        account_name="WF_ACCT",
        account_key="WF_KEY",
        account_host="WF_HOST",
    )
    env = {"WF_ACCT": "acct", "WF_KEY": "a2V5", "WF_HOST": "127.0.0.1:10000/{account_name}"}
    cred = credentials.account_credential(None, env, names)
    assert cred == credentials.AccountCredential("acct", "a2V5", "https://127.0.0.1:10000/acct")
    assert credentials.account_credential("other", env, names) is None
    # Without the settings, only the Azure SDK's customary names are read.
    assert credentials.account_credential(None, env) is None
    std = {"AZURE_STORAGE_ACCOUNT": "a", "AZURE_STORAGE_KEY": "a2V5"}
    assert credentials.account_credential(None, std).blob_endpoint == (
        "https://a.blob.core.windows.net"
    )
    conn = {"WF_CONN": "AccountName=c;AccountKey=a2V5"}
    assert credentials.account_credential("c", conn, names).account_name == "c"


def test_every_job_gets_a_deadline_even_without_a_runtime():
    # Without one, a Job whose Snakemake was SIGKILLed runs forever (issue 12, item 8).
    _, deadline = spec.k8s_resources({"_cores": 1}, default_runtime=360)
    assert deadline == 6 * 3600
    _, deadline = spec.k8s_resources({"runtime": 30}, default_runtime=360)
    assert deadline == 30 * 60  # the rule's own runtime wins
    _, deadline = spec.k8s_resources({"runtime": 0}, default_runtime=0.25)
    assert deadline == 15
    assert spec.k8s_resources({}, default_runtime=0) == ({}, None)  # explicitly none


def test_the_container_sas_carries_only_the_asked_permissions():
    import datetime as dt
    from urllib.parse import parse_qs

    cred = credentials.AccountCredential("acct", "a2V5a2V5a2V5", "https://h/acct")
    expiry = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    sas = parse_qs(credentials.container_sas(cred, "pcflow", expiry))
    assert sas["sp"] == ["rwdl"] and sas["sr"] == ["c"]  # no add/create by default
    assert parse_qs(credentials.container_sas(cred, "pcflow", expiry, "rl"))["sp"] == ["rl"]
    with pytest.raises(credentials.CredentialError, match="kbatch-sas-permissions"):
        credentials.container_sas(cred, "pcflow", expiry, "rwx")
    acct = parse_qs(credentials.storage_account_sas(cred, expiry))
    assert acct["sp"] == ["rwdl"]  # no container creation, no add
