"""Pulse rounding with carry (fixed.rounding "carry", docs/numerics.md section 5): what it promises.

A pulse fires once the accumulated update reaches a whole pulse; updates of opposite signs
cancel in the carry, not on the device; the carry is kept in files and refused where it cannot be.
"""

from __future__ import annotations

import numpy as np
import pytest

from memprop.model import weights
from memprop.model.config import Config
from memprop.model.fixed import FixedParams, carry_round
from memprop.model.numerics import CARRY_FRAC, Formats

SH = 20                        # a pulse is q = 2^SH
ONE = 1 << SH


def rounds(qs, carry=0, max_pulses=7):
    """Pulse counts of a sequence of updates q on one synapse, and its carry at the end."""
    c = np.array([carry])
    out = []
    for q in qs:
        n, c = carry_round(np.array([q]), np.array([SH]), c, max_pulses)
        out.append(int(n[0]))
    return out, int(c[0])


def test_a_quarter_of_a_pulse_fires_on_the_fourth_update():
    assert rounds([ONE // 4] * 4) == ([0, 0, 0, 1], 0)
    # the carry keeps 2^-CARRY_FRAC of a pulse: a third is 85/256, three of them 255/256
    assert rounds([ONE // 3] * 3) == ([0, 0, 0], 255)


def test_updates_of_opposite_signs_cancel_in_the_carry():
    pulses, carry = rounds([ONE // 2, -ONE // 2] * 20)
    assert pulses == [0] * 40 and carry == 0


def test_truncation_toward_zero_keeps_the_sign_of_the_remainder():
    assert rounds([-(ONE + ONE // 4)]) == ([-1], -(1 << CARRY_FRAC) // 4)
    # the carry below a pulse of the other sign: -1/4 + 3/4 = +1/2, no pulse
    assert rounds([3 * ONE // 4], carry=-(1 << CARRY_FRAC) // 4) == ([0], (1 << CARRY_FRAC) // 2)


def test_the_pulse_limit_saturates_the_carry():
    limit = (1 << CARRY_FRAC) - 1
    assert rounds([20 * ONE], max_pulses=3) == ([3], limit)
    assert rounds([-20 * ONE], max_pulses=3) == ([-3], -limit)


def test_the_carry_never_reaches_a_whole_pulse():
    r = np.random.default_rng(0)
    q = r.integers(-8 * ONE, 8 * ONE, 5000)
    c = r.integers(-(1 << CARRY_FRAC) + 1, 1 << CARRY_FRAC, 5000)
    n, c2 = carry_round(q, np.full(5000, SH), c, 3)
    assert np.abs(c2).max() < 1 << CARRY_FRAC and np.abs(n).max() <= 3
    # nothing is lost below the limit: n + carry' is the update + carry, to 2^-CARRY_FRAC
    inside = np.abs(n) < 3
    exact = (q + (c << (SH - CARRY_FRAC))) >> (SH - CARRY_FRAC)
    got = (n << CARRY_FRAC) + c2
    assert np.all(np.abs(exact[inside] - got[inside]) <= 1)


def cfg_for(rounding="carry", lr=0.01):
    return Config.for_algorithm("eqprop", network={"n": 12}, numerics="fixed", fixed={"rounding": rounding},
                                train={"lr": lr}, device={"preset": "reram-array-om"})


def test_a_learning_rate_too_large_for_the_carry_is_refused():
    with pytest.raises(ValueError, match="carry"):
        Formats(cfg_for(lr=1e6))


def test_weight_files_keep_the_carries(tmp_path):
    cfg = cfg_for()
    r = np.random.default_rng(1)
    params = FixedParams.from_float(cfg, np.zeros((12, 12)), np.zeros(12))
    params.carry_w[np.triu_indices(12)] = r.integers(-255, 256, 78)
    params.carry_b[:] = r.integers(-255, 256, 12)
    path = weights.save(tmp_path / "w.npz", params, cfg)
    back, _, _ = weights.load(path)
    assert np.array_equal(back.carry_w, params.carry_w) and np.array_equal(back.carry_b, params.carry_b)


def test_a_file_with_carries_of_a_whole_pulse_is_refused(tmp_path):
    cfg = cfg_for()
    params = FixedParams.from_float(cfg, np.zeros((12, 12)), np.zeros(12))
    params.carry_b[3] = 5
    path = weights.save(tmp_path / "w.npz", params, cfg)
    data = dict(np.load(path))
    data["carry_b"] = np.full(12, 300)
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(weights.WeightFileError, match="whole pulse"):
        weights.load(tmp_path / "bad.npz")
