"""Fixed-point reference model (docs/numerics.md): every formula against an independent Python-int
reimplementation, the no-wrap worst cases, determinism, batch independence, in-situ learning, the
agreement with the float model, configuration errors and fixed-point weight files."""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from memprop.cli import main
from memprop.model import fixed, patterns, training, weights
from memprop.model.config import Config, ConfigError
from memprop.model.fixed import (FixedDrive, FixedParams, FixedTarget, apply_pulses, eqprop_fixed_update,
                                 fixed_drive_for, fixed_readout, fixed_relax, fixed_step, fixed_target_for, learn,
                                 quantise)
from memprop.model.network import Params, drive_for, readout, relax
from memprop.model.numerics import Formats, round_shift
from memprop.model.patterns import corrupt
from tests.model.test_rng import threefry_reference

N, K = 36, 5


def fixed_cfg(n: int = N, network: dict | None = None, train: dict | None = None, **sections) -> Config:
    return Config.for_algorithm("eqprop", network={"n": n, **(network or {})}, train=train or {},
                                numerics="fixed", **sections)


@pytest.fixture(scope="module")
def pats():
    r = np.random.default_rng(123)
    return patterns.from_array(r.choice([-1, 1], (K, N)).astype(np.int8), source="random5x36")


# -- an independent reimplementation of section 4, in Python ints ---------------------------------

def spec_range(act: str, fv: int) -> tuple[int, int]:
    return {"hard_tanh": (-(1 << fv), 1 << fv), "hard_sigmoid": (0, 1 << fv),
            "tanh": (-(1 << (fv + 2)), 1 << (fv + 2))}[act]


def spec_act(act: str, v: int, fv: int) -> int:
    return v if act != "tanh" else math.floor(math.tanh(v / 2**fv) * 2**fv + 0.5)


def spec_der(act: str, v: int, fv: int, fd: int) -> int:
    return 1 if act != "tanh" else math.floor((1 - math.tanh(v / 2**fv) ** 2) * 2**fd + 0.5)


def spec_step(cfg: Config, W, b, v, x, T, units, sigma: int) -> list[list[int]]:
    """docs/numerics.md section 4, written from the text with unbounded Python integers."""
    act, fv, fw = cfg.network.activation, cfg.fixed.state_frac, cfg.fixed.weight_frac
    fd = cfg.fixed.deriv_frac if act == "tanh" else 0
    lo, hi = spec_range(act, fv)
    e = round(-math.log2(cfg.network.eps))
    k = round(-math.log2(cfg.train.beta))
    kp, m = max(k, 0), max(-k, 0)
    s = fw + fv + fd - fv
    R = s + kp + e
    g_in = Fraction(cfg.network.input_gain) * 2 ** (fw + fv)
    assert g_in.denominator == 1
    out = []
    for vb, xb, Tb in zip(v, x, T):
        a = [spec_act(act, int(vj), fv) for vj in vb]
        row = []
        for i, vi in enumerate(vb):
            vi = int(vi)
            acc = sum(int(W[i][j]) * a[j] for j in range(len(vb))) + int(b[i]) * 2**fv + int(xb[i]) * int(g_in)
            g = spec_der(act, vi, fv, fd) * acc
            r = g * 2**kp - vi * 2 ** (s + kp)
            if units[i]:
                r += sigma * (int(Tb[i]) - vi) * 2 ** (s + m)
            delta = (r + 2 ** (R - 1)) // 2**R if R > 0 else r          # // is floor for Python ints
            row.append(min(max(vi + delta, lo), hi))
        out.append(row)
    return out


ACTIVATIONS = [("hard_tanh", "bounded"), ("hard_sigmoid", "bounded"), ("tanh", "euler")]


@st.composite
def step_cases(draw):
    act, dyn = draw(st.sampled_from(ACTIVATIONS))
    fv = draw(st.integers(2, 10))
    fw = draw(st.integers(4, 14))
    e = draw(st.integers(0, 3))
    k = draw(st.integers(-2, 3))
    n = draw(st.integers(2, 7))
    preset = draw(st.sampled_from(["ideal", "linear-64", "rram-nonlinear", "soft-bounds"]))
    levels = draw(st.sampled_from([None, 16]))
    gain = draw(st.sampled_from([0.0, 0.25, 0.5, 1.0]))
    try:
        cfg = fixed_cfg(n, network={"activation": act, "dynamics": dyn, "eps": 2.0**-e, "input_gain": gain},
                        train={"beta": 2.0**-k}, fixed={"state_frac": fv, "weight_frac": fw},
                        device={"preset": preset, "levels": levels})
    except ConfigError:
        assume(False)
    fmt = Formats(cfg)
    t = fmt.device
    top = t.levels - 1
    mode = draw(st.sampled_from(["random", "min", "max"]))         # extreme weights: every code at an end
    batch = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    r = np.random.default_rng(seed)
    if mode == "random":
        codes = r.integers(0, t.levels, (t.devices, n, n))
        codes_b = r.integers(0, t.levels, (t.devices, n))
    else:
        hi_code = np.array([top, 0][: t.devices] if mode == "max" else [0, top][: t.devices])
        codes = np.broadcast_to(hi_code[:, None, None], (t.devices, n, n)).copy()
        codes_b = np.broadcast_to(hi_code[:, None], (t.devices, n)).copy()
    mask = np.ones((n, n), bool) & ~np.eye(n, dtype=bool)
    classes = np.zeros_like(codes)
    params = FixedParams(fixed._symmetric(codes), codes_b, classes, np.zeros_like(codes_b), mask)
    W, b = params.weights(t)
    lo, hi = fmt.lo, fmt.hi
    states = draw(st.sampled_from(["random", "extreme"]))
    if states == "random":
        v = r.integers(lo, hi + 1, (batch, n))
    else:
        v = r.choice([lo, hi], (batch, n))
    x = r.integers(-1, 2, (batch, n))
    T = r.integers(lo, hi + 1, (batch, n))
    units = r.random(n) < 0.7
    sigma = draw(st.sampled_from([-1, 0, 1]))
    return cfg, fmt, W, b, v, x, T, units, sigma


