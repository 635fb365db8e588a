"""The learning lane's components alone, each against the model's arithmetic over parameter sweeps
(maia-sdr style: np.testing.assert_equal against memprop.model.fixed)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from memprop.model import fixed, rng
from memprop.model.config import Config
from memprop.model.numerics import Formats
from memprop.rtl.learnlane import (CORRELATOR_LATENCY, NOISE_BITS, CorrelatorLane, PulseLane, Quantiser,
                                   csd_digits, learn_widths)


def cfg_of(**sections) -> Config:
    base = {"network": {"n": 12}, "device": {"preset": "linear-64"}}
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return Config.for_algorithm("eqprop", numerics="fixed", **base)


def simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_csd_digits_rebuild_every_learning_rate_multiplier():
    for k in range(1, 1024):
        digits = csd_digits(k)
        assert sum(d << s for s, d in digits) == k
        shifts = [s for s, _ in digits]
        assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))      # non-adjacent form


QUANT_CONFIGS = [
    {"fixed": {"rounding": "stochastic"}},
    {"fixed": {"rounding": "nearest"}, "train": {"lr": 0.2, "batch_size": 3}},
    {"fixed": {"rounding": "truncate"}, "train": {"lr": 0.05, "batch_size": 1}},
    {"fixed": {"rounding": "stochastic", "state_frac": 5}, "train": {"lr": 0.5, "batch_size": 2},
     "device": {"preset": "linear-256"}},
    {"fixed": {"rounding": "stochastic"}, "device": {"preset": "ideal"}, "train": {"max_step": 0.02}},
    # a slow rate: the shift (and the draw's bits) wider than |C| LR_MUL, so q + rho needs rho's width
    {"fixed": {"rounding": "stochastic"}, "train": {"lr": 0.0001, "batch_size": 1}},
]


async def quantise_strobed(ctx, dut, c: int, rho: int) -> int:
    """One pulse count through the learner's strobes: load C, scale in the next cycle (as the
    learner does; C changes meanwhile and must not matter), round with the draw `rho`."""
    ctx.set(dut.corr, c)
    ctx.set(dut.load, 1)
    await ctx.tick()
    ctx.set(dut.load, 0)
    ctx.set(dut.corr, -c // 3 + 1)
    ctx.set(dut.scale, 1)
    await ctx.tick()
    ctx.set(dut.scale, 0)
    ctx.set(dut.rho, rho)
    ctx.set(dut.round, 1)
    await ctx.tick()
    ctx.set(dut.round, 0)
    return -ctx.get(dut.n_mag) if ctx.get(dut.neg) else ctx.get(dut.n_mag)


@pytest.mark.parametrize("dsp", [False, True])
@pytest.mark.parametrize("sections", QUANT_CONFIGS)
def test_quantiser_equals_model_quantise(sections, dsp):
    cfg = cfg_of(**sections)
    fmt = Formats(cfg)
    _, shift = fmt.lr_fixed
    r = np.random.default_rng(1)
    bound = fmt.corr_bound
    C = np.concatenate([r.integers(-bound, bound + 1, 150), [bound, -bound, 0, 1, -1], np.repeat([bound, -bound], 60),
                        r.integers(-min(1 << (shift - 7), bound), min(1 << (shift - 7), bound), 60)])
    diag = r.integers(0, 2, len(C))
    s = r.integers(0, 150, len(C))
    t = int(r.integers(0, 1000))
    want = fixed.quantise(fmt, C, shift + diag, t, s)
    rho_bits = learn_widths(fmt)["rho_bits"]
    rho = rng.rand(cfg.train.seed, t, s, 0).astype(np.int64) >> (32 - rho_bits)
    dut = Quantiser(fmt, dsp=dsp)
    got = []

    async def bench(ctx):
        for c, d, p in zip(C, diag, rho):
            ctx.set(dut.diag, int(d))
            got.append(await quantise_strobed(ctx, dut, int(c), int(p)))

    simulate(dut, bench)
    np.testing.assert_equal(np.array(got), want)


PULSE_CONFIGS = [
    {"device": {"preset": "linear-64"}},
    {"device": {"preset": "ideal", "levels": 64}, "train": {"max_step": 0.2}},
    {"device": {"preset": "rram-nonlinear", "d2d_classes": 3}},
    {"device": {"preset": "soft-bounds", "levels": 32, "c2c": 0.25, "d2d": 0.1, "d2d_classes": 4}},
    {"device": {"preset": "ideal", "levels": 128, "c2c": 0.3}, "train": {"max_step": 0.1}},
    # stuck classes (identity UP/DOWN, C2C 0) beside noisy working classes, pair and single device
    {"device": {"preset": "linear-64", "levels": 16, "stuck": 0.3, "stuck_high": 0.5, "c2c": 0.3, "d2d": 0.1,
                "d2d_classes": 2}, "train": {"max_step": 0.2}},
    {"device": {"preset": "ideal", "levels": 64, "stuck": 0.2, "c2c": 0.2}, "train": {"max_step": 0.1}},
]


@pytest.mark.parametrize("sections", PULSE_CONFIGS)
def test_pulse_lane_equals_model_apply_pulses(sections):
    """Random entries near both ends of the range, every pulse count, c2c from the lane's draws."""
    cfg = cfg_of(**sections)
    fmt = Formats(cfg)
    tables = fmt.device
    w = learn_widths(fmt)
    r = np.random.default_rng(2)
    P_max = fmt.max_pulses
    k = 120
    top = tables.levels - 1
    codes = r.integers(0, tables.levels, (tables.devices, k))
    codes[:, ::4] = top - r.integers(0, 3, (tables.devices, len(codes[0, ::4])))     # saturated pairs
    codes[:, 1::4] = r.integers(0, 3, (tables.devices, len(codes[0, 1::4])))
    classes = r.integers(0, tables.classes, (tables.devices, k))
    pulses = r.integers(-P_max, P_max + 1, k)
    s = r.integers(0, 10_000, k)
    t = int(r.integers(0, 1000))
    want = codes.copy()
    fixed.apply_pulses(fmt, want, classes, pulses, s, t)
    stuck = tables.is_stuck(classes)
    assert np.array_equal(want[stuck], codes[stuck])          # the model keeps every stuck code
    image = PulseLane.table_image(fmt)
    dut = PulseLane(fmt)

    def entry_of(col):
        word, at = 0, 0
        for d in range(tables.devices):
            word |= int(codes[d, col]) << at
            at += w["code_bits"]
            word |= int(classes[d, col]) << at
            at += w["class_bits"]
        return word

    def codes_of(word):
        out, at = [], 0
        for _ in range(tables.devices):
            out.append((word >> at) & ((1 << w["code_bits"]) - 1))
            at += w["code_bits"] + w["class_bits"]
        return out

    got = np.zeros_like(codes)

    async def bench(ctx):
        for col in range(k):
            ctx.set(dut.entry, entry_of(col))
            ctx.set(dut.n_mag, abs(int(pulses[col])))
            ctx.set(dut.neg, int(pulses[col] < 0))
            ctx.set(dut.load, 1)
            await ctx.tick()
            ctx.set(dut.load, 0)
            for p in range(P_max):
                ctx.set(dut.p, p)
                ctx.set(dut.phase_a, 1)
                addr = ctx.get(dut.table_addr)
                await ctx.tick()
                ctx.set(dut.phase_a, 0)
                x0 = int(rng.rand(cfg.train.seed, t, int(s[col]), 2 + 2 * p))
                x1 = int(rng.rand(cfg.train.seed, t, int(s[col]), 3 + 2 * p))
                ctx.set(dut.noise, (x0 >> 15) | ((x1 >> 15) << NOISE_BITS))
                ctx.set(dut.table_data, image[addr])
                ctx.set(dut.phase_b, 1)
                await ctx.tick()
                ctx.set(dut.phase_b, 0)
            got[:, col] = codes_of(ctx.get(dut.entry_out))

    simulate(dut, bench)
    np.testing.assert_equal(got, want)
    assert (got != codes).any()


