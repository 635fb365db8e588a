"""A harness for checking the SPRAM model (memprop.rtl.spram) against yosys' cell model."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from memprop.rtl.spram import SPRAM, WIDTH


class SPRAMPair(wiring.Component):
    """The primitive (simulated with yosys' SB_SPRAM256KA) and the Amaranth model, side by side."""

    def __init__(self, depth: int = 64):
        self.depth = depth
        super().__init__({"address": In(14), "data_in": In(WIDTH), "mask_wren": In(4), "wren": In(1),
                          "chip_select": In(1), "cell_out": Out(WIDTH), "model_out": Out(WIDTH)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.cell = cell = SPRAM(primitive=True)
        m.submodules.model = model = SPRAM(primitive=False, depth=self.depth)
        for ram, out in ((cell, self.cell_out), (model, self.model_out)):
            m.d.comb += [ram.address.eq(self.address), ram.data_in.eq(self.data_in), ram.mask_wren.eq(self.mask_wren),
                         ram.wren.eq(self.wren), ram.chip_select.eq(self.chip_select), out.eq(ram.data_out)]
        return m