@settings(max_examples=300, deadline=None)
@given(step_cases())
def test_fixed_step_matches_the_spec_in_python_ints(case):
    """Random small cases, extreme weights (every code at min or max) and extreme states: the model
    equals the big-integer spec formula and never leaves [lo, hi]."""
    cfg, fmt, W, b, v, x, T, units, sigma = case
    target = FixedTarget(values=T, units=units)
    got = fixed_step(fmt, W, b, v, x, target, sigma)
    assert got.dtype == np.int64
    assert got.min() >= fmt.lo and got.max() <= fmt.hi
    assert got.tolist() == spec_step(cfg, W.tolist(), b.tolist(), v.tolist(), x.tolist(), T.tolist(),
                                     units.tolist(), sigma)


def test_formats_match_the_spec_constants():
    cfg = fixed_cfg(100)
    f = Formats(cfg)
    assert (f.fv, f.fa, f.fw, f.fd) == (8, 8, 10, 0)
    assert (f.lo, f.hi, f.threshold) == (-256, 256, 0)
    assert f.g_in == 2**17 and f.eps_shift == 1 and f.beta_shift == 0
    assert f.s == 10 and f.round_shift == 11
    t = fixed_cfg(100, network={"activation": "tanh", "dynamics": "euler"}, train={"beta": 0.25})
    ft = Formats(t)
    assert (ft.lo, ft.hi, ft.fd, ft.s, ft.k_frac, ft.k_mul) == (-1024, 1024, 8, 18, 2, 0)
    assert ft.act_lut[0 - ft.lo] == 0 and ft.der_lut[0 - ft.lo] == 256
    assert Formats(fixed_cfg(train={"beta": 4.0})).k_mul == 2
    sig = Formats(fixed_cfg(network={"activation": "hard_sigmoid"}))
    assert (sig.lo, sig.hi, sig.data_lo, sig.data_hi, sig.threshold) == (0, 256, 0, 256, 128)


# -- rounding -----------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(r=st.integers(-(2**52), 2**52), shift=st.integers(0, 30))
def test_round_shift_is_round_half_up(r, shift):
    got = int(round_shift(np.array([r], dtype=np.int64), shift)[0])
    assert got == math.floor(Fraction(r, 2**shift) + Fraction(1, 2))


def test_round_shift_halves_go_up_also_when_negative():
    r = np.array([-7, -6, -5, -3, -2, -1, 1, 2, 3, 5, 6, 7], dtype=np.int64)
    #              -1.75 -1.5 -1.25 -.75 -.5 -.25 .25 .5 .75 1.25 1.5 1.75   (shift 2)
    assert round_shift(r, 2).tolist() == [-2, -1, -1, -1, 0, 0, 0, 1, 1, 1, 2, 2]
    assert round_shift(np.array([-3, -1, 1, 3]), 1).tolist() == [-1, 0, 1, 2]      # -1.5 -> -1, 1.5 -> 2
    assert round_shift(r, 0).tolist() == r.tolist()


# -- the accumulator worst case (section 6) -----------------------------------------------------

def extreme_weight(t) -> list[tuple[tuple[int, ...], int]]:
    """(codes, one per device; weight value) of every weight with |w| = w_max."""
    top = t.levels - 1
    found = []
    if t.devices == 1:
        for c in range(t.levels):
            if abs(int(t.gmap[0][c])) == t.w_max:
                found.append(((c,), int(t.gmap[0][c])))
    else:
        found = [((top, 0), int(t.gmap[0][top] - t.gmap[0][0])), ((0, top), int(t.gmap[0][0] - t.gmap[0][top]))]
    assert found and all(abs(w) == t.w_max for _, w in found)
    return found


WORST_CASES = [
    ("ideal", None, "hard_tanh", 8), ("ideal", None, "hard_sigmoid", 8), ("ideal", None, "tanh", 8),
    ("ideal", None, "tanh", 10), ("linear-256", None, "hard_tanh", 8), ("linear-64", 16, "hard_tanh", 6),
    ("soft-bounds", None, "tanh", 10), ("rram-nonlinear", None, "hard_tanh", 6),
]


