"""Equivalence of a synthesised engine netlist with its RTL: the miter harness.

`EngineMiter` instantiates the Amaranth `Engine` (the RTL, "gold") beside the gate-level
netlist that yosys synthesised from the same Verilog (`synth_ice40 -dsp` / `synth_ecp5 -nodsp`,
sim/netlist.py; an `Instance` of module `memprop_engine`, "gate"), drives both with the same
host bus inputs and asserts that their outputs (busy, rvalid, and rdata when valid) agree in
every cycle. SymbiYosys checks it to a bounded depth from reset (memprop/formal.py); the vendor
cells are yosys's own simulation models (cells_sim.v), read with the netlist.

The host keeps the bus contract of docs/rtl.md: one request per cycle, addresses that exist
(registers, units below N, code words below D and lanes below P, fixed-point sets below 3 and
slots below the batch). An access outside the map reads undefined memory on the FPGA (a block
RAM is larger than the memory it holds) while the RTL simulator reads 0: that difference is
not a synthesis error, so the miter leaves it out.
"""

from __future__ import annotations

from amaranth import ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.asserts import AnySeq

from memprop.model.config import Config

from . import hostmap as hm
from .engine import Engine
from .formal import Properties

__all__ = ["EngineMiter", "GATE_TOP"]

#: module name of the synthesised netlist (sim/engine.py writes the engine under this name)
GATE_TOP = "memprop_engine"


def address_exists(addr, layout: hm.Layout):
    """The host bus contract: `addr` names a register or a memory word that exists."""
    cfg = layout.fmt.cfg
    N, P, D = cfg.network.n, cfg.hw.lanes, layout.schedule.depth
    region, offset = addr[hm.REGION_SHIFT:], addr[:hm.REGION_SHIFT]
    lane_bits, nb, sb = layout.lane_bits, layout.n_bits, layout.slot_bits
    lane = offset[:lane_bits] if lane_bits else 0
    fp_unit, fp_slot, fp_set = offset[:nb], offset[nb:nb + sb], offset[nb + sb:]
    return (((region == hm.REG) & (offset <= hm.R_DELTA))
            | (((region == hm.STATE) | (region == hm.INPUT) | (region == hm.TARGET) | (region == hm.BIAS))
               & (offset < N))
            | ((region == hm.CODES) & ((offset >> lane_bits) < D) & (lane < P))
            | ((region == hm.FIXPOINT) & (fp_set < 3) & (fp_slot < layout.batch) & (fp_unit < N)))


class EngineMiter(Elaboratable):
    def __init__(self, props: Properties, cfg: Config):
        self.props, self.cfg = props, cfg

    def elaborate(self, platform):
        m = Module()
        props = self.props
        Properties.assume(m, ~ResetSignal())
        m.submodules.gold = gold = Engine(self.cfg)
        layout = gold.layout
        addr, wdata = Signal(hm.ADDR_BITS, name="host_addr"), Signal(hm.DATA_BITS, name="host_wdata")
        we, re = Signal(name="host_we"), Signal(name="host_re")
        m.d.comb += [addr.eq(AnySeq(hm.ADDR_BITS)), wdata.eq(AnySeq(hm.DATA_BITS)), we.eq(AnySeq(1)),
                     re.eq(AnySeq(1))]
        props.assume(m, ~(we & re))
        props.assume(m, ~(we | re) | address_exists(addr, layout))
        gate_rdata, gate_rvalid, gate_busy = Signal(hm.DATA_BITS), Signal(), Signal()
        m.submodules.gate = Instance(
            GATE_TOP, i_clk=ClockSignal(), i_rst=ResetSignal(), i_bus__addr=addr, i_bus__wdata=wdata,
            i_bus__we=we, i_bus__re=re, o_bus__rdata=gate_rdata, o_bus__rvalid=gate_rvalid, o_busy=gate_busy)
        m.d.comb += [gold.bus.addr.eq(addr), gold.bus.wdata.eq(wdata), gold.bus.we.eq(we), gold.bus.re.eq(re)]
        props.check(m, "equiv.engine_outputs",
                    (gold.busy == gate_busy) & (gold.bus.rvalid == gate_rvalid)
                    & (~gold.bus.rvalid | (gold.bus.rdata == gate_rdata)),
                    "the synthesised netlist and the RTL give the same busy, rvalid and read data for every "
                    "host bus sequence that keeps the bus contract")
        props.cover(m, "equiv.command_runs", gold.busy & gate_busy, "a command runs in both")
        return m
