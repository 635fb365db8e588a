"""The iCE40 UltraPlus single-port RAM (SB_SPRAM256KA: 16K x 16 bits, nibble write masks).

`SPRAM` instantiates the primitive when the design is built or written out for a simulator
that has the cell model (`primitive=True`); in Amaranth's own simulator (which cannot run a
Verilog cell) it elaborates `model()`, the cell's behaviour in Amaranth. Verilator (cocotb) and
the gate-level flow compile yosys' `SB_SPRAM256KA` from its iCE40 `cells_sim.v`
(memprop.sim.netlist.cell_model), and tests/sim check that both models agree cycle by cycle.

Behaviour (yosys cells_sim.v, Lattice TN1314): one access per clock while CHIPSELECT is
high. WREN low reads `ADDRESS` (DATAOUT one cycle later); WREN high writes the nibbles
selected by MASKWREN and leaves DATAOUT undefined (the model: 0). POWEROFF is active low and
tied to 1, STANDBY and SLEEP to 0. The contents cannot be initialised by the bitstream: the
host loads them over the link.
"""

from __future__ import annotations

from amaranth import ClockSignal, Instance, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

DEPTH = 16384
WIDTH = 16
NIBBLES = WIDTH // 4
#: SPRAM blocks in the iCE40 UltraPlus parts (UP3K, UP5K).
BLOCKS = 4


class SPRAM(wiring.Component):
    def __init__(self, *, primitive: bool, depth: int = DEPTH):
        if not 1 <= depth <= DEPTH:
            raise ValueError(f"an SPRAM block holds 1..{DEPTH} words, not {depth!r}")
        self.primitive = primitive
        self.depth = depth            # words the model keeps (the cell always has 16K)
        super().__init__({"address": In(14), "data_in": In(WIDTH), "mask_wren": In(NIBBLES), "wren": In(1),
                          "chip_select": In(1, init=1), "data_out": Out(WIDTH)})

    def elaborate(self, platform):
        m = Module()
        if self.primitive:
            m.submodules.cell = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=self.address, i_DATAIN=self.data_in, i_MASKWREN=self.mask_wren, i_WREN=self.wren,
                i_CHIPSELECT=self.chip_select, i_CLOCK=ClockSignal(), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                o_DATAOUT=self.data_out)
            return m
        return self.model(m)

    def model(self, m: Module) -> Module:
        """The cell in Amaranth: a read port enabled on reads, a nibble-masked write port."""
        m.submodules.mem = mem = memory.Memory(shape=WIDTH, depth=self.depth, init=[])
        rd = mem.read_port()
        wr = mem.write_port(granularity=4)
        addr = self.address[:max((self.depth - 1).bit_length(), 1)]
        m.d.comb += [rd.addr.eq(addr), wr.addr.eq(addr), wr.data.eq(self.data_in),
                     rd.en.eq(self.chip_select & ~self.wren)]
        with m.If(self.chip_select & self.wren):
            m.d.comb += wr.en.eq(self.mask_wren)
        wrote = Signal()
        m.d.sync += wrote.eq(self.chip_select & self.wren)
        m.d.comb += self.data_out.eq(Mux(wrote, 0, rd.data))
        return m