@pytest.mark.parametrize("preset, levels, act, fv", WORST_CASES)
def test_accumulator_worst_case_reaches_the_bound_and_fits(preset, levels, act, fv):
    """All |w| = w_max with signs matching the activations at |a| = a_max, the bias at w_max and the
    input current: |acc| equals Formats.acc_bound exactly and fits acc_bits in two's complement,
    one bit less would not. (tanh at fv >= 10 has a_max < 2^fa: the bias term is w_max * 2^fa.)"""
    n = 12
    cfg = fixed_cfg(n, network={"activation": act, "dynamics": "euler" if act == "tanh" else "bounded"},
                    fixed={"state_frac": fv}, device={"preset": preset, "levels": levels})
    fmt = Formats(cfg)
    t = fmt.device
    assert fmt.degree_max == n - 1
    v_at = {int(fmt.act_lut[i]): int(fmt.state_codes[i]) for i in range(len(fmt.state_codes))}
    r = np.random.default_rng(fv)
    for codes, w in extreme_weight(t):
        wsign = 1 if w > 0 else -1
        for total in (+1, -1):
            # activation signs: random where the range allows it (hard_sigmoid: a >= 0 only)
            signs = r.choice([-1, 1], n) if act != "hard_sigmoid" else np.ones(n, dtype=int)
            need = total * wsign
            if act == "hard_sigmoid" and need < 0:
                continue                                        # this sign of the bound is unreachable
            if t.devices == 1:
                if total != wsign:
                    continue                                    # the bias has only this sign at w_max
                signs[:] = need                                 # one weight sign: activations follow it
            # unit 0 is the one under test: w_0j * a_j = total * w_max * a_max for every j
            wcodes = np.zeros((t.devices, n, n), dtype=np.int64)
            for j in range(n):
                pair = codes if (signs[j] * wsign == total or t.devices == 1) else codes[::-1]
                wcodes[:, 0, j] = wcodes[:, j, 0] = pair
            params = FixedParams(wcodes, np.array([codes if total == wsign else codes[::-1]] * n).T.copy(),
                                 np.zeros_like(wcodes), np.zeros((t.devices, n), dtype=np.int64),
                                 fixed.connectivity(cfg.network))
            W, b = params.weights(t)
            a = signs * fmt.a_max
            v = np.array([[v_at[int(ai)] for ai in a]])
            xs = np.full((1, n), total)
            acc_model = fixed.exact_matmul(fixed.activation(fmt, v), W) + (b << fmt.fa) + xs * fmt.g_in
            acc_int = sum(int(W[0, j]) * int(a[j]) for j in range(n)) + int(b[0]) * 2**fmt.fa + total * fmt.g_in
            assert acc_int == int(acc_model[0, 0]) == total * fmt.acc_bound
            bits = fmt.acc_bits
            assert -(2 ** (bits - 1)) <= acc_int <= 2 ** (bits - 1) - 1
            assert not -(2 ** (bits - 2)) <= acc_int <= 2 ** (bits - 2) - 1     # acc_bits is the minimum
            got = fixed_step(fmt, W, b, v, xs, None, 0)
            assert got.min() >= fmt.lo and got.max() <= fmt.hi


def test_update_intermediate_worst_case_reaches_r_bound():
    """hard_tanh: g = +acc_bound at a unit sitting at lo, nudged towards hi: r = r_bound exactly,
    within r_bits, and the step saturates at hi instead of wrapping."""
    n = 10
    for beta in (1.0, 0.25, 4.0):
        cfg = fixed_cfg(n, train={"beta": beta}, device={"preset": "linear-256"})
        fmt = Formats(cfg)
        t = fmt.device
        top = t.levels - 1
        W, b = FixedParams(np.array([np.full((n, n), top), np.zeros((n, n), np.int64)]),
                           np.array([np.full(n, top), np.zeros(n, np.int64)]), np.zeros((2, n, n), np.int64),
                           np.zeros((2, n), np.int64), fixed.connectivity(cfg.network)).weights(t)
        v = np.full((1, n), fmt.hi)
        v[0, 0] = fmt.lo
        x = np.ones((1, n), dtype=np.int64)
        acc = int(sum(int(W[0, j]) * int(v[0, j]) for j in range(n)) + int(b[0]) * 2**fmt.fa + fmt.g_in)
        assert acc == fmt.acc_bound
        r = (acc << fmt.k_frac) - (fmt.lo << (fmt.s + fmt.k_frac)) + ((fmt.hi - fmt.lo) << (fmt.s + fmt.k_mul))
        assert r == fmt.r_bound and r < 2 ** (fmt.r_bits - 1) and r < 2**53
        got = fixed_step(fmt, W, b, v, x, FixedTarget(np.full((1, n), fmt.hi), np.ones(n, bool)), +1)
        assert got[0, 0] == fmt.hi


def test_narrow_accumulator_is_rejected_with_the_needed_width():
    fmt = Formats(fixed_cfg(100))
    need = fmt.acc_bits_min
    assert need == fmt.acc_bound.bit_length() + 1 == 26
    with pytest.raises(ConfigError, match=rf"fixed\.acc_bits={need - 1} is too narrow: .* needs {need} bits"):
        fixed_cfg(100, fixed={"acc_bits": need - 1})
    assert Formats(fixed_cfg(100, fixed={"acc_bits": need})).acc_bits == need
    assert Formats(fixed_cfg(100, fixed={"acc_bits": 40})).acc_bits == 40
    # a sparser network needs fewer bits
    band = Formats(fixed_cfg(100, network={"topology": "band", "band": 90}))
    assert band.acc_bits_min < need


