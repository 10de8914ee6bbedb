"""`make dag` draws the demo plan without system graphviz, and docs/dag/ shows the current plan.

No services needed. A fake `dot` first on PATH records any call: the pictures must come from
the project's own renderer (Graphviz compiled to WebAssembly, scripts/dot2svg.mjs).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RULES = ("all", "discover", "stage", "reduce", "plot", "run_record")
SVG_NS = "{http://www.w3.org/2000/svg}"


def _make_dag(out: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    marker = tmp_path / "dot-was-called"
    (fake_bin / "dot").write_text(f"#!/bin/sh\ntouch {marker}\nexit 127\n")
    (fake_bin / "dot").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    # -o: use the installed envs as they are (this test installs nothing).
    cmd = [
        "make",
        "--no-print-directory",
        "-o",
        ".venv/.installed",
        "-o",
        "node_modules/.installed",
    ]
    proc = subprocess.run(
        [*cmd, "dag", f"DAG_DIR={out}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert not marker.exists(), "make dag called the system `dot`"
    return proc


@pytest.fixture(scope="module")
def dag_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("dag")
    out = tmp / "out"
    proc = _make_dag(out, tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _svg_texts(path: Path) -> set[str]:
    root = ET.parse(path).getroot()  # raises on anything that is not well-formed XML
    assert root.tag == f"{SVG_NS}svg"
    return {"".join(t.itertext()).strip() for t in root.iter(f"{SVG_NS}text")}


def test_svgs_are_svg_with_every_rule(dag_dir):
    rulegraph = _svg_texts(dag_dir / "rulegraph.svg")
    assert set(RULES) <= rulegraph
    dag = _svg_texts(dag_dir / "dag.svg")
    assert set(RULES) <= dag
    # The job DAG names each dataset's jobs (their wildcards), the rule graph does not.
    assert any("daymet-hi" in t for t in dag) and any("s2-hilo" in t for t in dag)


def test_mermaid_is_a_flowchart_of_the_rules(dag_dir):
    lines = (dag_dir / "dag.mmd").read_text().splitlines()
    assert "flowchart TB" in lines
    body = "\n".join(lines)
    labelled = set(re.findall(r"^\s*id\d+\[(\w+)", body, flags=re.M))
    assert labelled == set(RULES)
    assert re.search(r"^\s*id\d+ --> id\d+", body, flags=re.M)


@pytest.mark.parametrize("name", ["dag.svg", "rulegraph.svg", "dag.mmd"])
def test_committed_pictures_are_current(dag_dir, name):
    committed = REPO / "docs" / "dag" / name
    assert committed.read_text() == (dag_dir / name).read_text(), (
        f"docs/dag/{name} is stale: run `make dag` and commit docs/dag/"
    )


def test_failure_is_one_line_and_leaves_no_file(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            "bash",
            "scripts/dag.sh",
            str(out),
            str(Path(sys.executable).parent / "snakemake"),
            "--configfile",
            str(tmp_path / "missing.yaml"),
            "--cores",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("make dag: ")
    assert "logs/dag/dag.log" in proc.stderr
    assert list(out.iterdir()) == []
