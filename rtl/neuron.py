"""The neuron update: one row's accumulated field in, the new state out (numerics.md, section 4).

Two pipeline stages (NEURON_LATENCY): the field g, then the exact update r, the one rounding
(round half up) and the one saturation. Every width comes from `Formats`, so the proven
bounds of the spec hold and nothing wraps.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from memprop.model.numerics import Formats, bitlen_signed

NEURON_LATENCY = 2


class NeuronUpdate(wiring.Component):
    """v' = clamp(v + round((g<<k') - (v<<(s+k')) + sigma((T-v)<<(s+m)), R), lo, hi)."""

    def __init__(self, fmt: Formats, row_bits: int):
        self.fmt = fmt
        self.acc_bits = fmt.acc_bits
        self.w_bits = bitlen_signed(fmt.w_max)
        self.v_bits = fmt.state_bits
        self.d_bits = max(fmt.d_max.bit_length(), 1)
        super().__init__({
            "valid": In(1), "row": In(row_bits),
            "acc": In(signed(self.acc_bits)),      # sum_j w_ij a_j of the row
            "bias": In(signed(self.w_bits)),       # b_i at scale 2^-fw
            "x": In(signed(2)),                    # input sign: +1, -1, 0
            "target": In(signed(self.v_bits)),
            "v": In(signed(self.v_bits)),          # the unit's current state
            "is_output": In(1),
            "sign": In(signed(2)),                 # 0 free, +1 / -1 nudged
            "deriv": In(unsigned(self.d_bits)),    # rho'(v) at scale 2^-fd (tanh only)
            "o_valid": Out(1), "o_row": Out(row_bits),
            "v_new": Out(signed(self.v_bits)),
            "delta": Out(unsigned(self.v_bits)),   # |v' - v|
        })

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        g_bits = self.acc_bits + (0 if f.hard else self.d_bits + 1)
        # stage A: the field
        u = Signal(signed(self.acc_bits + 1))
        m.d.comb += u.eq(self.acc + (self.bias << f.fa) + Mux(self.x > 0, f.g_in, Mux(self.x < 0, -f.g_in, 0)))
        g = Signal(signed(g_bits))
        a_valid, a_row = Signal(), Signal.like(self.row)
        a_v, a_t, a_out, a_sign = (Signal.like(self.v), Signal.like(self.target), Signal(), Signal.like(self.sign))
        m.d.sync += [g.eq(u if f.hard else u * self.deriv), a_valid.eq(self.valid), a_row.eq(self.row),
                     a_v.eq(self.v), a_t.eq(self.target), a_out.eq(self.is_output), a_sign.eq(self.sign)]
        # stage B: exact update, one rounding, one saturation
        r_bits = f.r_bits + 2
        nudge = Signal(signed(r_bits))
        diff = Signal(signed(self.v_bits + 1))
        m.d.comb += diff.eq(a_t - a_v)
        with m.If(a_out & (a_sign > 0)):
            m.d.comb += nudge.eq(diff << (f.s + f.k_mul))
        with m.Elif(a_out & (a_sign < 0)):
            m.d.comb += nudge.eq(-(diff << (f.s + f.k_mul)))
        r = Signal(signed(r_bits))
        m.d.comb += r.eq((g << f.k_frac) - (a_v << (f.s + f.k_frac)) + nudge)
        R = f.round_shift
        step = Signal(signed(r_bits))
        m.d.comb += step.eq(((r + (1 << (R - 1))) >> R) if R > 0 else r)
        moved = Signal(signed(r_bits + 1))
        m.d.comb += moved.eq(a_v + step)
        v_new = Signal(signed(self.v_bits))
        m.d.comb += v_new.eq(Mux(moved < f.lo, f.lo, Mux(moved > f.hi, f.hi, moved)))
        delta = Signal(signed(self.v_bits + 1))
        m.d.comb += delta.eq(v_new - a_v)
        m.d.sync += [self.o_valid.eq(a_valid), self.o_row.eq(a_row), self.v_new.eq(v_new),
                     self.delta.eq(Mux(delta < 0, -delta, delta))]
        return m