# -- relaxation: determinism, batch independence, convergence ------------------------------------

@pytest.fixture(scope="module")
def trained(pats):
    cfg = fixed_cfg(train={"epochs": 6})
    params, _ = training.train(cfg, pats, progress=False)
    return cfg, params


def test_a_sample_relaxes_the_same_alone_or_in_a_batch(trained, pats):
    cfg, params = trained
    fmt = Formats(cfg)
    W, b = params.weights(fmt.device)
    x = corrupt(np.repeat(pats.values, 8, axis=0), 0.2, np.random.default_rng(4))
    drive = fixed_drive_for(fmt, x)
    target = fixed_target_for(fmt, np.repeat(pats.values, 8, axis=0))
    together = fixed_relax(fmt, W, b, drive, max_steps=20)
    nudged = fixed_relax(fmt, W, b, drive, target, +1, v_start=together.v)
    assert len(set(together.steps.tolist())) > 2            # samples stop at different steps
    assert not together.converged.all() and together.converged.any()
    for i in range(len(x)):
        one = FixedDrive(drive.v0[i:i + 1], drive.x[i:i + 1], drive.clamped)
        alone = fixed_relax(fmt, W, b, one, max_steps=20)
        assert np.array_equal(alone.v[0], together.v[i])
        assert alone.steps[0] == together.steps[i] and alone.converged[0] == together.converged[i]
        alone_n = fixed_relax(fmt, W, b, one, FixedTarget(target.values[i:i + 1], target.units), +1,
                              v_start=alone.v)
        assert np.array_equal(alone_n.v[0], nudged.v[i]) and alone_n.steps[0] == nudged.steps[i]
    # a converged sample is an exact integer fixed point of the step
    full = fixed_relax(fmt, W, b, drive)
    done = full.converged
    again = fixed_step(fmt, W, b, full.v[done], drive.x[done], None, 0)
    assert np.array_equal(again, full.v[done])


def test_trace_records_every_step(trained, pats):
    cfg, params = trained
    fmt = Formats(cfg)
    W, b = params.weights(fmt.device)
    drive = fixed_drive_for(fmt, pats.values[:2])
    res = fixed_relax(fmt, W, b, drive, trace=True)
    assert len(res.trace) == res.steps.max() + 1
    assert np.array_equal(res.trace[0], drive.v0) and np.array_equal(res.trace[-1], res.v)
    assert np.array_equal(res.trace[1], fixed_step(fmt, W, b, drive.v0, drive.x, None, 0))