@pytest.mark.parametrize("sections", [{}, {"network": {"activation": "hard_sigmoid"}, "train": {"batch_size": 3}},
                                      {"network": {"activation": "tanh", "dynamics": "euler"},
                                       "fixed": {"state_frac": 6}, "train": {"batch_size": 2}}])
@pytest.mark.parametrize("paired", [False, True], ids=["HI then LO", "paired"])
def test_correlator_lane_equals_model_correlations(sections, paired):
    """Pairs and biases over a minibatch, including the all-saturated worst case |C| = corr_bound:
    one product a cycle (the LO set's subtracted), or paired (wide learners), a sample's HI and LO
    products in one cycle, with an idle cycle between samples now and then."""
    cfg = cfg_of(**sections)
    fmt = Formats(cfg)
    B = cfg.train.batch_size
    r = np.random.default_rng(3)
    n = cfg.network.n
    cases = []
    for k in range(30):
        v_hi = r.integers(fmt.lo, fmt.hi + 1, (B, n))
        v_lo = r.integers(fmt.lo, fmt.hi + 1, (B, n))
        if k == 0:
            v_hi[:], v_lo[:] = fmt.hi, fmt.lo
            v_lo[:, 1] = fmt.hi
        a_hi, a_lo = fixed.activation(fmt, v_hi), fixed.activation(fmt, v_lo)
        C, Cb = fixed.correlations(fmt, a_hi, a_lo, np.ones((n, n), bool), np.zeros(n, bool))
        cases.append((a_hi, a_lo, int(C[0, 1]), int(Cb[0])))
    dut = CorrelatorLane(fmt, paired=paired)
    got = []

    async def bench(ctx):
        for k, (a_hi, a_lo, _, _) in enumerate(cases):
            for bias in (0, 1):
                ctx.set(dut.clear, 1)
                await ctx.tick()
                ctx.set(dut.clear, 0)
                for b in range(B):
                    operands = [((1 << fmt.fa) if bias else int(a[b, 1]), int(a[b, 0])) for a in (a_hi, a_lo)]
                    if paired:
                        ctx.set(dut.valid, 1)
                        (row, col), (row_lo, col_lo) = operands
                        ctx.set(dut.a_row, row)
                        ctx.set(dut.a_col, col)
                        ctx.set(dut.a_row_lo, row_lo)
                        ctx.set(dut.a_col_lo, col_lo)
                        await ctx.tick()
                        if (k + b) % 3 == 1:           # an idle cycle: operands without valid count nothing
                            ctx.set(dut.valid, 0)
                            await ctx.tick()
                        continue
                    for sub, (row, col) in enumerate(operands):   # row: CorrelatorLane.row_operand
                        ctx.set(dut.valid, 1)
                        ctx.set(dut.a_row, row)
                        ctx.set(dut.sub, sub)
                        ctx.set(dut.a_col, col)
                        await ctx.tick()
                ctx.set(dut.valid, 0)
                for _ in range(CORRELATOR_LATENCY):
                    await ctx.tick()
                got.append(ctx.get(dut.corr))

    simulate(dut, bench)
    want = [v for _, _, c, cb in cases for v in (c, cb)]
    np.testing.assert_equal(np.array(got), np.array(want))
    assert abs(want[0]) == (fmt.corr_bound if fmt.lo < 0 else fmt.corr_bound // 2)   # the widest sum


def set_synapse(ctx, dut: Quantiser, diag: int, rate: int, decay: int) -> None:
    """A synapse's diagonal flag, and its rate-table index and decay steps where the quantiser has them."""
    ctx.set(dut.diag, diag)
    if len(dut.rates) > 1:
        ctx.set(dut.rate, rate)
    if dut.decay_shift:
        ctx.set(dut.decay, decay)


LAYER_RATE_CONFIGS = [
    ({"rounding": "stochastic"}, (0.5, 0.11, 0.2), 0.5),
    ({"rounding": "nearest"}, (0.1, 0.05, 0.1), 0.25),
    ({"rounding": "truncate"}, (0.3, 0.07, 0.02), 1.0),
]


@pytest.mark.parametrize("dsp", [False, True])
@pytest.mark.parametrize("fixed_, layer_lr, lr_decay", LAYER_RATE_CONFIGS)
def test_quantiser_follows_per_layer_rates_and_decay(fixed_, layer_lr, lr_decay, dsp):
    """Each weight layer's LR_MUL and LR_SHIFT, the shift grown by any decay count up to the register's
    31 (and capped at 31 as the model caps it), against model.fixed.quantise."""
    cfg = cfg_of(network={"n": 12, "topology": "layered", "layers": (4, 3, 3, 2)}, fixed=fixed_,
                 train={"layer_lr": layer_lr, "lr_decay": lr_decay, "lr": layer_lr[0]})
    fmt = Formats(cfg)
    from memprop.rtl.learnplan import rate_table

    rates = rate_table(fmt)
    layer_of_rate = [fmt.lr_layers.index(rate) for rate in rates]
    r = np.random.default_rng(3)
    bound = fmt.corr_bound
    k = 240
    C = np.concatenate([r.integers(-bound, bound + 1, k - 40), r.integers(-300, 301, 40)])
    diag = r.integers(0, 2, k)
    rate = r.integers(0, len(rates), k)
    decay = r.choice([0, 1, 2, 3, 12, 31], k) if fmt.decay_shift else np.zeros(k, dtype=np.int64)
    s = r.integers(0, 150, k)
    t = int(r.integers(0, 1000))
    want = np.zeros(k, dtype=np.int64)
    rho = np.zeros(k, dtype=np.int64)          # the draw's top sh bits: the learner aligns them (align_draw)
    draws = rng.rand(cfg.train.seed, t, s, 0).astype(np.int64)
    for i in range(k):
        mul, shift = fmt.learn_shifts(np.array([layer_of_rate[rate[i]]]), int(decay[i]))
        want[i] = fixed.quantise(fmt, C[i:i + 1], shift + diag[i], t, s[i:i + 1], mul)[0]
        rho[i] = draws[i] >> (32 - int(shift[0] + diag[i]))
    dut = Quantiser(fmt, dsp=dsp)
    got = []

    async def bench(ctx):
        for i in range(k):
            set_synapse(ctx, dut, int(diag[i]), int(rate[i]), int(decay[i]))
            got.append(await quantise_strobed(ctx, dut, int(C[i]), int(rho[i])))

    simulate(dut, bench)
    np.testing.assert_equal(np.array(got), want)
    assert np.count_nonzero(want) > k // 4


CARRY_CONFIGS = [
    ({"network": {"n": 12}, "device": {"preset": "reram-array-om"}}, False),
    ({"network": {"n": 12}, "train": {"lr": 0.2, "batch_size": 3}}, True),
    ({"network": {"n": 12, "topology": "layered", "layers": (4, 3, 3, 2)},
      "train": {"layer_lr": (0.5, 0.11, 0.2), "lr_decay": 0.5, "lr": 0.5}}, False),
]


@pytest.mark.parametrize("dsp", [False, True])
@pytest.mark.parametrize("sections, tiny", CARRY_CONFIGS)
def test_quantiser_carries_as_the_model(sections, tiny, dsp):
    """Rounding "carry": pulse counts and new carries against model.fixed.quantise, for random carries
    of either sign (with updates of a few pulses, of a fraction of one and of none), on the constant
    quantiser and on the per-layer, decaying one."""
    cfg = cfg_of(fixed={"rounding": "carry"}, **sections)
    fmt = Formats(cfg)
    from memprop.rtl.learnplan import rate_table

    rates = rate_table(fmt)
    layer_of_rate = [fmt.lr_layers.index(rate) for rate in rates]
    r = np.random.default_rng(5)
    k = 300
    bound = fmt.corr_bound
    small = max(bound >> 6, 2) if tiny else bound
    C = np.concatenate([r.integers(-small, small + 1, k - 60), r.integers(-300, 301, 40), np.zeros(20, np.int64)])
    diag = r.integers(0, 2, k)
    rate = r.integers(0, len(rates), k)
    decay = r.choice([0, 1, 3, 31], k) if fmt.decay_shift else np.zeros(k, dtype=np.int64)
    limit = (1 << fixed.CARRY_FRAC) - 1
    carry = r.integers(-limit, limit + 1, k)
    want, want_carry = np.zeros(k, np.int64), carry.copy()
    for i in range(k):
        mul, shift = fmt.learn_shifts(np.array([layer_of_rate[rate[i]]]), int(decay[i]))
        want[i] = fixed.quantise(fmt, C[i:i + 1], shift + diag[i], 0, np.zeros(1, np.int64), mul,
                                 want_carry[i:i + 1])[0]
    dut = Quantiser(fmt, dsp=dsp)
    got, got_carry = [], []

    async def bench(ctx):
        for i in range(k):
            set_synapse(ctx, dut, int(diag[i]), int(rate[i]), int(decay[i]))
            ctx.set(dut.carry_in, int(carry[i]))
            ctx.set(dut.carry_load, 1)
            got.append(await quantise_strobed(ctx, dut, int(C[i]), 0))
            ctx.set(dut.carry_load, 0)
            got_carry.append(ctx.get(dut.carry_out))

    simulate(dut, bench)
    np.testing.assert_equal(np.array(got), want)
    np.testing.assert_equal(np.array(got_carry), want_carry)
    assert np.count_nonzero(want) > k // 10 and np.count_nonzero(want_carry) > k // 2
