"""Threefry-2x32 Verilog under cocotb: RTL on Verilator and Icarus, iCE40 netlist on Verilator.

The cocotb testbench is memprop/sim/tests/test_threefry_tb.py; build directories go to
<rootdir>/sim_build (git-ignored; or $MEMPROP_SIM_BUILD) and are reused while the design and
options are unchanged, so only the first run pays for the Verilator C++ compiles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from memprop.rtl.threefry import Threefry2x32
from memprop.sim.netlist import run_cocotb_netlist, synthesize
from memprop.sim.runner import SimResult, default_build_root, run_cocotb, write_verilog
from memprop.sim.simulators import unavailable_reason

TB = "memprop.sim.tests.test_threefry_tb"
TOP = "threefry2x32"
CLOCK_NS = 10
# Gate-level Icarus simulates about 100 cycles/s: keep its workload small.
SHORT = {"MEMPROP_TF_VECTORS": "20", "MEMPROP_TF_SPEED_CYCLES": "360"}


def require(simulator: str) -> None:
    reason = unavailable_reason(simulator)
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def build_root(request) -> Path:
    """$MEMPROP_SIM_BUILD, or <rootdir>/sim_build (kept between runs: builds are reused)."""
    if "MEMPROP_SIM_BUILD" in os.environ:
        return default_build_root()
    return request.config.rootpath / "sim_build"


@pytest.fixture(scope="module")
def verilog(build_root):
    return write_verilog(Threefry2x32(), build_root / "src" / f"{TOP}.v", TOP)


def cycles_per_second(result: SimResult, testcase: str = "test_speed") -> float:
    case = next(t for t in result.testcases if t.name == testcase)
    return case.sim_time_ns / CLOCK_NS / case.wall_time_s


def test_generated_verilog_ports(verilog):
    text = verilog.read_text()
    for port in ("i__valid", "i__ready", "i__payload", "o__valid", "o__ready", "o__payload"):
        assert port in text
    assert "input [127:0] i__payload" in text and "output [63:0] o__payload" in text


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_rtl_matches_model(simulator, verilog, build_root):
    require(simulator)
    result = run_cocotb([verilog], TOP, TB, simulator, build_root=build_root)
    result.assert_passed()
    assert result.tests == 6
    assert result.build_dir.name.endswith(f"-{simulator}")


def test_gate_level_ice40_verilator(verilog, build_root):
    require("verilator")
    net = synthesize([verilog], TOP, "ice40", out_root=build_root)
    print(net.summary())
    assert net.cells.get("SB_LUT4", 0) > 0 and net.cells.get("SB_CARRY", 0) > 0
    assert "SB_MAC16" not in net.cells           # add-rotate-xor only: no multiplier
    run_cocotb_netlist(net, TB, "verilator", build_root=build_root).assert_passed()


@pytest.mark.slow
def test_gate_level_ice40_icarus(verilog, build_root):
    require("icarus")
    net = synthesize([verilog], TOP, "ice40", out_root=build_root)
    run_cocotb_netlist(net, TB, "icarus", build_root=build_root, extra_env=SHORT).assert_passed()


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_gate_level_ecp5(simulator, verilog, build_root):
    require(simulator)
    net = synthesize([verilog], TOP, "ecp5", out_root=build_root)
    assert net.cells.get("TRELLIS_FF", 0) > 0
    run_cocotb_netlist(net, TB, simulator, build_root=build_root,
                       extra_env=SHORT).assert_passed()


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_injected_model_error_fails_with_first_vector_and_waveform(simulator, verilog,
                                                                   build_root):
    """A 12-round reference against the 13-round DUT must fail: the harness cannot pass
    vacuously, and the failure names the first differing vector and the waveform file."""
    require(simulator)
    result = run_cocotb([verilog], TOP, TB, simulator, build_root=build_root, waves=True,
                        testcase="test_random_vectors_with_backpressure",
                        extra_env={"MEMPROP_TF_MODEL_ROUNDS": "12", "MEMPROP_TF_VECTORS": "20"})
    assert not result.passed
    assert (result.tests, result.failures) == (1, 1)
    message = result.testcases[0].message
    assert "first mismatch at vector 0 of 20" in message
    assert "model (12 rounds)" in message
    assert result.waves is not None and result.waves.stat().st_size > 0
    assert str(result.waves) in message
    with pytest.raises(AssertionError, match="first mismatch at vector 0"):
        result.assert_passed()


def test_empty_run_is_not_a_pass(tmp_path):
    empty = SimResult("verilator", TOP, tmp_path, tmp_path, tmp_path / "r.xml", tmp_path / "l",
                      None, [])
    assert not empty.passed


def test_speed_verilator_vs_icarus(verilog, build_root):
    """Simulated cycles per wall-clock second, measured in one run on both simulators: with the
    scoreboard (Python every cycle) and free-running (one Timer). Written to
    sim_build/threefry_speed.json; run with -s to see it."""
    require("verilator")
    require("icarus")
    speed = {}
    for simulator in ("verilator", "icarus"):
        result = run_cocotb([verilog], TOP, TB, simulator, build_root=build_root,
                            testcase=["test_speed", "test_speed_free_running"],
                            extra_env={"MEMPROP_TF_SPEED_CYCLES": "20000"})
        result.assert_passed()
        speed[simulator] = {"scoreboard": cycles_per_second(result, "test_speed"),
                            "free_running": cycles_per_second(result, "test_speed_free_running")}
    speed["ratio_verilator_over_icarus"] = {
        k: speed["verilator"][k] / speed["icarus"][k] for k in ("scoreboard", "free_running")}
    (build_root / "threefry_speed.json").write_text(json.dumps(speed, indent=1))
    print(f"cycles/s: {speed}")
    assert all(v > 0 for sim in ("verilator", "icarus") for v in speed[sim].values())
