"""Fixtures shared by the integration modules."""

from __future__ import annotations

import pytest

from tests.integration.kbatch_helpers import local_kbatch


@pytest.fixture(scope="session")
def kbatch(sandbox, tmp_path_factory):
    """Local kbatch for the session's kbatch tests; yields (url, state_dir)."""
    state = tmp_path_factory.mktemp("localkbatch")
    with local_kbatch(state) as url:
        yield url, state
