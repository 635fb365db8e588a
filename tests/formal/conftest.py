"""Formal tests need the SymbiYosys flow from PyPI (`pip install -e '.[formal]'`)."""

from __future__ import annotations

import pytest

from memprop.formal import tools_missing


@pytest.fixture(scope="session")
def formal_tools():
    missing = tools_missing()
    if missing:
        pytest.skip(f"formal tools missing: {', '.join(missing)} (pip install -e '.[formal]')")
