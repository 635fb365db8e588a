"""The compiled kernels (model/kernels.py, numba) give the numpy loops' results bit for bit.

Float: the same dgemm on the same rows, numpy's element-wise operations in numpy's order.
Fixed point: integers, the same relaxations, pulse counts, Threefry draws and device codes.
"""

from __future__ import annotations

import numpy as np
import pytest

from memprop.model import kernels, network, patterns, rng, training
from memprop.model.config import Config
from memprop.model.network import Params, drive_for, relax, relaxation_kernel, target_for

pytestmark = pytest.mark.skipif(not kernels.available(), reason=f"compiled kernels unavailable: {kernels.reason()}")


def _both(fn):
    """fn() under the compiled kernel and under the numpy loop."""
    with relaxation_kernel("fast"):
        compiled = fn()
    with relaxation_kernel("fast-numpy"):
        numpy = fn()
    return compiled, numpy


def test_the_default_kernel_is_the_compiled_one():
    assert network.active_kernel() == "compiled"
    with relaxation_kernel("fast-numpy"):
        assert network.active_kernel() == "fast-numpy"


@pytest.mark.parametrize("network_over, train_over", [
    ({}, {}),
    ({}, {"nudge": "centered", "beta": 0.5}),
    ({"hidden": 6, "n": 106}, {"beta": 0.5}),
    ({"activation": "hard_sigmoid", "input_gain": 0.25}, {"train_flip": 0.25}),
])
def test_float_training_is_bit_identical(network_over, train_over):
    pats = patterns.load("generated:1")
    cfg = Config.for_algorithm("eqprop", network={"n": 100, **network_over}, train={"epochs": 3, **train_over})
    (pc, hc), (pn, hn) = _both(lambda: training.train(cfg, pats, progress=False))
    np.testing.assert_array_equal(pc.W, pn.W)
    np.testing.assert_array_equal(pc.b, pn.b)
    assert hc.steps == hn.steps and hc.loss == hn.loss


@pytest.mark.parametrize("beta", [0.0, 1.0, 0.3])
def test_float_relaxation_bit_identical_at_the_step_limit_and_odd_batches(beta):
    net = Config.for_algorithm("eqprop", network={"n": 60, "max_steps": 25}).network
    r = np.random.default_rng(4)
    params = Params.initial(net, 0.1, r)
    params.b = r.uniform(-0.2, 0.2, 60)
    x, y = r.choice([-1, 1], (13, 60)), r.choice([-1, 1], (13, 60))
    run = lambda: relax(params, net, drive_for(net, x), target_for(net, y) if beta else None, beta)  # noqa: E731
    c, n = _both(run)
    np.testing.assert_array_equal(c.v, n.v)
    np.testing.assert_array_equal(c.steps, n.steps)
    np.testing.assert_array_equal(c.converged, n.converged)
    if beta == 0.3:                 # samples freeze at different steps, some hit the limit
        assert not c.converged.all() and c.converged.any()


@pytest.mark.parametrize("device, rounding, nudge", [
    ("ideal", "stochastic", "positive"),
    ("ideal", "nearest", "centered"),
    ("linear-64", "truncate", "random_sign"),
    ("rram-nonlinear", "stochastic", "positive"),      # pairs, c2c noise, device classes
    ("reram-array-om", "stochastic", "positive"),      # 10 % stuck devices beside the working classes
])
def test_fixed_training_is_bit_identical(device, rounding, nudge):
    pats = patterns.load()
    stuck = {"stuck": 0.1} if device == "reram-array-om" else {}
    cfg = Config.for_algorithm("eqprop", network={"n": 100}, train={"epochs": 2, "nudge": nudge},
                               numerics="fixed", device={"preset": device, **stuck}, fixed={"rounding": rounding})
    (pc, hc), (pn, hn) = _both(lambda: training.train(cfg, pats, progress=False))
    np.testing.assert_array_equal(pc.codes_w, pn.codes_w)
    np.testing.assert_array_equal(pc.codes_b, pn.codes_b)
    assert pc.updates == pn.updates and hc.steps == hn.steps


def test_threefry_draws_equal_the_model_rng():
    r = np.random.default_rng(0)
    for _ in range(50):
        seed, t, s, d = int(r.integers(0, 2**40)), int(r.integers(0, 2**33)), int(r.integers(0, 2**20)), int(r.integers(0, 64))
        assert int(kernels._rand(seed & 0xFFFFFFFF, t & 0xFFFFFFFF, s, d)) == int(rng.rand(seed, t, s, d))


def test_numpy_loops_serve_when_the_kernels_are_missing(monkeypatch):
    pats = patterns.load()
    cfg = Config.for_algorithm("eqprop", network={"n": 100}, train={"epochs": 1})
    with_kernels, _ = training.train(cfg, pats, progress=False)
    monkeypatch.setitem(kernels._STATE, "ok", False)
    assert network.active_kernel() == "fast"
    without, _ = training.train(cfg, pats, progress=False)
    np.testing.assert_array_equal(with_kernels.W, without.W)
