"""The `--runslow` switch of tests/conftest.py: slow tests are skipped unless it is given."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def _run(tmp_path: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    return proc.stdout + proc.stderr


def test_runslow_option(tmp_path):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\nmarkers =\n    slow: long\n")
    (tmp_path / "test_demo.py").write_text(
        "import pytest\n\n"
        "def test_fast():\n    pass\n\n"
        "@pytest.mark.slow\ndef test_slow():\n    pass\n"
    )
    default = _run(tmp_path)
    assert "1 passed, 1 skipped" in default
    assert "run with --runslow" in default
    assert "2 passed" in _run(tmp_path, "--runslow")
