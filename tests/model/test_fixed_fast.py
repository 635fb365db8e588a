"""The fixed-point model's faster paths against its definitions, on random inputs, bit for bit.

learn() programs every synapse with table look-ups (no c2c noise) or one batched Threefry call
(c2c noise), quantises all synapses and biases in one pass, and relaxes in float64 without
integer round trips: each must give exactly the integers of the step-by-step definition
(correlations, quantise, apply_pulses, fixed_step).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memprop.model import fixed, rng
from memprop.model.config import Config
from memprop.model.fixed import FixedParams, apply_pulses, correlations, quantise
from memprop.model.network import relaxation_kernel
from memprop.model.numerics import Formats

PRESETS = ["ideal", "linear-64", "rram-nonlinear", "soft-bounds", "reram-array-om"]


def fixed_cfg(n: int, train: dict | None = None, **sections) -> Config:
    return Config.for_algorithm("eqprop", network={"n": n}, train=train or {}, numerics="fixed", **sections)


@settings(max_examples=60, deadline=None)
@given(preset=st.sampled_from(PRESETS), c2c=st.sampled_from([None, 0.0, 0.25]), levels=st.sampled_from([None, 16]),
       stuck=st.sampled_from([None, 0.3]), seed=st.integers(0, 2**20), t=st.integers(0, 2**33))
def test_program_equals_apply_pulses(preset, c2c, levels, stuck, seed, t):
    fmt = Formats(fixed_cfg(8, train={"seed": seed}, device={"preset": preset, "c2c": c2c, "levels": levels,
                                                             "d2d_classes": 3, "stuck": stuck, "max_pulses": 31}))
    tb = fmt.device
    r = np.random.default_rng(seed)
    k = 60
    codes = r.integers(0, tb.levels, (tb.devices, k))
    codes[:, :6] = tb.levels - 1                   # some at the top, some at the bottom
    codes[:, 6:12] = 0
    codes[1:, 12:18] = tb.levels - 1               # one device of a pair at the top
    classes = r.integers(0, tb.classes, (tb.devices, k))
    pulses = r.integers(-tb.max_pulses, tb.max_pulses + 1, k)
    pulses[::7] = 0
    s = r.integers(0, 2**40, k)
    want, got = codes.copy(), codes.copy()
    apply_pulses(fmt, want, classes, pulses, s, t)
    fixed._program(fmt, got, classes, pulses, s, t)
    assert np.array_equal(got, want)


def test_program_beyond_the_pulse_limit_is_the_definition():
    fmt = Formats(fixed_cfg(8, device={"preset": "ideal", "levels": 16}))      # P_max < 31 here
    assert fmt.device.max_pulses < 31
    codes = np.array([[3, 14, 15, 12, 0, 1]])
    pulses = np.array([31, 31, 5, -31, -4, -2])
    want = codes.copy()
    apply_pulses(fmt, want, np.zeros_like(codes), pulses, np.arange(6), 0)
    fixed._program(fmt, codes, np.zeros_like(codes), pulses, np.arange(6), 0)
    assert np.array_equal(codes, want)


@settings(max_examples=60, deadline=None)
@given(rounding=st.sampled_from(["stochastic", "nearest", "truncate", "carry"]), seed=st.integers(0, 2**33),
       t=st.integers(0, 2**33), decay=st.integers(0, 30), layered=st.booleans())
def test_quantise_all_equals_quantise(rounding, seed, t, decay, layered):
    if layered:
        cfg = Config.for_algorithm("eqprop", numerics="fixed",
                                   network={"n": 14, "topology": "layered", "layers": (6, 5, 3)},
                                   train={"seed": seed, "layer_lr": (0.05, 0.01), "lr_decay": 0.5},
                                   fixed={"rounding": rounding})
    else:
        cfg = fixed_cfg(12, train={"seed": seed, "lr_decay": 0.5}, fixed={"rounding": rounding})
    fmt = Formats(cfg)
    n = cfg.network.n
    mask = fmt.mask
    plan = fixed._learn_plan(fmt, mask, decay)
    r = np.random.default_rng(seed)
    C = r.integers(-fmt.corr_bound, fmt.corr_bound + 1, (n, n))
    C[r.random((n, n)) < 0.2] = 0
    Cb = r.integers(-fmt.corr_bound, fmt.corr_bound + 1, n)
    ii, jj = plan.ii, plan.jj
    mul_w, shift_w = fmt.learn_shifts(fmt.synapse_layer[ii, jj], decay)
    mul_b, shift_b = fmt.learn_shifts(fmt.bias_layer, decay)
    limit = (1 << fixed.CARRY_FRAC) - 1
    carry_w, carry_b = r.integers(-limit, limit + 1, len(ii)), r.integers(-limit, limit + 1, n)
    carry = np.concatenate([carry_w, carry_b])
    want_w = quantise(fmt, C[ii, jj], shift_w + (ii == jj), t, ii * n + jj, mul_w, carry_w)
    want_b = quantise(fmt, Cb, shift_b, t, n * n + np.arange(n), mul_b, carry_b)
    got = fixed._quantise_all(fmt, np.concatenate([C[ii, jj], Cb]), plan, t, carry)
    assert np.array_equal(got, np.concatenate([want_w, want_b]))
    assert np.array_equal(carry, np.concatenate([carry_w, carry_b]))   # the same carries written back


def reference_learn(fmt: Formats, params: FixedParams, a_hi, a_lo, clamped, decay_steps: int):
    """learn() as the definition writes it: correlations, quantise, apply_pulses, one after another."""
    n = params.mask.shape[0]
    t = params.updates
    ii, jj = np.nonzero(np.triu(params.mask))
    mul_w, shift_w = fmt.learn_shifts(fmt.synapse_layer[ii, jj], decay_steps)
    mul_b, shift_b = fmt.learn_shifts(fmt.bias_layer, decay_steps)
    C, Cb = correlations(fmt, a_hi, a_lo, params.mask, clamped)
    s_w = ii * n + jj
    carry_w = params.carry_w[ii, jj]
    pw = quantise(fmt, C[ii, jj], shift_w + (ii == jj), t, s_w, mul_w, carry_w)
    params.carry_w[ii, jj] = carry_w
    s_b = n * n + np.arange(n)
    pb = quantise(fmt, Cb, shift_b, t, s_b, mul_b, params.carry_b)
    codes_w = params.codes_w[:, ii, jj]
    apply_pulses(fmt, codes_w, params.class_w[:, ii, jj], pw, s_w, t)
    params.codes_w[:, ii, jj] = codes_w
    params.codes_w[:, jj, ii] = codes_w
    apply_pulses(fmt, params.codes_b, params.class_b, pb, s_b, t)
    params.updates += 1
    return pw, pb


@pytest.mark.parametrize("kernel", ["fast", "fast-numpy"])
@pytest.mark.parametrize("device, kind", [({"preset": "ideal"}, "dense"), ({"preset": "linear-64", "c2c": 0.2}, "dense"),
                                          ({"preset": "rram-nonlinear", "stuck": 0.2}, "dense"),
                                          ({"preset": "linear-64", "c2c": 0.2}, "decayed"),
                                          ({"preset": "ideal"}, "layered"),
                                          ({"preset": "reram-array-om"}, "carry"),
                                          ({"preset": "ideal"}, "carry-layered")])
def test_learn_equals_the_definition(kernel, device, kind):
    """Every path of `learn` (the compiled one: one rate, decayed or not) is the definition."""
    layered = kind.endswith("layered")
    rounding = {"rounding": "carry"} if kind.startswith("carry") else {}
    if layered:
        cfg = Config.for_algorithm("eqprop", numerics="fixed", device=device, fixed=rounding,
                                   network={"n": 22, "topology": "layered", "layers": (10, 8, 4)},
                                   train={"seed": 5, "batch_size": 4, "layer_lr": (0.05, 0.02), "lr_decay": 0.5})
    else:
        decay = {"lr_decay": 0.5, "lr_decay_every": 3} if kind == "decayed" else {}
        cfg = fixed_cfg(20, train={"seed": 5, "batch_size": 4, "lr": 0.2, **decay}, device=device, fixed=rounding)
    fmt = Formats(cfg)
    n = cfg.network.n
    r = np.random.default_rng(7)
    params = FixedParams.from_float(cfg, 0.3 * r.standard_normal((n, n)), 0.1 * r.standard_normal(n))
    params.updates = 11
    want = params.copy()
    clamped = np.zeros(n, bool)
    clamped[:2] = layered
    pulsed = False
    with relaxation_kernel(kernel):
        for decay in (0, 3):
            a_hi = r.integers(fmt.lo, fmt.hi + 1, (4, n))
            a_lo = np.clip(a_hi + r.integers(-40, 41, (4, n)), fmt.lo, fmt.hi)
            step = fixed.learn(fmt, params, a_hi, a_lo, clamped, decay)
            pw, pb = reference_learn(fmt, want, a_hi, a_lo, clamped, decay)
            ii, jj = np.nonzero(np.triu(params.mask))
            assert np.array_equal(step.pulses_w[ii, jj], pw) and np.array_equal(step.pulses_b, pb)
            pulsed |= bool(np.abs(pw).max() > 0)
            assert np.array_equal(params.codes_w, want.codes_w) and np.array_equal(params.codes_b, want.codes_b)
            assert params.updates == want.updates
            assert np.array_equal(params.carry_w, want.carry_w) and np.array_equal(params.carry_b, want.carry_b)
    assert pulsed
    if rounding:
        assert np.abs(params.carry_w).max() > 0          # the carries are exercised, not all zero


def textbook_threefry(c0, c1, k0, k1, rounds: int = rng.ROUNDS):
    """Threefry-2x32 as the paper writes it (new arrays every operation)."""
    c0, c1, k0, k1 = (np.asarray(v, dtype=np.uint32) for v in (c0, c1, k0, k1))
    ks = (k0, k1, np.uint32(rng.PARITY) ^ k0 ^ k1)
    with np.errstate(over="ignore"):
        x0, x1 = c0 + ks[0], c1 + ks[1]
        for r in range(rounds):
            x0 = x0 + x1
            x1 = rng._rotl(x1, rng.ROTATIONS[r % 8]) ^ x0
            if r % 4 == 3:
                inj = r // 4 + 1
                x0 = x0 + ks[inj % 3]
                x1 = x1 + ks[(inj + 1) % 3] + np.uint32(inj)
    return x0, x1


@pytest.mark.parametrize("shapes", [((), (), (), ()), ((50,), (), (), ()), ((), (7, 3), (3,), ()),
                                    ((4, 1), (1, 5), (), (5,))])
def test_in_place_threefry_is_the_textbook_one(shapes):
    r = np.random.default_rng(len(shapes[0]) + 3 * len(shapes[1]))
    args = [r.integers(0, 2**32, s, dtype=np.uint64).astype(np.uint32) if s else int(r.integers(0, 2**32))
            for s in shapes]
    got, want = rng.threefry2x32(*args), textbook_threefry(*args)
    for g, w in zip(got, want):
        assert np.shape(g) == np.shape(w) and np.array_equal(g, w)
        assert isinstance(g, np.ndarray) == isinstance(w, np.ndarray)


@pytest.mark.parametrize("activation", ["hard_tanh", "hard_sigmoid"])
@pytest.mark.parametrize("beta, eps", [(1.0, 0.5), (0.25, 0.5), (4.0, 0.25), (0.5, 1.0)])
@pytest.mark.parametrize("sign", [0, 1, -1])
@pytest.mark.parametrize("clamp", [False, True])
def test_float64_relaxation_equals_the_integer_one(activation, beta, eps, sign, clamp):
    cfg = Config.for_algorithm("eqprop", numerics="fixed", train={"beta": beta, "seed": 3},
                               network={"n": 30, "activation": activation, "eps": eps, "max_steps": 40})
    fmt = Formats(cfg)
    assert fixed._float_exact(fmt)
    r = np.random.default_rng(int(beta * 8) + 2 * sign + clamp)
    n, batch = 30, 9
    params = FixedParams.from_float(cfg, 0.4 * r.standard_normal((n, n)), 0.2 * r.standard_normal(n))
    W, b = params.weights(fmt.device)
    x = r.choice([-1, 1], (batch, n))
    drive = fixed.fixed_drive_for(fmt, x)
    if clamp:
        clamped = np.zeros(n, bool)
        clamped[:4] = True
        drive = fixed.FixedDrive(v0=drive.v0, x=drive.x, clamped=clamped)
    target = fixed.fixed_target_for(fmt, r.choice([-1, 1], (batch, n)))
    start = r.integers(fmt.lo, fmt.hi + 1, (batch, n))
    with relaxation_kernel("fast-numpy"):
        got = fixed.fixed_relax(fmt, W, b, drive, target, sign, v_start=start)
        want = fixed.fixed_relax(fmt, W, b, drive, target, sign, v_start=start, trace=True)   # integer loop
    assert got.v.dtype == np.int64
    assert np.array_equal(got.v, want.v)
    assert np.array_equal(got.steps, want.steps) and np.array_equal(got.converged, want.converged)
    assert got.steps.max() > 1
