"""Each stage's entry modules import on their own, first, in a fresh interpreter: an import
cycle (device.py and numerics.py once needed each other) shows only in some import orders."""

from __future__ import annotations

import subprocess
import sys

import pytest

FIRST_IMPORTS = ("memprop.boards.host", "memprop.model.device", "memprop.model.config", "memprop.rtl.link",
                 "memprop.sim.engine", "memprop.cli")


@pytest.mark.parametrize("module", FIRST_IMPORTS)
def test_module_imports_first(module):
    run = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