@pytest.mark.parametrize("device", [{"preset": "rram-nonlinear", "d2d_classes": 4}, {"preset": "ideal"}])
def test_same_seed_identical_codes_different_seed_different(pats, device):
    cfg = fixed_cfg(train={"epochs": 2, "seed": 5}, device=device)
    a, ha = training.train(cfg, pats, progress=False)
    b, hb = training.train(cfg, pats, progress=False)
    c, _ = training.train(cfg.replace(train={"seed": 6}), pats, progress=False)
    for name in ("codes_w", "codes_b", "class_w", "class_b"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.updates == b.updates == 2 * K * 8 // 8
    assert ha.loss == hb.loss and ha.steps == hb.steps
    assert not np.array_equal(a.codes_w, c.codes_w)


# -- pulse quantisation (section 5) ---------------------------------------------------------------

def quant_fmt(rounding: str, max_pulses: int = 31) -> Formats:
    return Formats(fixed_cfg(8, fixed={"rounding": rounding}, device={"preset": "linear-256",
                                                                        "max_pulses": max_pulses}))


def spec_pulses(fmt: Formats, C: int, shift: int, t: int, s: int) -> int:
    mul = fmt.lr_fixed[0]
    q = C * mul
    mag = abs(q)
    mode = fmt.cfg.fixed.rounding
    if mode == "truncate":
        n = mag >> shift
    elif mode == "nearest":
        n = (mag + 2 ** (shift - 1)) >> shift
    else:
        u = threefry_first_word(fmt.cfg.train.seed, t, s, 0)
        n = (mag + (u >> (32 - shift))) >> shift
    n = n if q >= 0 else -n
    return max(-fmt.max_pulses, min(fmt.max_pulses, n))


def threefry_first_word(seed: int, t: int, s: int, d: int) -> int:
    """Draw d: word d mod 2 of the call (t, (s << 5) + d // 2) (docs/numerics.md, section 5)."""
    return threefry_reference(t & 0xFFFFFFFF, ((s << 5) + d // 2) & 0xFFFFFFFF, seed & 0xFFFFFFFF,
                              0x6D656D70)[d % 2]


@settings(max_examples=150, deadline=None)
@given(rounding=st.sampled_from(["truncate", "nearest", "stochastic"]),
       C=st.lists(st.integers(-(2**21), 2**21), min_size=1, max_size=6), t=st.integers(0, 10_000),
       s0=st.integers(0, 5000), extra=st.integers(0, 1))
def test_quantise_matches_the_spec(rounding, C, t, s0, extra):
    fmt = quant_fmt(rounding)
    _, shift = fmt.lr_fixed
    s = np.arange(s0, s0 + len(C))
    got = quantise(fmt, np.array(C, dtype=np.int64), shift + extra, t, s)
    assert got.tolist() == [spec_pulses(fmt, c, shift + extra, t, int(si)) for c, si in zip(C, s)]


def test_nearest_rounds_half_away_from_zero_and_truncate_towards_zero():
    """lr = 2^-6 on the ideal device makes LR_MUL / 2^LR_SHIFT = 128 / 2^22, so C = 2^14 is exactly half
    a pulse: nearest gives +-1 (and +-2 for 1.5 pulses), truncate drops the fraction (towards zero)."""
    C = np.array([3 * 2**14, -3 * 2**14, 2**14, -(2**14), 2**13, -(2**13), 2**14 - 1, -(2**14 - 1)])
    for rounding, expect in (("nearest", [2, -2, 1, -1, 0, 0, 0, 0]), ("truncate", [1, -1, 0, 0, 0, 0, 0, 0])):
        fmt = Formats(fixed_cfg(8, train={"lr": 2.0**-6}, fixed={"rounding": rounding},
                                device={"preset": "ideal", "max_pulses": 31}))
        assert fmt.lr_fixed == (128, 22)
        assert quantise(fmt, C, 22, 0, np.arange(len(C))).tolist() == expect


def test_stochastic_rounding_is_unbiased():
    """Mean pulses over many updates t equal q / 2^L_sh (sd of the mean < 0.5/sqrt(4000)); in
    particular a correlation too small for one pulse still moves the weight on average."""
    fmt = quant_fmt("stochastic")
    mul, shift = fmt.lr_fixed
    one = 2**shift / mul                                               # C of exactly one pulse
    C = np.array([round(0.3 * one), -round(0.3 * one), round(2.7 * one), -round(2.7 * one), 1, 5 * round(one) + 3])
    ts = range(4000)
    n = np.array([quantise(fmt, C, shift, t, np.arange(len(C)) * 97) for t in ts])
    exact = C * mul / 2.0**shift
    assert np.all(np.abs(n - exact) < 1)                               # floor or ceil only
    assert np.allclose(n.mean(axis=0), exact, atol=5 * 0.5 / np.sqrt(len(ts)))
    assert np.abs(n[:, 0]).sum() > 0                                   # tiny q still makes pulses
    trunc = quantise(quant_fmt("truncate"), C, shift, 0, np.arange(len(C)))
    assert np.abs(trunc[:2]).sum() == 0 and trunc[2] == 2              # where truncation makes none


@pytest.mark.parametrize("rounding", ["truncate", "nearest", "stochastic"])
def test_pulses_are_clipped_to_max_pulses(rounding):
    fmt = quant_fmt(rounding, max_pulses=3)
    _, shift = fmt.lr_fixed
    C = np.array([2**30, -(2**30), 2**22, -(2**22), 0])
    assert quantise(fmt, C, shift, 9, np.arange(5)).tolist() == [3, -3, 3, -3, 0]
    assert Formats(fixed_cfg(8, device={"preset": "linear-256"})).max_pulses == 3   # round(0.01 * 255)


# -- pulse programming ----------------------------------------------------------------------------

def spec_apply(fmt: Formats, codes, classes, pulses, s, t) -> list[list[int]]:
    """Section 5 pulse by pulse in Python: potentiate-first pairs, c2c after each pulse."""
    tb = fmt.device
    top = tb.levels - 1
    codes = [list(map(int, c)) for c in codes]
    for k, n in enumerate(pulses):
        for p in range(abs(int(n))):
            if tb.devices == 1:
                dev, pot = 0, n > 0
            else:
                primary = 0 if n > 0 else 1
                dev, pot = (primary, True) if codes[primary][k] < top else (1 - primary, False)
            c, m = codes[dev][k], int(classes[dev][k])
            c = int(tb.up[m][c] if pot else tb.down[m][c])
            if tb.c2c_threshold:
                u = threefry_first_word(fmt.cfg.train.seed, t, int(s[k]), 2 + 2 * p + dev)
                if (u >> 16) < tb.c2c_threshold:
                    c = min(max(c + (1 if (u >> 15) & 1 else -1), 0), top)
            codes[dev][k] = c
    return codes


@settings(max_examples=120, deadline=None)
@given(preset=st.sampled_from(["ideal", "linear-64", "rram-nonlinear", "soft-bounds"]),
       c2c=st.sampled_from([None, 0.0, 0.25]), levels=st.sampled_from([None, 16]),
       seed=st.integers(0, 2**20), t=st.integers(0, 1000))
def test_apply_pulses_matches_the_spec(preset, c2c, levels, seed, t):
    fmt = Formats(fixed_cfg(8, train={"seed": seed}, device={"preset": preset, "c2c": c2c, "levels": levels,
                                                               "d2d_classes": 3}))
    tb = fmt.device
    r = np.random.default_rng(seed)
    k = 12
    codes = r.integers(0, tb.levels, (tb.devices, k))
    codes[:, :2] = tb.levels - 1                   # some at the top, some at the bottom
    codes[:, 2:4] = 0
    classes = r.integers(0, tb.classes, (tb.devices, k))
    pulses = r.integers(-31, 32, k)
    s = r.integers(0, 10_000, k)
    expect = spec_apply(fmt, codes, classes, pulses, s, t)
    apply_pulses(fmt, codes, classes, pulses, s, t)
    assert codes.tolist() == expect
    assert codes.min() >= 0 and codes.max() <= tb.levels - 1


def test_levels_saturate_at_both_ends():
    fmt = Formats(fixed_cfg(8, device={"preset": "ideal", "levels": 16}))
    codes = np.array([[3, 14, 15, 12, 0, 1]])
    apply_pulses(fmt, codes, np.zeros_like(codes), np.array([31, 31, 5, -31, -4, -2]), np.arange(6), 0)
    assert codes.tolist() == [[15, 15, 15, 0, 0, 0]]


def test_differential_pairs_potentiate_first():
    fmt = Formats(fixed_cfg(8, device={"preset": "linear-64"}))
    top = 63
    codes = np.array([[60, 10, 30, 30, 63], [5, 62, 20, 20, 63]])
    pulses = np.array([+5, -4, +3, -3, +2])
    apply_pulses(fmt, codes, np.zeros_like(codes), pulses, np.arange(5), 0)
    assert codes[:, 0].tolist() == [top, 5 - 2]      # G+ up 3 to the top, then G- down 2
    assert codes[:, 1].tolist() == [10 - 3, top]     # G- up 1 to the top, then G+ down 3
    assert codes[:, 2].tolist() == [33, 20]          # only G+ moves while it can
    assert codes[:, 3].tolist() == [30, 23]          # only G- moves while it can
    assert codes[:, 4].tolist() == [63, 61]          # both at the top: depress the partner
    w = fmt.device.weight(codes, np.zeros_like(codes))
    g = fmt.device.gmap[0]
    assert w[0] > g[60] - g[5] and w[1] < g[10] - g[62]   # every pulse moved w the right way


def test_cycle_to_cycle_noise_only_when_enabled():
    k = 4000
    s = np.arange(k)
    outcome = {}
    for c2c in (0.0, 0.2):
        fmt = Formats(fixed_cfg(8, device={"preset": "linear-256", "c2c": c2c}))
        codes = np.full((2, k), 100)
        apply_pulses(fmt, codes, np.zeros_like(codes), np.full(k, 2), s, 7)
        outcome[c2c] = codes
    clean = outcome[0.0]
    assert np.all(clean[0] == 102) and np.all(clean[1] == 100)
    noisy = outcome[0.2]
    assert np.all(noisy[1] == 100)                          # only the pulsed device gets noise
    err = noisy[0] - 102
    assert set(np.unique(err)) <= {-2, -1, 0, 1, 2}
    # 2 pulses, each a +-1 error with probability 0.2: err = 0 unless no hit (0.64) or two opposite
    # hits (0.04 / 2), so P(err != 0) = 0.34 (sd of the estimate 0.0075: bounds at 4 sd)
    hits = (err != 0).mean()
    assert abs(hits - 0.34) < 0.03
    assert abs(err.mean()) < 0.03                           # unbiased +-1 (sd 0.01)


# -- in-situ learning ------------------------------------------------------------------------------

def spec_learn_pulses(fmt: Formats, a_hi, a_lo, mask, clamped, t):
    """C_ij, C_i and the pulse counts of section 5 in Python ints."""
    n = mask.shape[0]
    mul, shift = fmt.lr_fixed
    pw = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        for j in range(i, n):
            if mask[i, j]:
                C = sum(int(a_hi[b, i]) * int(a_hi[b, j]) - int(a_lo[b, i]) * int(a_lo[b, j])
                        for b in range(len(a_hi)))
                pw[i, j] = spec_pulses(fmt, C, shift + (i == j), t, i * n + j)
    pb = [0 if clamped[i] else spec_pulses(fmt, sum(int(a_hi[b, i]) - int(a_lo[b, i]) for b in range(len(a_hi)))
                                           * 2**fmt.fa, shift, t, n * n + i) for i in range(n)]
    return pw, np.array(pb)


@pytest.mark.parametrize("rounding", ["truncate", "nearest", "stochastic"])
def test_learn_matches_the_spec_including_the_diagonal(rounding):
    n = 9
    cfg = fixed_cfg(n, network={"self_connections": True}, fixed={"rounding": rounding},
                    device={"preset": "rram-nonlinear", "d2d_classes": 2}, train={"seed": 3, "lr": 1.0})
    fmt = Formats(cfg)
    r = np.random.default_rng(1)
    params = FixedParams.from_float(cfg, *(lambda W: (W + W.T, np.zeros(n)))(r.uniform(-0.2, 0.2, (n, n))))
    params.updates = 17
    a_lo = r.integers(fmt.lo, fmt.hi + 1, (8, n))
    a_hi = np.clip(a_lo + r.integers(-200, 201, (8, n)), fmt.lo, fmt.hi)
    clamped = np.zeros(n, bool)
    before = params.copy()
    step = learn(fmt, params, a_hi, a_lo, clamped)
    pw, pb = spec_learn_pulses(fmt, a_hi, a_lo, params.mask, clamped, 17)
    assert np.array_equal(step.pulses_w, pw) and np.array_equal(step.pulses_b, pb)
    assert np.abs(pw).max() > 0 and np.abs(np.diag(pw)).max() > 0
    ii, jj = np.nonzero(np.triu(params.mask))
    expect = spec_apply(fmt, before.codes_w[:, ii, jj], before.class_w[:, ii, jj], pw[ii, jj], ii * n + jj, 17)
    assert params.codes_w[:, ii, jj].tolist() == expect
    assert params.updates == 18


def test_codes_stay_symmetric_and_inside_the_mask(pats):
    """Dense, band and layered networks: after learning the codes are symmetric, every code outside
    the mask is untouched, and learning did change codes inside it."""
    cases = [fixed_cfg(train={"epochs": 3, "lr": 0.1}, device={"preset": "linear-64"}),
             fixed_cfg(network={"topology": "band", "band": 20}, train={"epochs": 3, "lr": 0.1},
                       device={"preset": "rram-nonlinear", "d2d_classes": 4})]
    for cfg in cases:
        fmt = Formats(cfg)
        init = FixedParams.from_float(cfg, *(lambda p: (p.W, p.b))(
            Params.initial(cfg.network, cfg.train.init_scale, np.random.default_rng(cfg.train.seed))))
        params, _ = training.train(cfg, pats, progress=False)
        assert np.array_equal(params.codes_w, np.swapaxes(params.codes_w, 1, 2))
        assert np.array_equal(params.class_w, np.swapaxes(params.class_w, 1, 2))
        changed = np.any(params.codes_w != init.codes_w, axis=0)
        assert not np.any(changed & ~params.mask)
        assert np.any(changed & params.mask)
        assert params.codes_w.min() >= 0 and params.codes_w.max() < fmt.device.levels
    # layered: learning only between adjacent layers, input biases untouched
    cfg = fixed_cfg(18, network={"topology": "layered", "layers": (8, 6, 4)}, train={"lr": 0.2})
    fmt = Formats(cfg)
    r = np.random.default_rng(0)
    W0 = np.triu(r.uniform(-0.3, 0.3, (18, 18)), 1)
    params = FixedParams.from_float(cfg, W0 + W0.T, np.zeros(18))
    start = params.copy()
    for _ in range(5):
        x = r.choice([-1.0, 1.0], (8, 8))
        y = r.choice([-1.0, 1.0], (8, 4))
        eqprop_fixed_update(fmt, params, fixed_drive_for(fmt, x), fixed_target_for(fmt, y))
    changed = np.any(params.codes_w != start.codes_w, axis=0)
    assert not np.any(changed & ~params.mask) and np.any(changed)
    assert not np.any(params.codes_w[:, :8, :8] != start.codes_w[:, :8, :8])      # no lateral inputs
    assert not np.any(params.codes_w[:, :8, 14:] != start.codes_w[:, :8, 14:])    # no skip connections
    assert np.array_equal(params.codes_b[:, :8], start.codes_b[:, :8])            # clamped: no bias update
    assert np.any(params.codes_b[:, 8:] != start.codes_b[:, 8:])


def test_nudge_variants_run_and_differ(pats):
    results = {}
    for nudge in ("positive", "random_sign", "centered"):
        cfg = fixed_cfg(train={"nudge": nudge, "epochs": 1})
        params, history = training.train(cfg, pats, progress=False)
        results[nudge] = params.codes_w
        assert np.isfinite(history.loss[0])
    assert not np.array_equal(results["positive"], results["centered"])
    assert not np.array_equal(results["positive"], results["random_sign"])


# -- float vs fixed -------------------------------------------------------------------------------

@pytest.mark.parametrize("epochs", [0, 30])
def test_fixed_relaxation_agrees_with_the_float_model(pats, epochs):
    """Same weights (float weights programmed into the ideal device, read back): the fixed fixed point
    is within a few state LSBs of the float one and the readouts agree.

    Measured (3 pattern draws, 2000 recalls each at p = 0.1): max |v_fixed - v_float| 2.1-4.4 LSB;
    identical readouts 98.0-99.4% untrained or after 5 epochs (the rest: units within a few LSB of
    the threshold), 100% after 30 epochs. Thresholds with margin: <= 8 LSB, >= 95% / >= 99.5%,
    and every disagreeing unit is within 8 LSB of the threshold in the float model."""
    cfg = Config.for_algorithm("eqprop", network={"n": N}, train={"epochs": epochs})
    params, _ = training.train(cfg, pats, progress=False)
    fcfg = cfg.replace(numerics="fixed")
    fmt = Formats(fcfg)
    W, b = FixedParams.from_float(fcfg, params.W, params.b).weights(fmt.device)
    assert np.abs(W / 1024.0 - params.W).max() <= 2.0**-11 + 1e-12               # nearest code
    same_weights = Params(W=W / 2.0**fmt.fw, b=b / 2.0**fmt.fw, mask=params.mask)
    x = corrupt(np.repeat(pats.values, 400, axis=0), 0.1, np.random.default_rng(5))
    flt = relax(same_weights, cfg.network, drive_for(cfg.network, x))
    fix = fixed_relax(fmt, W, b, fixed_drive_for(fmt, x))
    assert flt.converged.all() and fix.converged.all()
    lsb = np.abs(fix.v - flt.v * 2**fmt.fv)
    assert lsb.max() <= 8
    agree = readout(cfg.network, flt.v) == fixed_readout(fmt, fix.v)
    assert agree.all(axis=1).mean() >= (0.995 if epochs else 0.95)
    assert np.all(np.abs(flt.v[~agree]) * 2**fmt.fv <= 8)


# -- configuration errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("sections, message", [
    ({"network": {"eps": 0.3}}, r"network\.eps=0\.3 must be a power of two"),
    ({"train": {"beta": 0.3}}, r"train\.beta=0\.3 must be a power of two"),
    ({"train": {"beta": 3.0}}, r"train\.beta=3\.0 must be a power of two"),
    ({"network": {"input_gain": 0.3}}, r"input_gain=0\.3 is not a multiple of 2\^-18"),
    ({"device": {"preset": "nope"}}, r"unknown device preset 'nope'"),
    ({"device": {"levels": 1}}, r"device\.levels"),
    ({"device": {"levels": 8192}}, r"device\.levels"),
    ({"fixed": {"acc_bits": 20}}, r"fixed\.acc_bits=20 is too narrow.* needs 26 bits"),
    ({"fixed": {"state_frac": 1}}, r"fixed\.state_frac"),
    ({"fixed": {"rounding": "banker"}}, r"fixed\.rounding"),
])
def test_bad_fixed_configs_are_clear_config_errors(sections, message):
    network = {"n": 100, **sections.pop("network", {})}
    with pytest.raises(ConfigError, match=message) as info:
        Config.for_algorithm("eqprop", network=network, numerics="fixed", **sections)
    assert "\n" not in str(info.value)
    # the same values are fine in the float model where they are not shifts or devices
    if not set(sections) & {"fixed", "device"} and "input_gain" not in message:
        Config.for_algorithm("eqprop", network=network, **sections)


