"""Formal properties of the MAC array (rtl/mac.py) and the harness that proves them.

A shadow of the MAC's running row sum is kept at a width the sum can never reach (acc_bits +
SHADOW_EXTRA), fed from the same block stream. The harness streams any blocks the synapse
schedule (rtl/schedule.py) can produce: operands within the spec's ranges (|w| <= Wmax,
|a| <= Amax), at most one row end per block, at most `degree_max` real synapses per row, and
`start` (clear) only on an empty pipeline, as the controller does. Then the accumulator must
equal its shadow: the width of numerics.md section 6 is enough and nothing wraps.
"""

from __future__ import annotations

from amaranth import Elaboratable, Module, Mux, ResetSignal, Signal, signed
from amaranth.asserts import AnySeq

from memprop.model.config import Config
from memprop.model.numerics import bitlen_signed

from .formal import Properties, attach, past
from .mac import MacArray
from .schedule import formats

__all__ = ["MacProof", "SHADOW_EXTRA"]

#: Extra bits of the shadow sum over the accumulator: far more than any row can add.
SHADOW_EXTRA = 8


class MacProof(Elaboratable):
    """`MacArray(P, w_bits, a_bits, acc_bits)` as the engine instantiates it for `cfg`.

    `acc_bits` may be given to build a deliberately narrow accumulator (a broken design).
    """

    def __init__(self, props: Properties, cfg: Config, *, acc_bits: int | None = None):
        self.props, self.cfg = props, cfg
        self.fmt = formats(cfg)
        f = self.fmt
        self.lanes = cfg.hw.lanes
        self.w_bits = bitlen_signed(f.w_max)
        self.a_bits = bitlen_signed(f.a_max)
        self.acc_bits = f.acc_bits if acc_bits is None else acc_bits

    def elaborate(self, platform):
        m = Module()
        props, f, P = self.props, self.fmt, self.lanes
        Properties.assume(m, ~ResetSignal())
        m.submodules.dut = dut = MacArray(P, self.w_bits, self.a_bits, self.acc_bits)
        for port in (dut.start, dut.valid, dut.entry, dut.last):
            m.d.comb += port.eq(AnySeq(port.shape()))
        for lane in range(P):
            m.d.comb += [dut.w[lane].eq(AnySeq(signed(self.w_bits))), dut.a[lane].eq(AnySeq(signed(self.a_bits)))]
            for ok in (dut.w[lane] <= f.w_max, dut.w[lane] >= -f.w_max, dut.a[lane] <= f.a_max,
                       dut.a[lane] >= -f.a_max):
                props.assume(m, ok)

        # the schedule: at most one row end per block
        props.assume(m, sum(dut.last[i] for i in range(P)) <= 1)

        # each block split at its row end, exactly, at the input side ...
        wide = signed(f.acc_bits + SHADOW_EXTRA)
        pmax = f.w_max * f.a_max
        in_head = [Signal(name=f"ref_in_head{i}") for i in range(P)]
        for i in range(P):
            m.d.comb += in_head[i].eq(~dut.last[:i].any() if i else 1)
        prods = [Mux(dut.entry[i], dut.w[i] * dut.a[i], 0) for i in range(P)]
        block = {"head": Signal(wide, name="ref_head"), "tail": Signal(wide, name="ref_tail"),
                 "head_n": Signal(range(P + 1), name="ref_head_n"), "tail_n": Signal(range(P + 1), name="ref_tail_n"),
                 "ends": Signal(name="ref_ends"), "valid": Signal(name="ref_valid")}
        m.d.comb += [block["head"].eq(sum(Mux(in_head[i], prods[i], 0) for i in range(P))),
                     block["tail"].eq(sum(Mux(in_head[i], 0, prods[i]) for i in range(P))),
                     block["head_n"].eq(sum(Mux(in_head[i], dut.entry[i], 0) for i in range(P))),
                     block["tail_n"].eq(sum(Mux(in_head[i], 0, dut.entry[i]) for i in range(P))),
                     block["ends"].eq(dut.last.any()), block["valid"].eq(dut.valid)]
        # ... and summed, in the shadow, when the MAC's last stage sees the block
        for d in range(dut.latency - 1):
            block = {k: past(m, v, f"ref_{k}_d{d + 1}") for k, v in block.items()}
        running = Signal(wide, name="ref_running")                 # the open row's exact sum
        running_n = Signal(range(f.degree_max + 1), name="ref_running_n")   # and its synapses
        # a row has at most degree_max synapses (the premise of the accumulator bound)
        props.assume(m, ~block["valid"] | (running_n + block["head_n"] <= f.degree_max))
        props.assume(m, ~(block["valid"] & block["ends"]) | (block["tail_n"] <= f.degree_max))
        with m.If(dut.start):
            m.d.sync += [running.eq(0), running_n.eq(0)]
        with m.Elif(block["valid"]):
            with m.If(block["ends"]):
                m.d.sync += [running.eq(block["tail"]), running_n.eq(block["tail_n"])]
            with m.Else():
                m.d.sync += [running.eq(running + block["head"]), running_n.eq(running_n + block["head_n"])]
        row_valid = past(m, block["valid"] & block["ends"], "ref_row_valid")
        row_value = past(m, running + block["head"], "ref_row_value")
        props.check(m, "mac.row_sum_exact", (dut.row_valid == row_valid) & (~row_valid | (dut.row_sum == row_value)),
                    f"every row sum leaves the MAC mac_latency(P) cycles after its row's last word and equals a "
                    f"shadow sum {SHADOW_EXTRA} bits wider: the acc_bits accumulator never wraps")
        bound = f.degree_max * pmax
        props.check(m, "mac.row_sum_within_bound",
                    ~dut.row_valid | ((dut.row_sum <= bound) & (dut.row_sum >= -bound)),
                    "|row sum| <= degree_max Wmax Amax (numerics.md section 6)")

        def lemmas(m_mac, mac, internals):
            props.check(m_mac, "mac.running_matches_shadow",
                        (internals.running == running) & (running <= running_n * pmax)
                        & (running >= -(running_n * pmax)),
                        "lemma: the accumulator equals the shadow's open row, which its synapse count bounds",
                        lemma=True)

        attach(dut, lemmas)
        props.cover(m, "mac.row_at_bound", dut.row_valid & (dut.row_sum == bound), "a row sum at the positive bound")
        props.cover(m, "mac.row_at_negative_bound", dut.row_valid & (dut.row_sum == -bound),
                    "a row sum at the negative bound")
        if P > 1:
            props.cover(m, "mac.row_end_mid_block", dut.valid & dut.last.any() & ~dut.last[P - 1]
                        & dut.entry[P - 1], "a block that ends one row and starts the next")
        return m
