"""`pcflow sandbox env` from a directory with no sandbox state refuses instead of inventing one."""

from __future__ import annotations

from pcflow import cli


def test_env_without_sandbox_state_fails_with_one_line_and_creates_nothing(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PCFLOW_SANDBOX_DIR", raising=False)
    assert cli.main(["sandbox", "env"]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # nothing for `eval` to pick up
    assert err.count("\n") == 1 and "no sandbox was started" in err
    assert str(tmp_path / ".sandbox") in err and "PCFLOW_SANDBOX_DIR" in err
    assert not (tmp_path / ".sandbox").exists()


def test_env_of_a_stopped_sandbox_still_prints_its_exports_with_a_note(
    tmp_path, monkeypatch, capsys
):
    # A sandbox that was set up and stopped: its env is still wanted (offline dry runs).
    state = tmp_path / "sb"
    state.mkdir()
    (state / "sandbox.json").write_text('{"base_port": 12345, "services": ["azurite"]}\n')
    assert cli.main(["sandbox", "--state-dir", str(state), "env"]) == 0
    out, err = capsys.readouterr()
    assert "export PCFLOW_SANDBOX_PORT_BASE=12345" in out
    assert "not running" in err