def test_rbp_and_hopfield_rules_have_no_fixed_point_model():
    for algo in ("rbp", "hebbian"):
        with pytest.raises(ConfigError, match=rf"fixed-point numerics implement the hardware's in-situ EqProp, "
                                              rf"not '{algo}'"):
            Config.for_algorithm(algo, numerics="fixed")


# -- fixed-point weight files through the command line ---------------------------------------------

def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_clean_error(result, pattern: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def fixed_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fixed") / "W.npz"
    result = run("train", "--algo", "eqprop", "--numerics", "fixed", "--device", "linear-256", "--epochs", "2",
                 "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert "fixed, device linear-256" in result.output and "2 epochs" in result.output
    return out


def test_fixed_weight_file_trains_and_evaluates(fixed_file):
    params, cfg, meta = weights.load(fixed_file)
    assert isinstance(params, FixedParams) and cfg.numerics == "fixed" and cfg.device.preset == "linear-256"
    assert params.codes_w.shape == (2, 100, 100) and params.updates == 2 * 16
    assert meta["numerics"] == "fixed" and meta["fingerprint"] == cfg.fingerprint
    result = run("eval", "--weights", fixed_file, "--flip", "0.1", "--trials", "5", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["trials"] == 5 and len(report["per_class"]) == 16 and 0 <= report["accuracy"] <= 1
    assert report["fingerprint"] == cfg.fingerprint
    again = run("eval", "--weights", fixed_file, "--flip", "0.1", "--trials", "5", "--json")
    assert json.loads(again.output) == report


def _corrupt(src: Path, dst: Path, edit) -> Path:
    with np.load(src) as z:
        data = {k: z[k] for k in z.files}
    edit(data)
    np.savez(dst, **data)
    return dst


def _out_of_range(d):
    d["codes_w"][0, 3, 7] = d["codes_w"][0, 7, 3] = 256


def _negative_bias(d):
    d["codes_b"][1, 0] = -1


def _asymmetric(d):
    d["codes_w"][1, 2, 5] = (d["codes_w"][1, 5, 2] + 1) % 256


def _wrong_shape(d):
    d["codes_b"] = d["codes_b"][:, :50]


def _float_codes(d):
    d["codes_w"] = d["codes_w"].astype(np.float64)


def _bad_class(d):
    d["class_b"][0, 0] = 1


@pytest.mark.parametrize("edit, message", [
    (_out_of_range, r"codes_w has codes outside 0\.\.255"),
    (_negative_bias, r"codes_b has codes outside 0\.\.255"),
    (_asymmetric, r"codes_w is not symmetric"),
    (_wrong_shape, r"codes_b is int64\(2, 50\), expected integers of shape \(2, 100\)"),
    (_float_codes, r"codes_w is float64\(2, 100, 100\), expected integers"),
    (_bad_class, r"class_b has device classes outside 0\.\.0"),
])
def test_corrupted_fixed_weight_files_are_one_line_errors(fixed_file, tmp_path, edit, message):
    bad = _corrupt(fixed_file, tmp_path / "bad.npz", edit)
    assert_clean_error(run("eval", "--weights", bad, "--flip", "0.1", "--trials", "2"), message)
