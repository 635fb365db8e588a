"""Formal properties of the learning lanes (rtl/learnlane.py) and the harness that proves them.

One harness holds one lane of each kind, side by side and independent, driven as the Learner
drives them (strobes in any order the ports allow; the UP/DOWN table as the real ROM behind
`table_addr`), with every operand free within its documented range:

- `CorrelatorLane`: the correlation equals a shadow sum kept wider, so it never wraps over a
  minibatch (at most 2B products between clears); the row operand comes from
  `CorrelatorLane.row_operand` as in the Learner, so its sign and bias cases are checked too;
  the same for the paired lane of wide learners (HI minus LO product, at most B between clears);
- `Quantiser`: the pulse count is numerics.md section 5's, rounding included, at the synapse's
  layer's rate and the decayed shift (any rate index and decay count), never above P_max;
- `PulseLane`: codes stay in [0, L - 1]; a round pulses only while p < |n|, the device the
  potentiate-first rule picks, by exactly the table and the c2c noise rule; a stuck device
  (a class whose UP and DOWN tables leave every code where it is) never changes.
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Const, Elaboratable, Module, Mux, ResetSignal, Signal, signed
from amaranth.asserts import AnySeq
from amaranth.lib import memory

from memprop.model.config import Config
from memprop.model.numerics import LR_SHIFT_MAX

from .formal import Properties, attach, past
from .learnlane import (CORRELATOR_LATENCY, NOISE_BITS, CorrelatorLane, PulseLane, Quantiser, align_draw,
                        learn_widths)
from .learnplan import c2c_thresholds, max_learn_shift, rate_table
from .schedule import formats

__all__ = ["LearnLaneProof", "stuck_classes"]

SHADOW_EXTRA = 8


def stuck_classes(fmt) -> list[int]:
    """Device classes of stuck devices: those the device tables name, else every class whose UP
    and DOWN tables keep every code."""
    t = fmt.device
    named = getattr(t, "stuck_classes", None)
    if named:
        return [int(m) for m in named]
    codes = np.arange(t.levels)
    return [m for m in range(t.classes) if (t.up[m] == codes).all() and (t.down[m] == codes).all()]


class LearnLaneProof(Elaboratable):
    def __init__(self, props: Properties, cfg: Config):
        self.props, self.cfg = props, cfg
        self.fmt = formats(cfg)

    def elaborate(self, platform):
        m = Module()
        Properties.assume(m, ~ResetSignal())
        self._correlator(m)
        self._paired_correlator(m)
        self._quantiser(m)
        self._pulse_lane(m)
        return m

    # -- correlation ---------------------------------------------------------------------------
    def _correlator(self, m: Module):
        props, f = self.props, self.fmt
        m.submodules.corr = lane = CorrelatorLane(f)
        for port in (lane.clear, lane.valid, lane.a_col):
            m.d.comb += port.eq(AnySeq(port.shape()))
        # the row operand as the Learner forms it once for all lanes: a_row, or 2^fa for a bias;
        # the LO set's products subtracted (sub)
        sub, bias = Signal(name="env_corr_sub"), Signal(name="env_corr_bias")
        a_row = Signal(signed(len(lane.a_row)), name="env_corr_a_row")
        m.d.comb += [sub.eq(AnySeq(1)), bias.eq(AnySeq(1)), a_row.eq(AnySeq(a_row.shape())),
                     lane.a_row.eq(CorrelatorLane.row_operand(f, a_row, bias)), lane.sub.eq(sub)]
        a_top = f.a_max
        for a in (a_row, lane.a_col):
            props.assume(m, (a <= a_top) & (a >= -a_top))
        # the shadow at the sum stage: operands CORRELATOR_LATENCY - 1 cycles behind the inputs
        ops = {"valid": lane.valid, "sub": sub, "bias": bias, "a_row": a_row, "a_col": lane.a_col}
        for d in range(CORRELATOR_LATENCY - 1):
            ops = {k: past(m, v, f"ref_corr_{k}_d{d + 1}") for k, v in ops.items()}
        wide = signed(len(lane.corr) + SHADOW_EXTRA)
        prod = Signal(wide, name="ref_corr_prod")
        m.d.comb += prod.eq(Mux(ops["bias"], ops["a_col"] << f.fa, ops["a_row"] * ops["a_col"]))
        shadow = Signal(wide, name="ref_corr")
        terms = Signal(range(2 * self.cfg.train.batch_size + 1), name="ref_corr_terms")
        batch_terms = 2 * self.cfg.train.batch_size          # HI and LO fixed points of B samples
        props.assume(m, ~ops["valid"] | lane.clear | (terms < batch_terms))
        with m.If(lane.clear):
            m.d.sync += [shadow.eq(0), terms.eq(0)]
        with m.Elif(ops["valid"]):
            m.d.sync += [shadow.eq(Mux(ops["sub"], shadow - prod, shadow + prod)), terms.eq(terms + 1)]
        pmax = f.a_max * max(f.a_max, 1 << f.fa)
        props.check(m, "learner.correlation_exact", lane.corr == shadow,
                    f"the correlation C equals a shadow sum {SHADOW_EXTRA} bits wider over any 2B products of a "
                    "minibatch, the row operand as the Learner forms it (a_i, or 2^fa for a bias), the LO set's "
                    "products subtracted: its width never wraps (|C| <= 2 B Amax max(Amax, 2^fa), numerics.md section 6)")
        props.check(m, "learner.correlation_bounded", (shadow <= terms * pmax) & (shadow >= -(terms * pmax)),
                    "lemma: the shadow is bounded by its number of products", lemma=True)
        props.cover(m, "learner.correlation_at_bound", lane.corr == f.corr_bound, "C at its bound 2 B Amax^2")

    def _paired_correlator(self, m: Module):
        """The wide learners' lane: a sample's HI and LO operands in one cycle, B samples a minibatch."""
        props, f = self.props, self.fmt
        m.submodules.corr_paired = lane = CorrelatorLane(f, paired=True)
        for port in (lane.clear, lane.valid, lane.a_col, lane.a_col_lo):
            m.d.comb += port.eq(AnySeq(port.shape()))
        bias = Signal(name="env_pcorr_bias")
        a_row = Signal(signed(len(lane.a_row)), name="env_pcorr_a_row")
        a_row_lo = Signal(signed(len(lane.a_row)), name="env_pcorr_a_row_lo")
        m.d.comb += [bias.eq(AnySeq(1)), a_row.eq(AnySeq(a_row.shape())), a_row_lo.eq(AnySeq(a_row.shape())),
                     lane.a_row.eq(CorrelatorLane.row_operand(f, a_row, bias)),
                     lane.a_row_lo.eq(CorrelatorLane.row_operand(f, a_row_lo, bias))]
        a_top = f.a_max
        for a in (a_row, a_row_lo, lane.a_col, lane.a_col_lo):
            props.assume(m, (a <= a_top) & (a >= -a_top))
        ops = {"valid": lane.valid, "bias": bias, "a_row": a_row, "a_row_lo": a_row_lo, "a_col": lane.a_col,
               "a_col_lo": lane.a_col_lo}
        for d in range(CORRELATOR_LATENCY - 1):
            ops = {k: past(m, v, f"ref_pcorr_{k}_d{d + 1}") for k, v in ops.items()}
        wide = signed(len(lane.corr) + SHADOW_EXTRA)
        term = Signal(wide, name="ref_pcorr_term")
        m.d.comb += term.eq(Mux(ops["bias"], (ops["a_col"] - ops["a_col_lo"]) << f.fa,
                                ops["a_row"] * ops["a_col"] - ops["a_row_lo"] * ops["a_col_lo"]))
        shadow = Signal(wide, name="ref_pcorr")
        batch = self.cfg.train.batch_size
        terms = Signal(range(batch + 1), name="ref_pcorr_terms")
        props.assume(m, ~ops["valid"] | lane.clear | (terms < batch))     # one term per sample
        with m.If(lane.clear):
            m.d.sync += [shadow.eq(0), terms.eq(0)]
        with m.Elif(ops["valid"]):
            m.d.sync += [shadow.eq(shadow + term), terms.eq(terms + 1)]
        bound = 2 * f.a_max * max(f.a_max, 1 << f.fa)
        props.check(m, "learner.paired_correlation_exact", lane.corr == shadow,
                    f"the paired correlation (a sample's HI and LO products in one cycle, wide learners) equals "
                    f"a shadow sum {SHADOW_EXTRA} bits wider over any B samples, HI product minus LO product, "
                    "the row operands as the Learner forms them: its width never wraps")
        props.check(m, "learner.paired_correlation_bounded", (shadow <= terms * bound) & (shadow >= -(terms * bound)),
                    "lemma: the paired shadow is bounded by its number of samples", lemma=True)
        props.cover(m, "learner.paired_correlation_at_bound", lane.corr == f.corr_bound,
                    "the paired C at its bound 2 B Amax^2")

    # -- quantisation --------------------------------------------------------------------------
    def _quantiser(self, m: Module):
        props, f = self.props, self.fmt
        rates = rate_table(f)
        p_max = f.max_pulses
        mode = self.cfg.fixed.rounding
        learn_lanes = self.cfg.hw.learn_lanes or self.cfg.hw.lanes
        q = Quantiser(f, dsp=learn_lanes <= 2)      # as the Learner builds it: x LR_MUL in a DSP when narrow
        m.submodules.quant = q
        rated, decaying = len(rates) > 1, bool(f.decay_shift)
        ports = [q.load, q.scale, q.round, q.corr, q.diag]
        ports += [q.rate] if rated else []
        ports += [q.decay] if decaying else []          # any decay count the register can hold
        for port in ports:
            m.d.comb += port.eq(AnySeq(port.shape()))
        props.assume(m, (q.corr <= f.corr_bound) & (q.corr >= -f.corr_bound))
        if rated:
            props.assume(m, q.rate < len(rates))
        # the Learner's order: a group is loaded, scaled, then rounded (no load between its scale and round)
        loaded = Signal(name="env_q_loaded_since_scale")
        with m.If(q.load):
            m.d.sync += loaded.eq(1)
        with m.Elif(q.scale):
            m.d.sync += loaded.eq(0)
        props.assume(m, ~(q.round & loaded))
        loaded_last = Signal(name="env_q_loaded_last_cycle")
        m.d.sync += loaded_last.eq(q.load)
        if q.dsp:   # |C| is the DSP's free-running input register: scale comes right after load
            props.assume(m, ~q.scale | loaded_last)
        # the spec's pulse count, step by step on the same strobes: the synapse's rate (per-layer
        # LR_MUL and LR_SHIFT) taken with C, the decayed shift min(LR_SHIFT + e d, 31) when scaled
        s_c = Signal(signed(len(q.corr)), name="ref_q_c")
        s_diag = Signal(name="ref_q_diag")
        s_rate = Signal(range(len(rates)), name="ref_q_rate")
        s_q = Signal(len(q.corr) + 9, name="ref_q_scaled")
        sh_top = max_learn_shift(f) + 1
        sh_min = min(shift for _, shift in rates)
        s_sh = Signal(range(sh_top + 1), name="ref_q_shift", init=sh_min)
        with m.If(q.load):
            m.d.sync += [s_c.eq(q.corr), s_diag.eq(q.diag)]
            if rated:
                m.d.sync += s_rate.eq(q.rate)
        for k, (mul, shift) in enumerate(rates):
            grown = shift + q.decay * f.decay_shift if decaying else Const(shift, 6)
            with m.If(q.scale & (s_rate == k)):
                m.d.sync += [s_q.eq(Mux(s_c < 0, -s_c, s_c) * mul),
                             s_sh.eq(Mux(grown > LR_SHIFT_MAX, LR_SHIFT_MAX, grown) + s_diag)]
        # the lane's 32-bit draw, as the Learner hands it over: its top rho_bits (one rate, no decay),
        # or its top sh bits aligned where the draws arrive (align_draw, with the lane's shift)
        draw = Signal(32, name="env_q_draw")
        m.d.comb += draw.eq(AnySeq(32))
        if Quantiser.constant_for(f):
            m.d.comb += q.rho.eq(draw >> (32 - len(q.rho)))
        else:
            drop = Signal(range(sh_top - sh_min + 1), name="env_q_drop")
            m.d.comb += [drop.eq(sh_top - s_sh), q.rho.eq(align_draw(f, draw, drop))]
        # the rounding and the shift for every value the shift can take, each a constant shift
        n_ref = Signal(len(s_q) + 33, name="ref_q_pulses")
        for sh in range(sh_min, sh_top + 1):
            add = {"truncate": 0, "nearest": 1 << (sh - 1)}.get(mode)
            if add is None:                  # stochastic: the top sh bits of the draw
                add = draw >> (32 - sh)
            with m.If(s_sh == sh):
                m.d.comb += n_ref.eq((s_q + add) >> sh)
        expect_mag = Signal(len(q.n_mag), name="ref_q_n_mag")
        expect_neg = Signal(name="ref_q_neg")
        with m.If(q.round):
            m.d.sync += [expect_mag.eq(Mux(n_ref > p_max, p_max, n_ref)), expect_neg.eq(s_c < 0)]
        props.check(m, "learner.pulse_count_exact", (q.n_mag == expect_mag) & (q.neg == expect_neg),
                    "the pulse count is sign(C) ((|C| LR_MUL + rho) >> LR_SHIFT) with the configured rounding "
                    "(one more shift on the diagonal), clamped to +-P_max, at the synapse's layer's LR_MUL and "
                    "LR_SHIFT, the shift grown by e d for e decay steps and capped at 31: x LR_MUL, as shifts and "
                    "adds or in a DSP block (a learner of W <= 2 lanes), and the shift are exact")
        props.check(m, "learner.pulse_count_within_limit", q.n_mag <= p_max,
                    "a pulse count never exceeds the pulse limit P_max")

        def lemmas(m_q, quant, i):
            mag_held = i.mag == Mux(s_c < 0, -s_c, s_c)
            if quant.dsp:                    # |C| is only needed (and held) in the cycle after load
                mag_held |= ~loaded_last
            held = mag_held & (i.neg == (s_c < 0)) & (i.diag == s_diag) & (i.q == s_q)
            if hasattr(i, "off"):            # per-layer rates or decay: the rate and the shift offset
                held &= (i.rate == s_rate) & (i.off == s_sh - sh_min) & (s_sh >= sh_min) & (s_sh <= sh_top)
            else:                            # constants: the shift follows the diagonal flag until a load
                held &= loaded | (s_sh == rates[0][1] + s_diag)
            props.check(m_q, "learner.quantiser_registers", held,
                        "lemma: the quantiser's registers hold |C|, its sign, the diagonal flag, |C| LR_MUL and "
                        "(per-layer rates, decay) the rate and the shift", lemma=True)
        attach(q, lemmas)
        props.assume(m, ~(q.load & (q.scale | q.round)) & ~(q.scale & q.round))   # one strobe at a time

        props.cover(m, "learner.max_pulse_count", q.n_mag == p_max, "the maximum pulse count P_max")
        if decaying:
            props.cover(m, "learner.decayed_to_the_cap", past(m, q.scale, "ref_was_scale") & (s_sh >= LR_SHIFT_MAX),
                        "a decayed shift at its cap 31")

    # -- programming -----------------------------------------------------------------------------
    def _pulse_lane(self, m: Module):
        props, f = self.props, self.fmt
        w = learn_widths(f)
        devices, cb, clb = w["devices"], w["code_bits"], w["class_bits"]
        tables = f.device
        top = tables.levels - 1
        lane = PulseLane(f)
        m.submodules.pulse = lane
        rom = memory.Memory(shape=cb, depth=1 << lane.table_bits, init=PulseLane.table_image(f))
        m.submodules.table = rom
        rd = rom.read_port()
        m.d.comb += [rd.addr.eq(lane.table_addr), lane.table_data.eq(rd.data)]
        for port in (lane.load, lane.entry, lane.n_mag, lane.neg, lane.p, lane.phase_a, lane.noise):
            m.d.comb += port.eq(AnySeq(port.shape()))
        # the Learner's protocol: phase b in the cycle after phase a; nothing else meanwhile
        was_a = past(m, lane.phase_a, "env_was_phase_a")
        m.d.comb += lane.phase_b.eq(was_a)
        props.assume(m, ~(lane.phase_a & (was_a | lane.load)) & ~(lane.load & was_a))
        props.assume(m, lane.n_mag <= f.max_pulses)

        def fields(entry):
            out, at = [], 0
            for _ in range(devices):
                code = entry[at:at + cb]
                at += cb
                cls = entry[at:at + clb] if clb else Const(0, 1)
                at += clb
                out.append((code, cls))
            return out

        for code, cls in fields(lane.entry):
            props.assume(m, ~lane.load | ((code <= top) & (cls < tables.classes)))
        out = fields(lane.entry_out)
        props.check(m, "learner.codes_in_range", Cat(*(code <= top for code, _ in out)).all(),
                    "every device code stays within [0, L - 1] while it is programmed")
        # the spec's pulse: device choice, table step, c2c noise
        neg = lane.neg
        if devices == 1:
            dev, pot = Const(0, 1), ~neg
        else:
            primary = Mux(neg, out[1][0], out[0][0])
            at_top = primary >= top
            dev, pot = Mux(at_top, ~neg, neg), ~at_top
        code_a = out[0][0] if devices == 1 else Mux(dev, out[1][0], out[0][0])
        cls_a = out[0][1] if devices == 1 else Mux(dev, out[1][1], out[0][1])
        table = memory.Memory(shape=cb, depth=1 << lane.table_bits, init=PulseLane.table_image(f))
        m.submodules.spec_table = table
        spec_rd = table.read_port(domain="comb")
        m.d.comb += spec_rd.addr.eq(Cat(code_a, cls_a[:clb], pot) if clb else Cat(code_a, pot))
        r_dev, r_cls = past(m, dev, "ref_pulse_dev"), past(m, cls_a, "ref_pulse_class")
        r_step = past(m, spec_rd.data, "ref_pulse_step")
        r_active = past(m, lane.phase_a & (lane.p < lane.n_mag), "ref_pulse_active")
        r_entry = past(m, lane.entry_out, "ref_pulse_entry")
        thresholds = c2c_thresholds(f)
        stepped = Signal(cb, name="ref_pulse_code")
        if any(thresholds):
            word = Mux(r_dev, lane.noise[NOISE_BITS:], lane.noise[:NOISE_BITS])
            threshold = Signal(17, name="ref_pulse_threshold")
            with m.Switch(r_cls):
                for c, value in enumerate(thresholds):
                    with m.Case(c):
                        m.d.comb += threshold.eq(value)
            hit, up_one = (word >> 1) < threshold, word[0]
            m.d.comb += stepped.eq(Mux(hit & up_one & (r_step < top), r_step + 1,
                                       Mux(hit & ~up_one & (r_step > 0), r_step - 1, r_step)))
        else:
            m.d.comb += stepped.eq(r_step)
        expected = Signal.like(lane.entry_out, name="ref_pulse_entry_out")
        m.d.comb += expected.eq(r_entry)
        with m.If(was_a & r_active):
            at = 0
            for d in range(devices):
                with m.If(r_dev == d):
                    m.d.comb += expected[at:at + cb].eq(stepped)
                at += cb + clb
        after_b = past(m, lane.phase_b, "ref_after_phase_b")
        want = past(m, expected, "ref_pulse_expected")
        props.check(m, "learner.pulse_exact", ~after_b | (lane.entry_out == want),
                    "a round pulses only while p < |n|, on the device the potentiate-first rule picks (the "
                    "partner's depression once the primary device is at L - 1), by exactly the UP/DOWN table "
                    "and the c2c noise rule; the other device and the device classes stay unchanged")
        held = past(m, lane.entry_out, "ref_entry_held")
        was_load, was_b = past(m, lane.load, "ref_was_load"), past(m, lane.phase_b, "ref_was_b")
        props.check(m, "learner.entry_changes_only_by_pulses", was_load | was_b | (lane.entry_out == held),
                    "between pulses (phase b) and loads the entry never changes")
        stuck = stuck_classes(f)
        if stuck:
            props.check(m, "learner.stuck_device_never_changes",
                        was_load | Cat(*(~Cat(*(out_cls == s for s in stuck)).any()
                                         | (out_code == past(m, out_code, f"ref_stuck_code{d}"))
                                         for d, (out_code, out_cls) in enumerate(out))).all(),
                        "a device of a stuck class keeps its code through every pulse and noise")

        props.cover(m, "learner.top_code_switches_device", was_a & r_active & (r_dev != past(m, neg, "ref_was_neg"))
                    if devices == 2 else was_a & r_active,
                    "a pulse with the primary device at L - 1 depresses the partner instead")
        if any(thresholds):
            props.cover(m, "learner.noise_step", was_a & r_active & (stepped != r_step), "a c2c noise step")
        props.cover(m, "learner.code_at_top", Cat(*(code == top for code, _ in out)).any(), "a code at L - 1")
