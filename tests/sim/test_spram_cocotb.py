"""The SPRAM model that Amaranth's simulator runs equals yosys' SB_SPRAM256KA (the model the
Verilator RTL runs and the gate-level flow compile), cycle by cycle under cocotb."""

from __future__ import annotations

import pytest

from memprop.sim.netlist import cell_model
from memprop.sim.runner import run_cocotb, write_verilog
from memprop.sim.simulators import unavailable_reason
from memprop.sim.spram import SPRAMPair


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_spram_model_equals_the_yosys_cell(simulator, tmp_path):
    reason = unavailable_reason(simulator)
    if reason:
        pytest.skip(reason)
    src = write_verilog(SPRAMPair(depth=64), tmp_path / "spram_pair.v", "spram_pair")
    model = cell_model("ice40", "SB_SPRAM256KA", tmp_path)
    result = run_cocotb([src, model], "spram_pair", "memprop.sim.tests.test_spram_tb", simulator,
                        build_root=tmp_path)
    result.assert_passed()
