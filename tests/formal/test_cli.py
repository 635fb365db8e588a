"""`memprop formal` on the command line: one line per property, clean errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from memprop.cli import main


def run(*args):
    return CliRunner().invoke(main, ["formal", *map(str, args)])


@pytest.mark.usefixtures("formal_tools")
def test_one_line_per_property(tmp_path):
    result = run("--only", "uart_tx", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("uart.tx_frame ") and "proven by k-induction" in line for line in lines)
    assert any("cover reached at step" in line for line in lines)
    (summary,) = [line for line in lines if "SymbiYosys jobs" in line]
    assert "0 failed" in summary and "covers 1/1 reached" in summary


def test_unknown_proof_and_float_config_are_clean_errors(tmp_path):
    result = run("--only", "nothing", "--out", tmp_path)
    assert result.exit_code != 0 and "matches no proof" in result.output and "Traceback" not in result.output
    cfg = tmp_path / "float.json"
    cfg.write_text(json.dumps({"numerics": "float"}))
    result = run("--config", cfg, "--out", tmp_path)
    assert result.exit_code != 0 and "Error:" in result.output and "fixed" in result.output
