"""cocotb testbench: a memory design's RTL and its gate-level netlist, same inputs, every cycle.

The DUT is `memprop.sim.bram.pair_verilog`'s top: inputs shared, outputs rtl_<name> and
net_<name>. Inputs change after the falling edge; the outputs are compared (x and z included)
after each rising edge. Half of the addresses come from a few low words, so reads meet writes
of the same word in the same and in the next cycle (collisions, write-through, read-before-write).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

PORTS = json.loads(os.environ.get("MEMPROP_BRAM_PORTS", '{"inputs": [], "outputs": []}'))
CYCLES = int(os.environ.get("MEMPROP_BRAM_CYCLES", 3000))
SEED = int(os.environ.get("MEMPROP_BRAM_SEED", 1))


def draw(rnd: random.Random, width: int, limit: int) -> int:
    if limit < (1 << width) or rnd.random() < 0.5:
        return rnd.randrange(min(limit, 4)) if rnd.random() < 0.5 else rnd.randrange(limit)
    return rnd.getrandbits(width)


@cocotb.test()
async def netlist_matches_rtl(dut):
    inputs, outputs = PORTS["inputs"], PORTS["outputs"]
    assert inputs and outputs, "MEMPROP_BRAM_PORTS names no ports"
    rnd = random.Random(SEED)
    for name, _, _ in inputs:
        getattr(dut, name).value = 0
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await FallingEdge(dut.clk)
    for cycle in range(CYCLES):
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        for name in outputs:
            rtl, net = getattr(dut, f"rtl_{name}").value, getattr(dut, f"net_{name}").value
            assert str(rtl) == str(net), (f"cycle {cycle}: {name} differs: RTL {rtl}, netlist {net} "
                                          f"(inputs at that edge: "
                                          f"{ {n: str(getattr(dut, n).value) for n, _, _ in inputs} })")
        for name, width, limit in inputs:
            getattr(dut, name).value = draw(rnd, width, limit)
