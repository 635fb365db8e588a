"""Learning rules: Hopfield rules (Hebbian, Storkey), EqProp and RBP gradient checks, update hygiene."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memprop.model.config import Config
from memprop.model.masks import band_mask, connectivity
from memprop.model.network import Params, drive_for, relax, target_for
from memprop.model.rules import cost, eqprop_update, hebbian, hopfield_recall, rbp_update, storkey


# -- Hopfield rules ---------------------------------------------------------------------------

def test_hebbian_single_pattern_recalled_from_corrupted_copy():
    rng = np.random.default_rng(3)
    n = 64
    x = rng.choice([-1, 1], (1, n)).astype(np.int8)
    W = hebbian(x, ~np.eye(n, dtype=bool))
    noisy = x.copy()
    flipped = rng.choice(n, 20, replace=False)       # 20 of 64 pixels wrong (31%)
    noisy[0, flipped] *= -1
    out = hopfield_recall(W, noisy, max_steps=50)
    assert out.dtype == np.int8
    assert np.array_equal(out, x)
    # the inverted pattern is the other attractor; a mostly-inverted copy goes there
    inverted = -noisy
    assert np.array_equal(hopfield_recall(W, inverted, max_steps=50), -x)


def test_hebbian_formula():
    x = np.array([[1, -1, 1, 1], [1, 1, -1, 1]], dtype=np.int8)
    W = hebbian(x, np.ones((4, 4), dtype=bool))
    # (1/N) sum_mu x x^T with zero diagonal
    expected = np.array([[0, 0, 0, 2], [0, 0, -2, 0], [0, -2, 0, 0], [2, 0, 0, 0]]) / 4
    assert np.array_equal(W, expected)
    # restricted to the mask
    assert np.array_equal(hebbian(x, band_mask(4, 1)), expected * band_mask(4, 1))


def test_storkey_hand_computed_two_patterns():
    # Storkey (1997), N = 4, W_ij += (1/N)(x_i x_j - x_i h_ji - h_ij x_j),
    # h_ij = sum_{k != i, j} W_ik x_k, zero diagonal.
    #
    # Pattern 1, x = (1, -1, 1, -1); W = 0 so h = 0 and W = (1/4) x x^T off the diagonal:
    #   4 W01 = -1, 4 W02 = 1, 4 W03 = -1, 4 W12 = -1, 4 W13 = 1, 4 W23 = -1.
    # Pattern 2, x = (1, 1, -1, -1):
    #   (0,1): h01 = W02 x2 + W03 x3 = (1/4)(-1) + (-1/4)(-1) = 0;  h10 = W12 x2 + W13 x3 = (1/4) - (1/4) = 0
    #          dW01 = (1/4)(1*1 - 0 - 0) = 1/4            -> W01 = -1/4 + 1/4 = 0
    #   (0,2): h02 = W01 x1 + W03 x3 = -1/4 + 1/4 = 0;     h20 = W21 x1 + W23 x3 = -1/4 + 1/4 = 0
    #          dW02 = (1/4)(1*(-1)) = -1/4                 -> W02 = 1/4 - 1/4 = 0
    #   (0,3): h03 = W01 x1 + W02 x2 = -1/4 - 1/4 = -1/2;  h30 = W31 x1 + W32 x2 = 1/4 + 1/4 = 1/2
    #          dW03 = (1/4)(1*(-1) - 1*(1/2) - (-1/2)(-1)) = (1/4)(-2) = -1/2
    #                                                      -> W03 = -1/4 - 1/2 = -3/4
    #   (1,2): h12 = W10 x0 + W13 x3 = -1/4 - 1/4 = -1/2;  h21 = W20 x0 + W23 x3 = 1/4 + 1/4 = 1/2
    #          dW12 = (1/4)(1*(-1) - 1*(1/2) - (-1/2)(-1)) = -1/2
    #                                                      -> W12 = -1/4 - 1/2 = -3/4
    #   (1,3): h13 = W10 x0 + W12 x2 = -1/4 + 1/4 = 0;     h31 = W30 x0 + W32 x2 = -1/4 + 1/4 = 0
    #          dW13 = (1/4)(1*(-1)) = -1/4                 -> W13 = 1/4 - 1/4 = 0
    #   (2,3): h23 = W20 x0 + W21 x1 = 1/4 - 1/4 = 0;      h32 = W30 x0 + W31 x1 = -1/4 + 1/4 = 0
    #          dW23 = (1/4)((-1)(-1)) = 1/4                -> W23 = -1/4 + 1/4 = 0
    # (Hebbian would give W03 = W12 = -1/2 here, so the h terms are really exercised.)
    # All values are multiples of 1/4: exact in binary floating point.
    x = np.array([[1, -1, 1, -1], [1, 1, -1, -1]], dtype=np.int8)
    W = storkey(x, np.ones((4, 4), dtype=bool))
    expected = np.array([
        [0.0, 0.0, 0.0, -0.75],
        [0.0, 0.0, -0.75, 0.0],
        [0.0, -0.75, 0.0, 0.0],
        [-0.75, 0.0, 0.0, 0.0],
    ])
    assert np.array_equal(W, expected)
    # after the first pattern alone: (1/4) x x^T, zero diagonal
    W1 = storkey(x[:1], np.ones((4, 4), dtype=bool))
    assert np.array_equal(W1, (np.outer(x[0], x[0]) - np.eye(4)) / 4)


def _storkey_reference(patterns, mask):
    """The formula written out with loops, as in Storkey (1997)."""
    n = patterns.shape[1]
    W = np.zeros((n, n))
    for x in patterns.astype(float):
        h = np.array([[sum(W[i, k] * x[k] for k in range(n) if k not in (i, j)) for j in range(n)]
                      for i in range(n)])
        dW = np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                if i != j:
                    dW[i, j] = (x[i] * x[j] - x[i] * h[j, i] - h[i, j] * x[j]) / n
        W = W + dW * mask
    return W


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=3, max_value=7), st.integers(min_value=1, max_value=4),
       st.integers(min_value=0, max_value=2), st.integers(min_value=0, max_value=2**32 - 1))
def test_storkey_matches_loop_reference(n, k, cut, seed):
    rng = np.random.default_rng(seed)
    x = rng.choice([-1, 1], (k, n)).astype(np.int8)
    mask = band_mask(n, min(cut, n - 1)) & ~np.eye(n, dtype=bool)
    W = storkey(x, mask)
    np.testing.assert_allclose(W, _storkey_reference(x, mask), rtol=0, atol=1e-12)
    assert np.array_equal(W, W.T)
    assert not np.any(W[~mask])


def test_storkey_stores_correlated_patterns_better_than_hebbian():
    # 3 strongly correlated patterns of N=32 (each 6 pixels away from a common prototype),
    # 10 draws: Storkey keeps every pattern a fixed point in all 10 (measured), Hebbian
    # loses at least one pattern in 3 of the 10 (measured: draws 3, 4, 9).
    n = 32
    mask = ~np.eye(n, dtype=bool)
    stable = {"storkey": 0, "hebbian": 0}
    for seed in range(10):
        rng = np.random.default_rng(seed)
        proto = rng.choice([-1, 1], n)
        pats = np.repeat(proto[None], 3, axis=0)
        for mu in range(3):
            pats[mu, rng.choice(n, 6, replace=False)] *= -1
        pats = pats.astype(np.int8)
        for rule in (storkey, hebbian):
            out = hopfield_recall(rule(pats, mask), pats, max_steps=100)
            stable[rule.__name__] += bool(np.all(out == pats))
    assert stable["storkey"] == 10
    assert stable["hebbian"] <= 8


# -- gradient checks --------------------------------------------------------------------------
#
# The cost J(theta) = mean over the batch of C(v*(theta)) at the free fixed point v*, with
# C = 1/2 sum (T - v)^2. We perturb each tied symmetric pair W_ij = W_ji *together* (and
# each bias) by +-h and relax again from the same start (central differences).
#
# Conventions (rules.py): for a tied pair theta, E contains -W_ij rho_i rho_j once, so the
# EqProp contrast (rho_i rho_j at beta minus at 0)/beta -> -dJ/dtheta: dW = -dJ/dtheta,
# db = -dJ/db. RBP returns 1/2 (y_i v_j + y_j v_i) = -1/2 dJ/dtheta and db = y = -dJ/db.

TOL = 1e-12          # relaxation stops when max|dv| <= 1e-12: states are exact to ~1e-12
FD_H = 1e-5          # finite-difference step: truncation ~h^2 = 1e-10, relaxation noise ~TOL/h = 1e-7


def _grad_setup(algo, activation, dynamics, *, n=6, scale=0.3, beta=1e-4, nudge="positive",
                self_connections=False, seed=0, batch=3):
    cfg = Config.for_algorithm(
        algo,
        network={"n": n, "activation": activation, "dynamics": dynamics, "tol": TOL,
                 "max_steps": 100_000, "eps": 0.5, "self_connections": self_connections},
        train={"beta": beta, "nudge": nudge},
    )
    rng = np.random.default_rng(seed)
    params = Params.initial(cfg.network, scale, rng)
    params.b = rng.uniform(-0.1, 0.1, n)
    x = rng.choice([-1, 1], (batch, n)).astype(np.int8)   # inputs (no clamped units: dense)
    y = rng.choice([-1, 1], (batch, n)).astype(np.int8)   # targets differ from the inputs
    return cfg, params, x, y


def _cost_at_fixed_point(cfg, params, x, y):
    net = cfg.network
    relaxed = relax(params, net, drive_for(net, x))
    assert relaxed.converged.all()
    return float(cost(relaxed.v, target_for(net, y)).mean()), relaxed.v


def _finite_difference(cfg, params, x, y, h=FD_H):
    n = cfg.network.n
    gW, gb = np.zeros((n, n)), np.zeros(n)

    def J(p):
        return _cost_at_fixed_point(cfg, p, x, y)[0]

    for i in range(n):
        for j in range(i, n):
            if not params.mask[i, j]:
                continue
            plus, minus = params.copy(), params.copy()
            plus.W[i, j] += h
            minus.W[i, j] -= h
            if i != j:                       # the tied pair moves together
                plus.W[j, i] += h
                minus.W[j, i] -= h
            gW[i, j] = gW[j, i] = (J(plus) - J(minus)) / (2 * h)
        plus, minus = params.copy(), params.copy()
        plus.b[i] += h
        minus.b[i] -= h
        gb[i] = (J(plus) - J(minus)) / (2 * h)
    return gW, gb


def _direction(update, cfg, params, x, y):
    net = cfg.network
    return update(params, net, cfg.train, drive_for(net, x), target_for(net, y), np.random.default_rng(0))


@pytest.mark.parametrize("activation, dynamics, scale", [
    ("tanh", "euler", 0.3),
    # hard_tanh with bounded dynamics: weights small enough that every state stays strictly
    # inside (-1, 1), where the projection is inactive and rho' = 1 (checked below).
    ("hard_tanh", "bounded", 0.15),
])
@pytest.mark.parametrize("self_connections", [False, True])
def test_eqprop_direction_matches_finite_difference_gradient(activation, dynamics, scale, self_connections):
    beta = 1e-4
    cfg, params, x, y = _grad_setup("eqprop", activation, dynamics, scale=scale, beta=beta,
                                    self_connections=self_connections)
    _, v = _cost_at_fixed_point(cfg, params, x, y)
    assert np.abs(v).max() < 0.95                      # inside the box: the theorem applies
    gW, gb = _finite_difference(cfg, params, x, y)
    u = _direction(eqprop_update, cfg, params, x, y)
    scale_g = max(np.abs(gW).max(), np.abs(gb).max())
    assert scale_g > 0.1                               # a non-trivial gradient
    # One-sided EqProp is exact only as beta -> 0; its bias is O(beta) (the finite difference
    # and the relaxation add < 1e-6). Measured max errors at beta = 1e-4: 1.3e-4 (tanh) and
    # 3.4e-4 / 4.1e-4 (hard_tanh) against gradients of size 0.76-1.8, i.e. 1.6e-4 to 2.4e-4
    # relative. We allow 2e-3 relative (~8x margin); a wrong sign or a factor 1/2 would be
    # off by ~0.3-1, and a wrong diagonal convention (self_connections=True) fails too.
    tol = 2e-3 * scale_g
    np.testing.assert_allclose(u.dW, -gW, rtol=0, atol=tol)
    np.testing.assert_allclose(u.db, -gb, rtol=0, atol=tol)
    assert np.array_equal(u.dW == 0, ~params.mask)     # zero exactly outside the mask


def test_rbp_direction_matches_finite_difference_gradient():
    for self_connections in (False, True):
        cfg, params, x, y = _grad_setup("rbp", "tanh", "additive", self_connections=self_connections)
        gW, gb = _finite_difference(cfg, params, x, y)
        u = _direction(rbp_update, cfg, params, x, y)
        assert np.abs(gW).max() > 0.1
        # RBP is exact at the fixed point: the only errors are the finite difference (~1e-10)
        # and relaxation noise (TOL/h ~ 1e-7). Measured max error 5e-11 / 8e-11; allow 1e-6.
        np.testing.assert_allclose(u.dW, -0.5 * gW, rtol=0, atol=1e-6)
        np.testing.assert_allclose(u.db, -gb, rtol=0, atol=1e-6)


def test_centered_nudging_is_closer_than_one_sided():
    # At a deliberately large beta the one-sided estimate has an O(beta) bias, the centered
    # one O(beta^2). Measured at beta = 0.05 (tanh): errors 0.063 vs 0.0039 (16x).
    beta = 0.05
    cfg_pos, params, x, y = _grad_setup("eqprop", "tanh", "euler", beta=beta, nudge="positive")
    cfg_cen = cfg_pos.replace(train={"nudge": "centered"})
    gW, gb = _finite_difference(cfg_pos, params, x, y)
    err = {}
    for name, cfg in (("positive", cfg_pos), ("centered", cfg_cen)):
        u = _direction(eqprop_update, cfg, params, x, y)
        err[name] = max(np.abs(u.dW + gW).max(), np.abs(u.db + gb).max())
    assert err["centered"] < err["positive"] / 5
    assert err["centered"] < 0.02
    # and at a small beta the centered estimate is essentially exact (measured 1.6e-8)
    cfg_small = cfg_cen.replace(train={"beta": 1e-4})
    u = _direction(eqprop_update, cfg_small, params, x, y)
    np.testing.assert_allclose(u.dW, -gW, rtol=0, atol=1e-6)
    np.testing.assert_allclose(u.db, -gb, rtol=0, atol=1e-6)


def test_random_sign_nudging_uses_both_signs_and_estimates_the_gradient():
    cfg, params, x, y = _grad_setup("eqprop", "tanh", "euler", beta=1e-4, nudge="random_sign")
    gW, _ = _finite_difference(cfg, params, x, y)
    net = cfg.network
    rng = np.random.default_rng(1)
    for _ in range(6):
        u = eqprop_update(params, net, cfg.train, drive_for(net, x), target_for(net, y), rng)
        np.testing.assert_allclose(u.dW, -gW, rtol=0, atol=2e-3 * np.abs(gW).max())


def test_loss_reported_is_the_free_phase_cost():
    cfg, params, x, y = _grad_setup("eqprop", "tanh", "euler")
    J, _ = _cost_at_fixed_point(cfg, params, x, y)
    u = _direction(eqprop_update, cfg, params, x, y)
    assert u.loss == pytest.approx(J, abs=1e-9)
    assert u.steps > 0


# -- update hygiene: symmetry, mask, clipping --------------------------------------------------

@pytest.mark.parametrize("algo", ["eqprop", "rbp"])
@pytest.mark.parametrize("network", [
    {"n": 16, "topology": "band", "band": 5},
    {"n": 12, "topology": "layered", "layers": (5, 4, 3)},
])
def test_updates_keep_W_symmetric_and_inside_the_mask(algo, network):
    cfg = Config.for_algorithm(algo, network=network, train={"lr": 0.5, "max_step": 0.05})
    net = cfg.network
    rng = np.random.default_rng(11)
    params = Params.initial(net, 0.1, rng)
    mask = connectivity(net)
    assert np.array_equal(params.mask, mask)
    assert np.array_equal(params.W, params.W.T) and not np.any(params.W[~mask])
    n_in = net.layers[0] if net.layered else net.n
    n_out = net.layers[-1] if net.layered else net.n
    update = eqprop_update if algo == "eqprop" else rbp_update
    before = params.W.copy()
    for _ in range(5):
        x = rng.choice([-1, 1], (4, n_in)).astype(np.float64)
        y = rng.choice([-1, 1], (4, n_out)).astype(np.float64)
        u = update(params, net, cfg.train, drive_for(net, x), target_for(net, y), rng)
        assert not np.any(u.dW[~mask])
        params.apply_update(u.dW, u.db, cfg.train.lr, cfg.train.max_step)
        assert np.array_equal(params.W, params.W.T)
        assert not np.any(params.W[~mask])
        if net.layered:                      # clamped input units get no bias update
            assert not np.any(u.db[:n_in])
    assert not np.array_equal(params.W, before)


def test_apply_update_clips_each_step_and_symmetrises():
    rng = np.random.default_rng(2)
    mask = band_mask(8, 2) & ~np.eye(8, dtype=bool)
    params = Params(W=np.zeros((8, 8)), b=np.zeros(8), mask=mask)
    dW = rng.normal(0, 1, (8, 8))            # deliberately not symmetric
    db = rng.normal(0, 1, 8)
    lr, max_step = 0.1, 0.05
    params.apply_update(dW, db, lr, max_step)
    expected_upper = np.clip(lr * dW, -max_step, max_step) * mask
    expected = np.triu(expected_upper) + np.triu(expected_upper, 1).T
    assert np.array_equal(params.W, expected)
    assert np.array_equal(params.W, params.W.T)
    assert np.abs(params.W).max() == max_step         # some entries were clipped ...
    small = np.abs(lr * dW) < max_step
    iu = np.triu(small & mask)
    assert np.array_equal(params.W[iu], (lr * dW)[iu])  # ... the others are lr * dW exactly
    assert not np.any(params.W[~mask])
    assert np.array_equal(params.b, np.clip(lr * db, -max_step, max_step))
    assert np.abs(params.b).max() == max_step

    # a huge update moves every existing weight by exactly max_step
    params.apply_update(np.full((8, 8), 1e9), np.full(8, -1e9), lr, max_step)
    np.testing.assert_allclose(params.W - expected, max_step * mask, rtol=0, atol=1e-15)
    assert np.allclose(params.b - np.clip(lr * db, -max_step, max_step), -max_step, rtol=0, atol=1e-15)


def test_a_diverging_side_network_contributes_nothing_instead_of_inf():
    """At an unstable fixed point (v = 0, strong positive feedback) y grows without bound."""
    import warnings

    from memprop.model.network import Drive, Params, Relaxed, Target
    from memprop.model.rules import side_relax

    cfg = Config.for_algorithm("rbp", network={"n": 20, "max_steps": 2000})
    n = cfg.network.n
    params = Params(W=10.0 * (np.ones((n, n)) - np.eye(n)), b=np.zeros(n), mask=~np.eye(n, dtype=bool))
    zeros = np.zeros((2, n))
    drive = Drive(v0=zeros, current=zeros, clamped=np.zeros(n, bool))
    free = Relaxed(v=zeros.copy(), steps=np.ones(2, np.int64), converged=np.ones(2, bool))
    target = Target(values=np.ones((2, n)), units=np.ones(n, bool))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        side = side_relax(params, cfg.network, drive, free, target, 0.5)
    assert np.all(np.isfinite(side.v))
    assert np.all(side.v == 0.0) and not side.converged.any()
