"""Per-rule conda envs (envs/<rule>.yaml) and the container image agree with the lock.

Conda channels are unreachable here, so the envs are not built: these tests prove the files
are what scripts/rule_envs.py makes from envs/requirements.lock (no drift) and that rules and
the kbatch profile name one image (tests/integration/test_rule_env_imports.py: each env holds
what its rule imports).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("rule_envs", REPO / "scripts" / "rule_envs.py")
rule_envs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rule_envs)


def test_env_files_are_generated_from_the_lock():
    expected = rule_envs.rule_envs((REPO / "envs" / "requirements.lock").read_text())
    for name, text in expected.items():
        assert (REPO / "envs" / name).read_text() == text, (
            f"envs/{name} drifted from envs/requirements.lock: run scripts/rule_envs.py"
        )


def test_every_script_rule_has_its_env_and_the_image():
    image = yaml.safe_load((REPO / "kbatch" / "config.yaml").read_text())["container-image"]
    common = (REPO / "rules" / "common.smk").read_text()
    assert f'CONTAINER = "docker://{image}"' in common
    for rule in rule_envs.RULE_NEEDS:
        text = (REPO / "rules" / f"{rule}.smk").read_text()
        assert f'"../envs/{rule}.yaml"' in text
        assert re.search(r"container:\s+CONTAINER", text)
