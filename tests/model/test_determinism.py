"""Same seed and inputs, same result: whatever the batch, the relaxation kernel, the BLAS threads.

OpenBLAS rounds the last row of an odd-sized matrix product differently from the rows it
computes in pairs, and splits rows among its threads; the fast relaxation pads odd batches
and the model runs BLAS on one thread (model/network.py), which these tests pin down.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from memprop.model import network, patterns, training
from memprop.model.config import Config
from memprop.model.network import Params, drive_for, relax, relaxation_kernel, target_for


def _params(n=100, seed=0, scale=0.3):
    net = Config.for_algorithm("eqprop", network={"n": n}).network
    rng = np.random.default_rng(seed)
    p = Params.initial(net, scale, rng)
    p.b = rng.uniform(-0.1, 0.1, n)
    return net, p


@pytest.mark.parametrize("nudge", ["positive", "centered"])
def test_fast_unpadded_kernel_is_bit_identical_to_the_reference(nudge):
    """The rewrite keeps every operation and its order: the same weights to the last bit."""
    pats = patterns.load()
    cfg = Config.for_algorithm("eqprop", network={"n": 100}, train={"epochs": 3, "nudge": nudge, "beta": 0.5})
    weights = {}
    for kernel in ("reference", "fast-unpadded"):
        with relaxation_kernel(kernel):
            params, history = training.train(cfg, pats, progress=False)
        weights[kernel] = (params.W, params.b, history.steps)
    ref, fast = weights["reference"], weights["fast-unpadded"]
    np.testing.assert_array_equal(ref[0], fast[0])
    np.testing.assert_array_equal(ref[1], fast[1])
    assert ref[2] == fast[2]


@pytest.mark.parametrize("kernel", ["fast", "reference"])
def test_relaxation_kernels_agree_on_steps_and_convergence(kernel):
    net, params = _params()
    x = np.random.default_rng(1).choice([-1, 1], (9, 100))
    with relaxation_kernel("reference"):
        ref = relax(params, net, drive_for(net, x))
    with relaxation_kernel(kernel):
        out = relax(params, net, drive_for(net, x))
    np.testing.assert_allclose(out.v, ref.v, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(out.steps, ref.steps)
    np.testing.assert_array_equal(out.converged, ref.converged)


@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
def test_a_trajectory_does_not_depend_on_the_batch_it_runs_in(beta):
    """Each sample relaxed alone, or in batches of every size: bit-identical final states."""
    net, params = _params(seed=2, scale=0.1)
    rng = np.random.default_rng(3)
    x = rng.choice([-1, 1], (9, 100))
    y = rng.choice([-1, 1], (9, 100))
    drive, target = drive_for(net, x), target_for(net, y)
    whole = relax(params, net, drive, target if beta else None, beta)
    assert len(set(whole.steps.tolist())) > 2          # samples freeze at different steps: odd batches occur
    for s in range(9):
        one = relax(params, net, drive_for(net, x[s:s + 1]), target_for(net, y[s:s + 1]) if beta else None, beta)
        np.testing.assert_array_equal(one.v[0], whole.v[s])
        assert one.steps[0] == whole.steps[s]
    for size in (2, 3, 5):
        part = relax(params, net, drive_for(net, x[:size]), target_for(net, y[:size]) if beta else None, beta)
        np.testing.assert_array_equal(part.v, whole.v[:size])


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="unknown relaxation kernel"):
        with relaxation_kernel("turbo"):
            pass
    assert network._KERNEL["name"] == "fast"


SCRIPT = """
import hashlib, json
from memprop.model import patterns, recall, training
from memprop.model.config import Config
pats = patterns.load()
cfg = Config.for_algorithm("eqprop", network={"n": 100}, train={"epochs": 2})
params, _ = training.train(cfg, pats, progress=False)
r = recall.evaluate(params, cfg, pats, 0.2, 300, 1)   # 4800 samples: a 4096-row product, threaded if allowed
print(hashlib.sha256(params.W.tobytes()).hexdigest(), json.dumps(r.to_dict()))
"""


def test_weights_and_reports_do_not_depend_on_the_blas_thread_count():
    outputs = set()
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1


@pytest.mark.parametrize("activation", ["hard_tanh", "hard_sigmoid", "tanh"])
@pytest.mark.parametrize("beta, sign", [(1.0, 0), (0.5, 1), (2.0, -1), (1.0, 1)])
def test_fast_fixed_relaxation_equals_the_step_definition(activation, beta, sign):
    """fixed_relax (constants hoisted) against the original loop over fixed_step: the same trace."""
    from memprop.model import fixed
    from memprop.model.network import converge_reference
    from memprop.model.numerics import Formats

    dynamics = "euler" if activation == "tanh" else "bounded"
    cfg = Config.for_algorithm("eqprop", network={"n": 24, "activation": activation, "dynamics": dynamics,
                                                  "hidden": 4},
                               train={"beta": beta}, numerics="fixed")
    fmt = Formats(cfg)
    r = np.random.default_rng(5)
    init = Params.initial(cfg.network, 0.3, r)
    params = fixed.FixedParams.from_float(cfg, init.W, r.uniform(-0.3, 0.3, 24))
    W, b = params.weights(fmt.device)
    x, y = r.choice([-1, 1], (7, 20)), r.choice([-1, 1], (7, 20))
    drive, target = fixed.fixed_drive_for(fmt, x), fixed.fixed_target_for(fmt, y)
    target = None if sign == 0 else target
    got = fixed.fixed_relax(fmt, W, b, drive, target, sign, trace=True)

    def update(active, va):
        sub = None if target is None else fixed.FixedTarget(target.values[active], target.units)
        return fixed.fixed_step(fmt, W, b, va, drive.x[active], sub, sign)

    want = converge_reference(drive.v0.copy(), update, cfg.network.max_steps, cfg.fixed.tol_lsb, drive.clamped,
                              trace=True)
    np.testing.assert_array_equal(got.v, want.v)
    np.testing.assert_array_equal(got.steps, want.steps)
    assert len(got.trace) == len(want.trace)
    for a, b_ in zip(got.trace, want.trace):
        np.testing.assert_array_equal(a, b_)
