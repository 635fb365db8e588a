"""Multiply-accumulate lanes with a segmented reduction over the synapse stream.

Each clock, P lanes multiply P (weight, activation) pairs of one block of the stream. A
block may hold the end of one row and the start of the next (never two row ends, see
schedule.py), so the lanes are summed as two segments: lanes up to the row end finish the
current row, the rest start the next. Integer addition is associative, so the tree shape
does not change the result: the model's row sums are matched exactly.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from . import formal

#: Cycles from a block at the inputs to its row sum at the outputs.
MAC_LATENCY = 3


class MacArray(wiring.Component):
    def __init__(self, lanes: int, w_bits: int, a_bits: int, acc_bits: int):
        self.lanes = lanes
        self.acc_bits = acc_bits
        self.p_bits = w_bits + a_bits
        super().__init__({
            "start": In(1),                                   # clear the running sum (step start)
            "valid": In(1),                                   # a block is present
            "w": In(data.ArrayLayout(signed(w_bits), lanes)),
            "a": In(data.ArrayLayout(signed(a_bits), lanes)),
            "entry": In(lanes),                               # entry holds a real synapse
            "last": In(lanes),                                # a row ends at this entry
            "row_valid": Out(1),
            "row_sum": Out(signed(acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        P = self.lanes
        # stage 1: products (zero for padding), registered: maps onto DSP output registers
        prod = [Signal(signed(self.p_bits), name=f"prod{i}") for i in range(P)]
        s1_valid, s1_last = Signal(), Signal(P)
        for i in range(P):
            m.d.sync += prod[i].eq(Mux(self.entry[i], self.w[i] * self.a[i], 0))
        m.d.sync += [s1_valid.eq(self.valid), s1_last.eq(self.last)]
        # stage 2: two segments split at the (at most one) row end of the block
        head = Signal(signed(self.acc_bits))   # lanes up to and including the row end
        tail = Signal(signed(self.acc_bits))   # lanes after it (start of the next row)
        ends = Signal()
        in_head = [Signal(name=f"in_head{i}") for i in range(P)]
        for i in range(P):
            # lane i belongs to the head when no row end precedes it within the block
            m.d.comb += in_head[i].eq(~s1_last[:i].any() if i else 1)
        m.d.sync += [
            head.eq(sum(Mux(in_head[i], prod[i], 0) for i in range(P))),
            tail.eq(sum(Mux(in_head[i], 0, prod[i]) for i in range(P))),
            ends.eq(s1_valid & s1_last.any()),
        ]
        s2_valid = Signal()
        m.d.sync += s2_valid.eq(s1_valid)
        # stage 3: running sum of the open row; emit when the row ends
        running = Signal(signed(self.acc_bits))
        with m.If(self.start):
            m.d.sync += running.eq(0)
        with m.Elif(s2_valid):
            with m.If(ends):
                m.d.sync += running.eq(tail)
            with m.Else():
                m.d.sync += running.eq(running + head)
        m.d.sync += [self.row_valid.eq(s2_valid & ends), self.row_sum.eq(running + head)]
        formal.hook(self, m, running=running)
        return m
