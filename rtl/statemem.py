"""State memory: the neuron states and one activation copy per MAC lane, double-buffered.

Relaxation is Jacobi: a step reads the current half (`cur`) and writes the other. The
states (for the neuron update, the host and STORE) sit in one memory with one read port;
each lane has its own copy of the activations ρ(v) (it reads a different column every
clock), two halves deep; `lutram_lanes` of the copies sit in distributed RAM (yosys
`ram_style`), which frees block RAM for more lanes. A state write updates the state at once and
every activation copy one cycle later, after a synchronous read of the activation table (tanh)
or a register (the hard activations, ρ(v) = v inside the box). An engine with more than one group
of lanes (fanout.py) takes two cycles for the hard activations: the value and address pass a
register per group of lanes and then one per copy, so that no route from one register reaches
block RAMs spread over the die (on the ULX3S such a route, 15 ns with no logic, was the longest
path of two of the three placements). Nothing reads the half being written for at least three
cycles after its last write (the controller's STEP_END, then the stream's read),
so the delay is invisible to the controller.

A folded stream (`fold`, mac.py) also needs the activations of the word's rows: two more
copies in distributed RAM read units `row_unit` and `row_unit + 1` (`act_rows`).

No read of a copy that collides with its write is ever used (the MAC takes the copies' words
only in a relaxation step, which reads the half it does not write), so the copies are marked
for synthesis without the logic that would keep such a read's old word (collision.py).
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from memprop.model.numerics import bitlen_signed

from . import collision
from .fanout import LANES_PER_COPY, copy_of, lane_copies


def two_level_copies(fmt, lanes: int) -> bool:
    """The hard activations' copy writes pass two register levels (a group's, then each copy's)
    where there is more than one group of lanes; a narrow engine's copies sit near one register."""
    return fmt.hard and lanes > LANES_PER_COPY


class StateMemory(wiring.Component):
    def __init__(self, fmt, n_bits: int, lanes: int, lutram_lanes: int = 0, fold: bool = False):
        self.fmt = fmt
        self.fold = fold
        self.lutram_lanes = lutram_lanes          # the last ones: their copies in distributed RAM
        self.n_bits = n_bits
        self.lanes = lanes
        self.v_bits = fmt.state_bits
        self.a_bits = bitlen_signed(fmt.a_max)
        self.two_level = two_level_copies(fmt, lanes)
        #: cycles from a state write to its activation copies' write
        self.copy_latency = 2 if self.two_level else 1
        super().__init__({
            "cur": In(1),                                          # the half relaxation reads
            "w_en": In(1), "w_unit": In(n_bits), "w_half": In(1), "w_value": In(signed(self.v_bits)),
            "rd_unit": In(n_bits), "rd_half": In(1), "rd_data": Out(signed(self.v_bits)),
            "act_col": In(data.ArrayLayout(n_bits, lanes)),        # per lane: unit j (half cur)
            "act": Out(data.ArrayLayout(signed(self.a_bits), lanes)),
            **({"row_unit": In(n_bits), "act_rows": Out(data.ArrayLayout(signed(self.a_bits), 2))} if fold else {}),
        })

    def elaborate(self, platform):
        m = Module()
        f, nb = self.fmt, self.n_bits
        depth = 2 << nb
        m.submodules.state = state = memory.Memory(shape=signed(self.v_bits), depth=depth, init=[])
        rd, wr = state.read_port(), state.write_port()
        m.d.comb += [rd.addr.eq(Cat(self.rd_unit, self.rd_half)), self.rd_data.eq(rd.data),
                     wr.en.eq(self.w_en), wr.addr.eq(Cat(self.w_unit, self.w_half)), wr.data.eq(self.w_value)]

        # the activation of the value written, one cycle later. For the hard activations the value
        # and address registers are repeated per group of lanes (fanout.py): one register driving
        # every lane's block RAM is a long route at wide P.
        a_en = Signal()
        m.d.sync += a_en.eq(self.w_en)
        a_addr = lane_copies("a_addr", nb + 1, self.lanes, spread=f.hard)
        a_value = lane_copies("a_value", signed(self.a_bits), self.lanes, spread=f.hard)
        m.d.sync += [addr.eq(Cat(self.w_unit, self.w_half)) for addr in a_addr]
        if f.hard:
            m.d.sync += [value.eq(self.w_value) for value in a_value]
        else:
            table = [int(v) for v in f.act_lut]
            m.submodules.act_lut = lut = memory.Memory(shape=signed(self.a_bits), depth=len(table), init=table)
            lut_rd = lut.read_port()
            m.d.comb += [lut_rd.addr.eq(self.w_value - f.lo), a_value[0].eq(lut_rd.data)]

        reads = [(self.act_col[lane], self.act[lane], lane >= self.lanes - self.lutram_lanes)
                 for lane in range(self.lanes)]
        if self.fold:
            reads += [(self.row_unit, self.act_rows[0], True), (self.row_unit + 1, self.act_rows[1], True)]
        for k, (unit, out, lutram) in enumerate(reads):
            # relaxation reads the current half and writes the other; the copies feed only the MAC
            mem = memory.Memory(shape=signed(self.a_bits), depth=depth, init=[],
                                attrs=collision.attrs(**({"ram_style": "distributed"} if lutram else {})))
            m.submodules[f"act{k}" if k < self.lanes else f"act_row{k - self.lanes}"] = mem
            a_rd, a_wr = mem.read_port(), mem.write_port()
            m.d.comb += [a_rd.addr.eq(Cat(unit[:nb], self.cur)), out.eq(collision.read_data(m, a_rd, a_wr))]
            g = copy_of(min(k, self.lanes - 1)) if f.hard else 0
            if self.two_level:
                # the copy's own write registers, fed by its group's: enable and address in one
                # register whose init (enable 0, address k) differs from every other copy's
                wr = Signal(nb + 2, name=f"a_wr{k}", init=(k << 1) & ((2 << (nb + 1)) - 1))
                value = Signal(signed(self.a_bits), name=f"a_data{k}", init=k % (1 << (self.a_bits - 1)))
                m.d.sync += [wr.eq(Cat(a_en, a_addr[g])), value.eq(a_value[g])]
                m.d.comb += [a_wr.en.eq(wr[0]), a_wr.addr.eq(wr[1:]), a_wr.data.eq(value)]
            else:
                m.d.comb += [a_wr.en.eq(a_en), a_wr.addr.eq(a_addr[g]), a_wr.data.eq(a_value[g])]
        return m
