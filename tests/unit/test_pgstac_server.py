"""pcflow.sandbox.pgstac without PostgreSQL: input handling and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcflow.sandbox import pgstac as pgstac_server
from pcflow.sandbox.pgstac import PgstacError, PgstacServer, _read_stac, missing_requirements


def test_read_stac_splits_collections_and_items(tmp_path: Path) -> None:
    coll = {"type": "Collection", "id": "c"}
    items = [{"type": "Feature", "id": f"i{n}"} for n in range(3)]
    (tmp_path / "c.json").write_text(json.dumps(coll))
    (tmp_path / "fc.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    (tmp_path / "i.ndjson").write_text("".join(json.dumps(i) + "\n" for i in items[:2]))
    collections, found = _read_stac(
        [tmp_path / "c.json", tmp_path / "fc.json", tmp_path / "i.ndjson"]
    )
    assert [c["id"] for c in collections] == ["c"]
    assert [i["id"] for i in found] == ["i0", "i1", "i2", "i0", "i1"]


def test_read_stac_rejects_non_stac(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"type": "Catalog", "id": "x"}))
    with pytest.raises(PgstacError, match=r"x\.json: type 'Catalog' is not a STAC Collection"):
        _read_stac([tmp_path / "x.json"])


def test_missing_requirements_name_the_fix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PCFLOW_PG_BINDIR", str(tmp_path / "nope"))
    problems = missing_requirements(venv=tmp_path / "no-venv")
    assert any("install-system-deps.sh" in p for p in problems)
    assert any("setup-pgstac-venv.sh" in p and "pypgstac" in p for p in problems)


def test_start_without_requirements_fails_in_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(pgstac_server, "missing_requirements", lambda venv: ["X missing — do Y"])
    with pytest.raises(PgstacError, match="^X missing — do Y$"):
        PgstacServer(11190, venv=tmp_path).start()


def test_load_before_start_is_refused() -> None:
    with pytest.raises(PgstacError, match="call start"):
        PgstacServer(11190).load_items([{"type": "Feature", "id": "i"}])


def test_password_not_in_dsn_or_env_export() -> None:
    server = PgstacServer(11190)
    assert server._password not in server.dsn
    assert server._password not in json.dumps(server.env())
