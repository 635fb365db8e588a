"""Float network: relaxation converges, clamping, per-sample convergence, how data enters."""

from __future__ import annotations

import numpy as np
import pytest

from memprop.model import activations
from memprop.model.config import Config, NetworkConfig
from memprop.model.network import (Drive, Params, Target, drive_for, energy_gradient, readout, relax, step,
                                   target_for, units_of)

ALL = [("hard_tanh", "bounded"), ("hard_sigmoid", "bounded"), ("tanh", "euler"), ("tanh", "additive")]


def _net(activation="hard_tanh", dynamics="bounded", **kw):
    return NetworkConfig(activation=activation, dynamics=dynamics, **kw)


def _params(net, scale=0.1, seed=0):
    rng = np.random.default_rng(seed)
    p = Params.initial(net, scale, rng)
    p.b = rng.uniform(-0.05, 0.05, net.n)
    return p


def test_params_initial_symmetric_masked_in_range():
    net = NetworkConfig(n=20, topology="band", band=6)
    p = Params.initial(net, 0.1, np.random.default_rng(0))
    assert np.array_equal(p.W, p.W.T)
    assert not np.any(p.W[~p.mask])
    assert not np.any(np.diag(p.W))
    assert np.abs(p.W).max() <= 0.1
    assert np.count_nonzero(p.W) == int(p.mask.sum())      # every allowed synapse is drawn
    assert not np.any(p.b)
    same = Params.initial(net, 0.1, np.random.default_rng(0))
    assert np.array_equal(same.W, p.W)


@pytest.mark.parametrize("activation, dynamics", ALL)
def test_relaxation_converges_to_a_fixed_point(activation, dynamics):
    net = _net(activation, dynamics, n=30, max_steps=5000, tol=1e-10)
    params = _params(net)
    x = np.random.default_rng(1).choice([-1, 1], (6, 30))
    drive = drive_for(net, x)
    out = relax(params, net, drive)
    assert out.converged.all()
    assert np.all(out.steps >= 1) and np.all(out.steps < net.max_steps)
    # one more step leaves the state where it is (to the tolerance)
    again = step(params, net, out.v, drive.current)
    assert np.abs(again - out.v).max() <= 1e-10
    act = activations.get(activation)
    if dynamics == "bounded":
        assert out.v.min() >= act.lo and out.v.max() <= act.hi
    if dynamics != "additive":
        # a stationary point of the energy (bounded: up to the projection at the box)
        grad = energy_gradient(params, net, out.v, drive.current)
        inside = (out.v > act.lo) & (out.v < act.hi) if dynamics == "bounded" else np.ones_like(out.v, bool)
        assert np.abs(grad[inside]).max() <= 1e-9


def test_relaxation_reports_non_convergence_at_the_step_limit():
    net = _net("tanh", "euler", n=30, max_steps=3, tol=1e-12)
    params = _params(net)
    out = relax(params, net, drive_for(net, np.ones((2, 30))))
    assert not out.converged.any()
    assert np.array_equal(out.steps, [3, 3])
    assert np.array_equal(relax(params, net, drive_for(net, np.ones((2, 30))), max_steps=1).steps, [1, 1])


def test_relaxation_decreases_the_energy_under_euler_dynamics():
    net = _net("tanh", "euler", n=20, eps=0.2)
    params = _params(net, scale=0.3)
    x = np.random.default_rng(2).choice([-1, 1], (1, 20))
    drive = drive_for(net, x)
    act = activations.get("tanh")

    def energy(v):
        r = act.f(v[0])
        return float(0.5 * v[0] @ v[0] - 0.5 * r @ params.W @ r - (params.b + drive.current[0]) @ r)

    v, energies = drive.v0.copy(), []
    for _ in range(30):
        energies.append(energy(v))
        v = step(params, net, v, drive.current)
    assert np.all(np.diff(energies) <= 1e-12)
    assert energies[-1] < energies[0] - 1e-3


@pytest.mark.parametrize("activation, dynamics", [("hard_sigmoid", "bounded"), ("hard_tanh", "bounded"),
                                                  ("tanh", "euler"), ("tanh", "additive")])
def test_clamped_units_never_move(activation, dynamics):
    net = _net(activation, dynamics, n=12, topology="layered", layers=(4, 5, 3))
    params = _params(net, scale=0.5)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (5, 4))
    drive = drive_for(net, x)
    assert np.array_equal(drive.clamped, np.arange(12) < 4)
    target = target_for(net, rng.uniform(0, 1, (5, 3)))
    for limit in (1, 2, 7, 100):
        free = relax(params, net, drive, max_steps=limit)
        assert np.array_equal(free.v[:, :4], x)
        # nudged phase from an arbitrary start state: clamped units are reset to v0 and stay
        start = rng.uniform(-1, 1, (5, 12))
        nudged = relax(params, net, drive, target, beta=1.0, v_start=start, max_steps=limit)
        assert np.array_equal(nudged.v[:, :4], x)
    assert not np.allclose(free.v[:, 4:], drive.v0[:, 4:])   # the free units did move


