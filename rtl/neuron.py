"""The neuron update: one row's accumulated field in, the new state out (numerics.md, section 4).

    v' = clamp(v + round((g << k') - (v << (s + k')) + sigma((T - v) << (s + m)), R), lo, hi)

Pipelined so that every stage holds about one carry chain (the unpipelined update was 39
logic levels on iCE40 and set the clock): NEURON_LATENCY stages,

  1  the field u = acc + (b << fa) + x G_in
  2  g = u (hard activations) or u rho'(v) (tanh: a multiplier with registered ports);
     the nudge sigma (T - v) << (s + m) and v << (s + k') beside it
  3  r = (g << k') - (v << (s + k')) + nudge, exact
  4  the one rounding (round half up) and + v
  5  the one saturation: v'
  6  |v' - v| (for the convergence test)

Every width comes from `Formats`, so the proven bounds of the spec hold and nothing wraps.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from memprop.model.numerics import Formats, bitlen_signed

NEURON_LATENCY = 6


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
        r_bits = f.r_bits + 2
        g_bits = self.acc_bits + (0 if f.hard else self.d_bits + 1)

        def stage(name, *pairs):
            """Register (signal, value) pairs into a new stage; returns the registers."""
            regs = []
            for k, (like, value) in enumerate(pairs):
                reg = Signal.like(like, name=f"{name}_{k}")
                m.d.sync += reg.eq(value)
                regs.append(reg)
            return regs

        # the row's bookkeeping travels beside the arithmetic
        valid, row, v, t, out, sign = self.valid, self.row, self.v, self.target, self.is_output, self.sign

        def carry(name, nudge_inputs=False):
            """The row, its state and validity one stage on (target, output flag and sign too
            while the nudge still needs them)."""
            nonlocal valid, row, v, t, out, sign
            valid, row, v = stage(name, (valid, valid), (row, row), (v, v))
            if nudge_inputs:
                t, out, sign = stage(name + "n", (t, t), (out, out), (sign, sign))

        # 1: the field
        u = Signal(signed(self.acc_bits + 1), name="u", reset_less=True)
        m.d.sync += u.eq(self.acc + (self.bias << f.fa) + Mux(self.x > 0, f.g_in, Mux(self.x < 0, -f.g_in, 0)))
        deriv = Signal.like(self.deriv, name="deriv1", reset_less=True)
        m.d.sync += deriv.eq(self.deriv)
        carry("s1", nudge_inputs=True)
        # 2: g, the nudge and v << (s + k')
        g = Signal(signed(g_bits), name="g", reset_less=True)
        m.d.sync += g.eq(u if f.hard else u * deriv)
        nudge = Signal(signed(r_bits), name="nudge")
        diff = Signal(signed(self.v_bits + 1))
        m.d.comb += diff.eq(t - v)
        with m.If(out & (sign > 0)):
            m.d.sync += nudge.eq(diff << (f.s + f.k_mul))
        with m.Elif(out & (sign < 0)):
            m.d.sync += nudge.eq(-(diff << (f.s + f.k_mul)))
        with m.Else():
            m.d.sync += nudge.eq(0)
        vs = Signal(signed(r_bits), name="vs")
        m.d.sync += vs.eq(v << (f.s + f.k_frac))
        carry("s2")
        # 3: the exact update
        r = Signal(signed(r_bits), name="r")
        m.d.sync += r.eq((g << f.k_frac) - vs + nudge)
        carry("s3")
        # 4: the one rounding, then + v
        R = f.round_shift
        moved = Signal(signed(r_bits + 1), name="moved")
        m.d.sync += moved.eq(v + (((r + (1 << (R - 1))) >> R) if R > 0 else r))
        carry("s4")
        # 5: the one saturation
        v_new = Signal(signed(self.v_bits), name="v_new5")
        m.d.sync += v_new.eq(Mux(moved < f.lo, f.lo, Mux(moved > f.hi, f.hi, moved)))
        carry("s5")
        # 6: |v' - v|
        up, down = Signal(signed(self.v_bits + 1)), Signal(signed(self.v_bits + 1))
        m.d.comb += [up.eq(v_new - v), down.eq(v - v_new)]
        m.d.sync += [self.o_valid.eq(valid), self.o_row.eq(row), self.v_new.eq(v_new),
                     self.delta.eq(Mux(up[-1], down, up))]
        return m
