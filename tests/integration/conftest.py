"""Everything under tests/integration is marked ``integration`` (needs the vcsim harness)."""

from __future__ import annotations

from pathlib import Path

import pytest

# The volumeops fixtures, shared by the test_volumeops* modules (defining them here instead of importing
# them into each module keeps them from shadowing the test functions' parameters of the same name).
from test_volumeops import inventory, made, ops, places  # noqa: F401 - fixtures

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    # This hook sees every collected item, not only ours: mark by location.
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)