@pytest.mark.parametrize("activation, dynamics", [("hard_tanh", "bounded"), ("tanh", "euler"), ("tanh", "additive")])
def test_per_sample_convergence_is_independent_of_the_batch(activation, dynamics):
    net = _net(activation, dynamics, n=40, max_steps=400, tol=1e-6)
    params = _params(net, scale=0.2)
    rng = np.random.default_rng(4)
    x = rng.choice([-1, 1], (9, 40))
    batch = relax(params, net, drive_for(net, x))
    assert len(set(batch.steps.tolist())) > 1       # samples really stop at different steps
    for i in range(len(x)):
        alone = relax(params, net, drive_for(net, x[i:i + 1]))
        assert alone.steps[0] == batch.steps[i]
        np.testing.assert_allclose(alone.v[0], batch.v[i], rtol=0, atol=1e-12)
    # and reversing the batch order changes nothing either
    rev = relax(params, net, drive_for(net, x[::-1]))
    np.testing.assert_allclose(rev.v[::-1], batch.v, rtol=0, atol=1e-12)


@pytest.mark.parametrize("activation", ["hard_tanh", "hard_sigmoid", "tanh"])
def test_drive_target_readout_autoassociative(activation):
    dynamics = "euler" if activation == "tanh" else "bounded"
    net = _net(activation, dynamics, n=16, input_gain=0.5)
    act = activations.get(activation)
    x = np.random.default_rng(5).choice([-1, 1], (3, 16)).astype(np.int8)
    d = drive_for(net, x)
    assert d.v0.shape == d.current.shape == (3, 16)
    assert d.v0.dtype == np.float64
    assert np.array_equal(d.v0, np.where(x > 0, act.hi, act.lo))      # pattern in the range
    assert np.array_equal(d.current, 0.5 * x)                           # I = gain * x
    assert not d.clamped.any()
    t = target_for(net, x)
    assert t.values.shape == (3, 16) and t.units.all()
    assert np.array_equal(t.values, np.where(x > 0, act.hi, act.lo))
    r = readout(net, d.v0)
    assert r.shape == (3, 16) and r.dtype == np.int8
    assert np.array_equal(r, x)                                          # readout inverts encode
    # threshold at the middle of the range
    mid = 0.5 * (act.lo + act.hi)
    v = np.array([[mid - 1e-9, mid + 1e-9] + [mid] * 14])
    assert readout(net, v)[0, :3].tolist() == [-1, 1, -1]
    with pytest.raises(ValueError, match="15 values"):
        drive_for(net, x[:, :15])


@pytest.mark.parametrize("activation", ["hard_tanh", "hard_sigmoid", "tanh"])
def test_drive_target_readout_layered(activation):
    dynamics = "euler" if activation == "tanh" else "bounded"
    net = _net(activation, dynamics, n=9, topology="layered", layers=(4, 3, 2))
    act = activations.get(activation)
    clamped, outputs = units_of(net)
    assert clamped.tolist() == [True] * 4 + [False] * 5
    assert outputs.tolist() == [False] * 7 + [True] * 2
    x = np.random.default_rng(6).uniform(act.lo, act.hi, (5, 4))
    d = drive_for(net, x)
    assert d.v0.shape == d.current.shape == (5, 9)
    assert np.array_equal(d.v0[:, :4], x)
    rest = d.v0[:, 4:]
    assert np.all(rest == rest.flat[0]) and act.lo <= rest.flat[0] <= act.hi   # a common start in range
    assert not d.current.any()
    assert np.array_equal(d.clamped, clamped)
    y = np.array([[act.lo, act.hi]] * 5)
    t = target_for(net, y)
    assert t.values.shape == (5, 9)
    assert np.array_equal(t.values[:, 7:], y) and not t.values[:, :7].any()
    assert np.array_equal(t.units, outputs)
    r = readout(net, t.values)
    assert r.shape == (5, 2) and r.dtype == np.int8
    assert np.array_equal(r, np.tile([-1, 1], (5, 1)))
    with pytest.raises(ValueError, match="input layer has 4 units"):
        drive_for(net, x[:, :3])


def test_drive_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="B x N"):
        Drive(v0=np.zeros((2, 3)), current=np.zeros((2, 4)), clamped=np.zeros(3, bool))
    with pytest.raises(ValueError, match="clamped"):
        Drive(v0=np.zeros((2, 3)), current=np.zeros((2, 3)), clamped=np.zeros(4, bool))


def test_nudging_pulls_the_outputs_toward_the_target():
    cfg = Config.for_algorithm("eqprop", network={"n": 20, "activation": "tanh", "dynamics": "euler"})
    net = cfg.network
    params = _params(net, scale=0.2)
    rng = np.random.default_rng(7)
    x, y = rng.choice([-1, 1], (4, 20)), rng.choice([-1, 1], (4, 20))
    drive, target = drive_for(net, x), target_for(net, y)
    free = relax(params, net, drive)
    nudged = relax(params, net, drive, target, beta=0.5, v_start=free.v)
    dist = lambda v: np.abs(v - target.values).sum(axis=1)   # noqa: E731
    assert np.all(dist(nudged.v) < dist(free.v))
    # beta = 0 with a target is the free phase
    same = relax(params, net, drive, Target(target.values, target.units), beta=0.0)
    np.testing.assert_array_equal(same.v, free.v)
