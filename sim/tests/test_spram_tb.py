"""cocotb testbench: the Amaranth SPRAM model beside yosys' SB_SPRAM256KA, same inputs.

The DUT is `memprop.sim.spram.SPRAMPair` (both cells fed by one set of ports): random reads,
nibble-masked writes and deselected cycles; the outputs must agree after every read. After a
write the cell's output is undefined (yosys: x), so those cycles are not compared.
"""

from __future__ import annotations

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

CYCLES = int(os.environ.get("MEMPROP_SPRAM_CYCLES", 4000))
DEPTH = int(os.environ.get("MEMPROP_SPRAM_DEPTH", 64))


@cocotb.test()
async def models_agree(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    rnd = random.Random(int(os.environ.get("MEMPROP_SPRAM_SEED", 1)))
    dut.rst.value = 1
    for name in ("address", "data_in", "mask_wren", "wren"):
        getattr(dut, name).value = 0
    dut.chip_select.value = 1
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    # fill every word first: an unwritten SB_SPRAM256KA word is x in yosys' model
    for addr in range(DEPTH):
        dut.address.value, dut.data_in.value, dut.mask_wren.value, dut.wren.value = addr, rnd.getrandbits(16), 15, 1
        await RisingEdge(dut.clk)
    compared = 0
    last_read = False
    for _ in range(CYCLES):
        kind = rnd.random()
        dut.address.value = rnd.randrange(DEPTH)
        dut.data_in.value = rnd.getrandbits(16)
        dut.mask_wren.value = rnd.getrandbits(4)
        dut.wren.value = int(kind < 0.4)
        dut.chip_select.value = int(kind < 0.9)
        read = kind >= 0.4 and kind < 0.9
        await RisingEdge(dut.clk)
        # outputs settle after the edge; sample them (and drive the next inputs) half a cycle
        # later: cocotb 2.x refuses writes in the ReadOnly phase
        await FallingEdge(dut.clk)
        if read:
            model, cell = dut.model_out.value, dut.cell_out.value
            assert cell.is_resolvable, f"cell output {cell} after a read"
            assert int(model) == int(cell), f"read of {int(dut.address.value)}: model {int(model):#06x}, cell {int(cell):#06x}"
            compared += 1
        elif not dut.chip_select.value and last_read:
            assert int(dut.model_out.value) == int(dut.cell_out.value), "deselected: outputs hold"
        last_read = read or (last_read and not dut.chip_select.value)
    dut._log.info(f"{compared} reads compared")
    assert compared > CYCLES // 4
