"""The sandbox against its real services: idempotent start, errors, and the MPC client path."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import pytest

from pcflow.sandbox import Sandbox, SandboxError, demo_data
from tests.conftest import SANDBOX_TEST_PORT as P

pytestmark = pytest.mark.integration

PCFLOW = Path(sys.executable).parent / "pcflow"


def run_fresh(code: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter with the session's (sandbox) environment."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


# -- lifecycle ----------------------------------------------------------------------------------


def test_status_shows_each_service_up_with_pid_and_port(sandbox):
    statuses = {s.name: s for s in sandbox.status()}
    assert set(statuses) >= {"azurite", "stac", "sas"}
    expected_ports = {"azurite": P, "stac": P + 10, "sas": P + 11}
    for name, port in expected_ports.items():
        st = statuses[name]
        assert st.running and st.port == port
        proc = psutil.Process(st.pid)
        listening = {c.laddr.port for c in proc.net_connections() if c.status == "LISTEN"}
        children = proc.children(recursive=True)
        for child in children:
            listening |= {c.laddr.port for c in child.net_connections() if c.status == "LISTEN"}
        assert port in listening, f"{name} (pid {st.pid}) does not listen on {port}"
    cli = subprocess.run(
        [str(PCFLOW), "sandbox", "--state-dir", str(sandbox.state_dir), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    for name, port in expected_ports.items():
        line = next(ln for ln in cli.stdout.splitlines() if ln.startswith(name))
        assert " up " in line and f"pid {statuses[name].pid}" in line and f"port {port}" in line


def test_second_up_finds_services_running_and_does_not_reseed(sandbox):
    before = {s.name: s.pid for s in sandbox.status()}
    lines = sandbox.up()
    after = {s.name: s.pid for s in sandbox.status()}
    assert before == after
    for name in ("azurite", "stac", "sas"):
        assert f"{name}: already running (pid {before[name]}" in "\n".join(lines)
    assert sum("already present" in ln for ln in lines) == 2, lines
    # Exactly one Azurite server process for this state dir.
    azurites = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"]
        and any("azurite" in part for part in p.info["cmdline"][:2])
        and str(sandbox.state_dir) in " ".join(p.info["cmdline"])
    ]
    assert len(azurites) == 1, [p.info["cmdline"] for p in azurites]


def test_cli_up_is_idempotent_too(sandbox):
    cli = subprocess.run(
        [str(PCFLOW), "sandbox", "--state-dir", str(sandbox.state_dir), "up"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.count("already running") == 3
    assert "uploaded" not in cli.stdout


def test_port_taken_by_another_process_is_a_clear_error(tmp_path):
    base = 11300
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 11))  # the SAS endpoint's port
        blocker.listen()
        sb = Sandbox(tmp_path / "state", base)
        with pytest.raises(SandboxError) as err:
            sb.up(services=("sas",), seed=False)
        message = str(err.value)
        assert "port 11311" in message and "sas" in message and "\n" not in message
        cli = subprocess.run(
            [str(PCFLOW), "sandbox", "--state-dir", str(tmp_path / "state"), "--port", str(base)]
            + ["up", "--only", "sas", "--no-seed"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert cli.returncode == 1
    assert cli.stderr.strip().count("\n") == 0 and "port 11311" in cli.stderr
    assert not any(s.running for s in sb.status())
    sb.down()


def test_env_lines_are_shell_exports(sandbox):
    cli = subprocess.run(
        [str(PCFLOW), "sandbox", "--state-dir", str(sandbox.state_dir), "env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0
    # Evaluate the lines in a real shell and read the variables back.
    shell = subprocess.run(
        ["bash", "-c", cli.stdout + "\nenv -0"], capture_output=True, timeout=30, env={}
    )
    got = dict(kv.split("=", 1) for kv in shell.stdout.decode().split("\0") if "=" in kv)
    env = sandbox.env()
    for key in (
        "PCFLOW_STAC_API",
        "PC_SDK_SAS_URL",
        "PCFLOW_AZURE_ACCOUNT_HOST",
        "PCFLOW_TARGET_ACCOUNT_NAME",
        "PCFLOW_TARGET_ACCOUNT_KEY",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ):
        assert got[key] == env[key]
    assert got["PCFLOW_AZURE_ACCOUNT_HOST"] == f"127.0.0.1:{P}/{{account_name}}"
    assert got["PC_SDK_SAS_URL"] == f"http://127.0.0.1:{P + 11}/api/sas/v1/token"


def test_account_keys_stay_out_of_logs_and_world_readable_files(sandbox):
    keys = json.loads((sandbox.state_dir / "account-keys.json").read_text())
    assert (sandbox.state_dir / "account-keys.json").stat().st_mode & 0o077 == 0
    for log in (sandbox.state_dir / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        assert not any(k in text for k in keys.values()), log
        assert "sig=" not in text, log


# -- the MPC client path ------------------------------------------------------------------------


def test_sas_endpoint_mints_read_list_tokens_and_404s_unknown(sandbox):
    url = os.environ["PC_SDK_SAS_URL"]
    with urllib.request.urlopen(f"{url}/daymeteuwest/daymet-zarr", timeout=10) as resp:
        doc = json.load(resp)
    assert set(doc) == {"msft:expiry", "token"}
    assert "sp=rl" in doc["token"] and "sr=c" in doc["token"] and "sig=" in doc["token"]
    for bad in ("daymeteuwest/other", "nosuchaccount/daymet-zarr"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}/{bad}", timeout=10)
        assert err.value.code == 404


def test_source_zarr_is_private_without_a_token(sandbox):
    port = sandbox.base_port
    url = f"https://127.0.0.1:{port}/daymeteuwest/daymet-zarr/daily/hi.zarr/.zmetadata"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url, timeout=10)
    assert err.value.code in (403, 404)


def test_stac_collection_signs_like_mpc(sandbox):
    import planetary_computer
    import pystac_client

    client = pystac_client.Client.open(
        os.environ["PCFLOW_STAC_API"], modifier=planetary_computer.sign_inplace
    )
    col = client.get_collection("daymet-daily-hi")
    asset = col.assets["zarr-abfs"]
    assert asset.href == "abfs://daymet-zarr/daily/hi.zarr"
    assert set(asset.roles) == {"data", "zarr", "abfs"}
    assert asset.extra_fields["xarray:open_kwargs"] == {"consolidated": True}
    options = asset.extra_fields["xarray:storage_options"]
    assert options["account_name"] == "daymeteuwest"
    assert "sig=" in options["credential"] and "account_host" not in options
    assert col.extra_fields["msft:region"] == "westeurope"
    assert set(col.extra_fields["cube:variables"]) >= {"tmin", "tmax", "prcp", "lat", "lon"}
    # The catalogue itself stays unsigned (credentials only appear client-side).
    raw = pystac_client.Client.open(os.environ["PCFLOW_STAC_API"]).get_collection("daymet-daily-hi")
    assert "credential" not in raw.assets["zarr-abfs"].extra_fields["xarray:storage_options"]


def test_signed_zarr_opens_in_fresh_process_with_demo_values(sandbox, tmp_path):
    out = tmp_path / "values.npz"
    run_fresh(f"""
        import os, json, numpy as np, xarray as xr, zarr, pystac_client, planetary_computer
        client = pystac_client.Client.open(os.environ["PCFLOW_STAC_API"],
                                           modifier=planetary_computer.sign_inplace)
        asset = client.get_collection("daymet-daily-hi").assets["zarr-abfs"]
        so = dict(asset.extra_fields["xarray:storage_options"])
        so["account_host"] = os.environ["PCFLOW_AZURE_ACCOUNT_HOST"].format(
            account_name=so["account_name"])
        so["use_listings_cache"] = False
        ds = xr.open_zarr(asset.href, **asset.extra_fields["xarray:open_kwargs"],
                          storage_options=so)
        group = zarr.open_consolidated(asset.href, storage_options=so, mode="r")
        meta = {{"zarr_format": group.metadata.zarr_format,
                 "chunks": {{v: list(ds[v].encoding["chunks"]) for v in ("tmin", "tmax", "prcp")}},
                 "grid": dict(ds["lambert_conformal_conic"].attrs),
                 "units": {{v: ds[v].attrs["units"] for v in ("tmin", "tmax", "prcp")}}}}
        w = ds.isel(time=slice(360, 370))  # both year chunks, the whole real grid
        np.savez({str(out)!r}, tmin=w.tmin.values, tmax=w.tmax.values, prcp=w.prcp.values,
                 time=ds.time.values, lat=ds.lat.values, meta=json.dumps(meta))
    """)
    got = np.load(out)
    expected = demo_data.daymet_dataset()
    for var in ("tmin", "tmax", "prcp"):
        want = expected[var].isel(time=slice(360, 370)).values
        np.testing.assert_array_equal(got[var], want)
        assert np.isnan(want).any() and np.isfinite(want).any()  # ocean and land
    np.testing.assert_array_equal(got["lat"], expected["lat"].values)
    np.testing.assert_array_equal(got["time"], expected["time"].values)
    meta = json.loads(str(got["meta"]))
    assert meta["zarr_format"] == 2
    assert meta["chunks"] == {v: [365, 584, 284] for v in ("tmin", "tmax", "prcp")}
    assert meta["grid"]["standard_parallel"] == [25.0, 60.0]
    assert meta["units"]["prcp"] == "mm/day"


def test_s2_search_by_bbox_and_datetime(sandbox):
    import pystac_client

    client = pystac_client.Client.open(os.environ["PCFLOW_STAC_API"])
    assert client.conforms_to("ITEM_SEARCH")
    everything = list(client.search(collections=["sentinel-2-l2a"]).items())
    assert len(everything) == len(demo_data.S2_ACQUISITIONS)
    july = list(
        client.search(
            collections=["sentinel-2-l2a"],
            bbox=[-155.1, 19.7, -155.0, 19.8],
            datetime="2020-07-01/2020-07-31",
        ).items()
    )
    expected = sorted(s.id for s in demo_data.s2_scenes() if s.datetime.month == 7)
    assert sorted(i.id for i in july) == expected and len(expected) == 2
    far_away = client.search(collections=["sentinel-2-l2a"], bbox=[10, 45, 11, 46])
    assert list(far_away.items()) == []


def test_cog_reads_over_https_with_gdal(sandbox):
    import pystac_client

    client = pystac_client.Client.open(os.environ["PCFLOW_STAC_API"])
    scenes = {s.id: s for s in demo_data.s2_scenes()}
    item = next(client.search(collections=["sentinel-2-l2a"], max_items=1).items())
    # The API serves MPC's projection v1.0 `proj:epsg`; pystac migrates it to `proj:code`.
    assert item.properties.get("proj:code") == "EPSG:32605"
    for band in ("B04", "SCL"):
        href = item.assets[band].href
        assert href.startswith(f"https://127.0.0.1:{P}/sentinel2l2a01/sentinel2-l2/")
        # Fresh process: GDAL must find the sandbox CA through the exported environment alone.
        proc = run_fresh(f"""
            import rasterio, numpy as np
            with rasterio.open({href!r}) as src:
                arr = src.read(1)
                print(src.crs.to_epsg(), src.nodata, list(src.transform)[:6], src.overviews(1))
            np.save({str(sandbox.state_dir / (band + ".npy"))!r}, arr)
        """)
        epsg, nodata, *_ = proc.stdout.split(" ", 2)
        assert epsg == "32605" and float(nodata) == 0.0
        got = np.load(sandbox.state_dir / f"{band}.npy")
        np.testing.assert_array_equal(got, scenes[item.id].arrays[band])
        assert item.assets[band].extra_fields["proj:shape"] == list(got.shape)


def test_seed_marker_matches_uploaded_bytes(sandbox):
    from pcflow.sandbox import demo_data, seed

    client = seed.service_client(sandbox.ctx, "daymeteuwest")
    marker = json.loads(
        client.get_blob_client("daymet-zarr", seed.MARKER_BLOB).download_blob().readall()
    )
    assert marker["generator"] == seed.generator_hash()
    names = sorted(marker["files"])
    # One chunk per year over the whole grid, as on MPC: the last year's key must be there.
    last_year = f"daily/hi.zarr/tmax/{len(demo_data.DAYMET_YEARS) - 1}.0.0"
    assert "daily/hi.zarr/.zmetadata" in names and last_year in names
    for name in ("daily/hi.zarr/.zmetadata", "daily/hi.zarr/prcp/1.0.0"):
        data = client.get_blob_client("daymet-zarr", name).download_blob().readall()
        assert hashlib.sha256(data).hexdigest() == marker["files"][name]


def test_xarray_writes_and_reopens_a_store_in_the_target_account(sandbox, tmp_path):
    """adlfs with account_key against Azurite: write Zarr, re-open in a fresh process."""
    import xarray as xr

    env = sandbox.env()
    options = {
        "account_name": env["PCFLOW_TARGET_ACCOUNT_NAME"],
        "account_key": env["PCFLOW_TARGET_ACCOUNT_KEY"],
        "account_host": env["PCFLOW_AZURE_ACCOUNT_HOST"].format(
            account_name=env["PCFLOW_TARGET_ACCOUNT_NAME"]
        ),
        "use_listings_cache": False,
    }
    src = demo_data.daymet_dataset()[["tmax"]].isel(
        time=slice(0, 400), y=slice(493, 557), x=slice(205, 253)
    )
    url = "abfs://pcflow/tests/sandbox-roundtrip.zarr"
    src.chunk({"time": 200}).to_zarr(
        url, mode="w", storage_options=options, zarr_format=2, consolidated=True
    )
    out = tmp_path / "tmax.npy"
    run_fresh(f"""
        import os, numpy as np, xarray as xr
        env = os.environ
        so = {{"account_name": env["PCFLOW_TARGET_ACCOUNT_NAME"],
               "account_key": env["PCFLOW_TARGET_ACCOUNT_KEY"],
               "account_host": env["PCFLOW_AZURE_ACCOUNT_HOST"].format(
                   account_name=env["PCFLOW_TARGET_ACCOUNT_NAME"]),
               "use_listings_cache": False}}
        ds = xr.open_zarr({url!r}, consolidated=True, storage_options=so)
        np.save({str(out)!r}, ds.tmax.values)
    """)
    np.testing.assert_array_equal(np.load(out), src.tmax.values)
    assert xr.open_zarr(url, consolidated=True, storage_options=options).tmax.shape == (400, 64, 48)
