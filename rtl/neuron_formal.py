"""Formal properties of the neuron update (rtl/neuron.py) and the harness that proves them.

The reference is docs/numerics.md section 4 written once more in Amaranth arithmetic, which
widens every intermediate (nothing can wrap): the field, the exact update r, one round-half-up
at shift R, one clamp to [lo, hi]. The harness drives every input of `NeuronUpdate` freely
within the ranges the engine can produce (numerics.md sections 1, 3 and 6) and compares the
output, NEURON_LATENCY cycles later, with the reference. So no width in the pipeline is too
narrow, and nothing is rounded or saturated anywhere else.
"""

from __future__ import annotations

from amaranth import Elaboratable, Module, Mux, ResetSignal, Signal, signed
from amaranth.asserts import AnySeq

from memprop.model.config import Config

from .formal import Properties, past
from .neuron import NEURON_LATENCY, NeuronUpdate
from .schedule import formats

__all__ = ["NeuronProof", "neuron_reference"]


def neuron_reference(m: Module, fmt, acc, bias, x, target, v, is_output, sign, deriv) -> dict:
    """The spec's update of one unit, exact: named signals for v', the step, r and the clamp."""
    f = fmt
    # |u| <= the accumulator bound of numerics.md section 6 < 2^(acc_bits - 1): exact in acc_bits + 1
    u = Signal(signed(f.acc_bits + 1), name="ref_u")
    u_wide = Signal(signed(f.acc_bits + 16), name="ref_u_wide")
    m.d.comb += [u.eq(acc + (bias << f.fa) + x * f.g_in), u_wide.eq(acc + (bias << f.fa) + x * f.g_in)]
    g = u if f.hard else u * deriv
    sigma = Mux(is_output, sign, 0)
    r = Signal(signed(f.r_bits + 16), name="ref_r")
    m.d.comb += r.eq((g << f.k_frac) - (v << (f.s + f.k_frac)) + sigma * ((target - v) << (f.s + f.k_mul)))
    R = f.round_shift
    step = Signal(signed(f.r_bits + 16), name="ref_step")
    m.d.comb += step.eq(((r + (1 << (R - 1))) >> R) if R > 0 else r)
    moved = Signal(signed(f.r_bits + 17), name="ref_moved")
    m.d.comb += moved.eq(v + step)
    v_new = Signal(signed(f.state_bits + 1), name="ref_v_new")
    m.d.comb += v_new.eq(Mux(moved < f.lo, f.lo, Mux(moved > f.hi, f.hi, moved)))
    tie = (r[:R] == (1 << (R - 1))) if R > 0 else 0
    return {"v_new": v_new, "moved": moved, "r": r, "tie": tie, "u": u, "u_wide": u_wide}


class NeuronProof(Elaboratable):
    def __init__(self, props: Properties, cfg: Config):
        self.props, self.cfg = props, cfg
        self.fmt = formats(cfg)

    def elaborate(self, platform):
        m = Module()
        props, f = self.props, self.fmt
        Properties.assume(m, ~ResetSignal())
        n_bits = max((self.cfg.network.n - 1).bit_length(), 1)
        m.submodules.dut = dut = NeuronUpdate(f, n_bits)
        inputs = [dut.valid, dut.row, dut.acc, dut.bias, dut.x, dut.target, dut.v, dut.is_output, dut.sign, dut.deriv]
        for port in inputs:
            m.d.comb += port.eq(AnySeq(port.shape()))
        # the ranges the engine feeds (numerics.md): a row sum of at most degree_max products,
        # a weight-range bias, states and targets in [lo, hi], signs in {-1, 0, 1}, rho' <= d_max
        row_bound = f.degree_max * f.w_max * f.a_max
        for ok in (dut.acc <= row_bound, dut.acc >= -row_bound, dut.bias <= f.w_max, dut.bias >= -f.w_max,
                   dut.x != -2, dut.sign != -2, dut.v >= f.lo, dut.v <= f.hi, dut.target >= f.lo,
                   dut.target <= f.hi, dut.deriv <= (1 if f.hard else f.d_max)):
            props.assume(m, ok)
        ref = neuron_reference(m, f, dut.acc, dut.bias, dut.x, dut.target, dut.v, dut.is_output, dut.sign,
                               dut.deriv)
        # the reference, NEURON_LATENCY cycles later
        delayed = {"valid": dut.valid, "row": dut.row, "v": dut.v, "v_new": ref["v_new"]}
        for stage in range(NEURON_LATENCY):
            delayed = {k: past(m, val, f"ref_{k}_d{stage + 1}") for k, val in delayed.items()}
        props.check(m, "neuron.field_within_bound",
                    (ref["u_wide"] == ref["u"]) & (ref["u_wide"] <= f.acc_bound) & (ref["u_wide"] >= -f.acc_bound),
                    "the field acc + b 2^fa + x G_in stays within the accumulator bound of numerics.md section 6 "
                    "(so the reference's own widths are exact)")
        props.check(m, "neuron.state_in_range", (dut.v_new >= f.lo) & (dut.v_new <= f.hi),
                    "the new state is always within [lo, hi]")
        props.check(m, "neuron.update_exact",
                    (dut.o_valid == delayed["valid"]) & (dut.o_row == delayed["row"])
                    & (dut.v_new == delayed["v_new"]),
                    f"{NEURON_LATENCY} cycles after its operands, the new state is v + the one round-half-up "
                    f"(shift R) of the exact update r, clamped once to [lo, hi]: no other "
                    "rounding, saturation or wrap-around in the pipeline (numerics.md section 4)")
        diff = delayed["v_new"] - delayed["v"]
        props.check(m, "neuron.delta_exact", dut.delta == Mux(diff < 0, -diff, diff),
                    "delta is exactly |v' - v| (the convergence test's input)")
        props.cover(m, "neuron.saturates_high", dut.valid & (ref["moved"] > f.hi), "the update saturates at hi")
        props.cover(m, "neuron.saturates_low", dut.valid & (ref["moved"] < f.lo), "the update saturates at lo")
        if f.round_shift > 0:
            props.cover(m, "neuron.rounding_tie", dut.valid & ref["tie"] & (ref["moved"] < f.hi) & (ref["moved"] > f.lo),
                        "a half-way update rounds up inside the range")
        props.cover(m, "neuron.nudged_output", dut.valid & dut.is_output & (dut.sign != 0) & (dut.target != dut.v),
                    "an output unit is nudged towards its target")
        return m
