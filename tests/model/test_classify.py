"""The EqProp classifier: its layered fast path equals the general model, per-layer rates, training."""

from __future__ import annotations

import numpy as np
import pytest

from memprop.model import classify, fixed, rng as crng
from memprop.model.config import Config, ConfigError
from memprop.model.network import Params, drive_for, relax, target_for
from memprop.model.numerics import LR_SHIFT_MAX, Formats
from memprop.model.rules import eqprop_update
from memprop.model.tasks import load_task


def layered_config(layers=(6, 5, 3), **train) -> Config:
    return Config.create(network={"n": sum(layers), "topology": "layered", "layers": layers,
                                  "activation": "hard_sigmoid", "dynamics": "bounded", "eps": 0.5, "tol": 1e-9,
                                  "max_steps": 200},
                         train={"beta": 1.0, "lr": 0.1, **train})


def random_params(cfg: Config, seed: int, scale: float = 0.8) -> Params:
    r = np.random.default_rng(seed)
    p = classify.initial_params(cfg, r)
    p.W *= scale / max(np.abs(p.W).max(), 1e-9)
    p.b = r.uniform(-0.3, 0.3, cfg.network.n)
    return p


@pytest.mark.parametrize("layers", [(6, 5, 3), (4, 7, 5, 2), (3, 2, 2, 2, 2)])
@pytest.mark.parametrize("seed", [0, 1])
def test_layered_relaxation_equals_the_general_model(layers, seed):
    cfg = layered_config(layers)
    params = random_params(cfg, seed)
    r = np.random.default_rng(seed + 10)
    x = r.uniform(0, 1, (4, layers[0]))
    y = classify.one_hot(r.integers(0, layers[-1], 4), layers[-1])
    general = relax(params, cfg.network, drive_for(cfg.network, x))
    fast = classify.relax_layered(params, cfg.network, x)
    np.testing.assert_allclose(fast.v, general.v, atol=1e-12)
    np.testing.assert_array_equal(fast.steps, general.steps)
    nudged_general = relax(params, cfg.network, drive_for(cfg.network, x), target_for(cfg.network, y), 1.0,
                           v_start=general.v)
    nudged_fast = classify.relax_layered(params, cfg.network, x, y, 1.0, v_start=fast.v)
    np.testing.assert_allclose(nudged_fast.v, nudged_general.v, atol=1e-12)
    np.testing.assert_array_equal(nudged_fast.steps, nudged_general.steps)


@pytest.mark.parametrize("nudge", ["positive", "centered", "random_sign"])
def test_layered_update_equals_the_general_eqprop_update(nudge):
    cfg = layered_config((5, 4, 3), nudge=nudge, beta=0.5)
    params = random_params(cfg, 3)
    r = np.random.default_rng(4)
    x = r.uniform(0, 1, (3, 5))
    y = classify.one_hot(np.array([0, 2, 1]), 3)
    general = eqprop_update(params, cfg.network, cfg.train, drive_for(cfg.network, x), target_for(cfg.network, y),
                            np.random.default_rng(9))
    fast = classify.layered_eqprop_update(params, cfg, x, y, np.random.default_rng(9))
    np.testing.assert_allclose(fast.dW[0], general.dW[:5, 5:9], atol=1e-12)
    np.testing.assert_allclose(fast.dW[1], general.dW[5:9, 9:], atol=1e-12)
    np.testing.assert_allclose(fast.db, general.db, atol=1e-12)
    assert fast.loss == pytest.approx(general.loss) and fast.steps == pytest.approx(general.steps)


def test_per_layer_rates_and_decay_in_float():
    cfg = layered_config((4, 3, 2), layer_lr=(0.1, 0.05))
    lr_w, lr_b = classify.layer_rates(cfg)
    assert lr_w[0, 4] == 0.1 and lr_w[4, 0] == 0.1 and lr_w[5, 8] == 0.05 and lr_w[8, 5] == 0.05
    assert lr_b.tolist() == [0, 0, 0, 0, 0.1, 0.1, 0.1, 0.05, 0.05]


def test_layer_lr_is_validated():
    with pytest.raises(ConfigError, match="2 weight layers"):
        layered_config((4, 3, 2), layer_lr=(0.1,))
    with pytest.raises(ConfigError, match="layer_lr"):
        Config.create(train={"layer_lr": (0.1,)})
    with pytest.raises(ConfigError, match="positive"):
        layered_config((4, 3, 2), layer_lr=(0.1, -0.1))
    with pytest.raises(ConfigError, match="lr_decay"):
        layered_config((4, 3, 2), lr_decay=0.3).replace(numerics="fixed")


# -- fixed point: per-layer constants (docs/numerics.md, section 5) -----------------------------------

def fixed_layered(layer_lr=(), lr=0.1, lr_decay=1.0, preset="ideal", rounding="stochastic") -> Config:
    return layered_config((5, 4, 3), layer_lr=layer_lr, lr=lr, lr_decay=lr_decay, batch_size=2).replace(
        numerics="fixed", device={"preset": preset}, fixed={"rounding": rounding})


def learn_once(cfg: Config, decay_steps: int = 0, seed: int = 0):
    fmt = Formats(cfg)
    params = fixed.FixedParams.from_float(cfg, *(lambda p: (p.W, p.b))(random_params(cfg, seed, 0.4)))
    params.updates = 17
    r = np.random.default_rng(seed)
    hi = r.integers(0, 257, (2, cfg.network.n))
    lo = r.integers(0, 257, (2, cfg.network.n))
    clamped = np.zeros(cfg.network.n, bool)
    clamped[:5] = True
    hi[:, :5] = lo[:, :5]
    step = fixed.learn(fmt, params, hi, lo, clamped, decay_steps)
    return params, step


@pytest.mark.parametrize("rounding", ["stochastic", "nearest", "truncate"])
def test_equal_layer_rates_are_train_lr(rounding):
    a, sa = learn_once(fixed_layered((), 0.1, rounding=rounding))
    b, sb = learn_once(fixed_layered((0.1, 0.1), 0.1, rounding=rounding))
    np.testing.assert_array_equal(a.codes_w, b.codes_w)
    np.testing.assert_array_equal(sa.pulses_w, sb.pulses_w)
    np.testing.assert_array_equal(sa.pulses_b, sb.pulses_b)


@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_each_layer_learns_at_its_own_rate(rounding):
    both, step = learn_once(fixed_layered((0.1, 0.025), rounding=rounding))
    _, first = learn_once(fixed_layered((), 0.1, rounding=rounding))
    _, second = learn_once(fixed_layered((), 0.025, rounding=rounding))
    np.testing.assert_array_equal(step.pulses_w[:5, 5:9], first.pulses_w[:5, 5:9])     # layer 0 at 0.1
    np.testing.assert_array_equal(step.pulses_w[5:9, 9:], second.pulses_w[5:9, 9:])    # layer 1 at 0.025
    np.testing.assert_array_equal(step.pulses_b[5:9], first.pulses_b[5:9])             # hidden biases: layer 0
    np.testing.assert_array_equal(step.pulses_b[9:], second.pulses_b[9:])              # output biases: layer 1
    assert np.abs(step.pulses_w[:5, 5:9]).sum() > np.abs(step.pulses_w[5:9, 9:]).sum() > 0
    fmt = Formats(fixed_layered((0.1, 0.025)))
    assert fmt.lr_layers[1] == (fmt.lr_layers[0][0], fmt.lr_layers[0][1] + 2)           # a quarter: shift + 2
    assert not fmt.uniform_lr and Formats(fixed_layered((), 0.1)).uniform_lr


@pytest.mark.parametrize("rounding", ["stochastic", "nearest", "truncate"])
def test_halving_after_an_epoch_is_one_more_shift(rounding):
    """decay_steps = 1 with lr_decay = 1/2 is exactly the learning rate halved."""
    decayed, a = learn_once(fixed_layered((0.1, 0.05), lr_decay=0.5, rounding=rounding), decay_steps=1)
    halved, b = learn_once(fixed_layered((0.05, 0.025), lr=0.05, lr_decay=0.5, rounding=rounding))
    np.testing.assert_array_equal(a.pulses_w, b.pulses_w)
    np.testing.assert_array_equal(decayed.codes_w, halved.codes_w)
    fmt = Formats(fixed_layered((0.1, 0.05), lr_decay=0.25))
    assert fmt.decay_shift == 2
    mul, shift = fmt.learn_shifts(np.array([0, 1]), decay_steps=3)
    assert shift.tolist() == [min(fmt.lr_layers[0][1] + 6, LR_SHIFT_MAX), min(fmt.lr_layers[1][1] + 6, LR_SHIFT_MAX)]
    _, far = fmt.learn_shifts(np.array([0, 1]), decay_steps=40)
    assert far.tolist() == [LR_SHIFT_MAX, LR_SHIFT_MAX]          # the rate stops decaying at shift 31


# -- evaluation and training ---------------------------------------------------------------------------

def test_confusion_and_per_class(monkeypatch):
    pred = np.array([0, 0, 1, 2, 2, 2])
    monkeypatch.setattr(classify, "predict", lambda params, cfg, x: (pred, np.ones(len(pred))))
    y = np.array([0, 1, 1, 2, 2, 0])
    r = classify.evaluate(None, None, np.zeros((6, 1)), y, 3)
    assert r.confusion == [[1, 0, 1], [1, 1, 0], [0, 0, 2]]
    assert r.per_class == [0.5, 0.5, 1.0]
    assert r.accuracy == pytest.approx(4 / 6) and r.error_rate == pytest.approx(2 / 6)


@pytest.fixture(scope="module")
def small_task():
    return load_task("digits", classes=(0, 1, 7), per_class=40)


@pytest.mark.parametrize("numerics, device", [("float", None), ("fixed", {"preset": "linear-256"})])
def test_training_learns_and_is_deterministic(small_task, numerics, device):
    cfg = classify.classifier_config(small_task, (16,), epochs=2, seed=3, numerics=numerics, device=device)
    params, history = classify.train_classifier(cfg, small_task, progress=False, monitor=20)
    again, history2 = classify.train_classifier(cfg, small_task, progress=False, monitor=20)
    result = classify.evaluate(params, cfg, small_task.x_test, small_task.y_test, 3)
    assert result.accuracy >= 0.9, result
    assert history.epochs == [0, 1, 2] and len(history.train_error) == len(history.test_error) == 3
    assert history.test_error[-1] < history.test_error[0]
    assert history.to_dict() == history2.to_dict()
    if numerics == "float":
        np.testing.assert_array_equal(params.W, again.W)
        np.testing.assert_array_equal(params.W, params.W.T)
        assert np.all(params.W[~params.mask] == 0)
    else:
        np.testing.assert_array_equal(params.codes_w, again.codes_w)
        assert params.updates == 2 * len(small_task.y_train)


def test_the_seed_settings_are_the_default(small_task):
    cfg = classify.classifier_config(small_task)
    net, tr = cfg.network, cfg.train
    assert net.layers == (64, 100, 3) and net.activation == "hard_sigmoid" and net.dynamics == "bounded"
    assert net.eps == 0.5 and tr.beta == 1.0 and tr.nudge == "positive"
    assert tr.layer_lr == (0.1, 0.05) and tr.lr_decay == 0.5 and tr.batch_size == 1
    two = classify.classifier_config(small_task, (50, 40))
    assert two.network.layers == (64, 50, 40, 3) and two.train.layer_lr == (0.2, 0.05, 0.005)
    with pytest.raises(ValueError, match="do not fit"):
        classify.train_classifier(two, load_task("digits", classes=(0, 1), per_class=5), progress=False)


def test_a_preset_brings_the_rounding_it_needs(small_task):
    """reram-array-om trains in situ with carry unless the config names a rounding; other presets keep theirs."""
    carry = classify.classifier_config(small_task, numerics="fixed", device={"preset": "reram-array-om"})
    assert carry.fixed.rounding == "carry"
    told = classify.classifier_config(small_task, numerics="fixed", device={"preset": "reram-array-om"},
                                      fixed={"rounding": "nearest"})
    assert told.fixed.rounding == "nearest"
    assert classify.classifier_config(small_task, numerics="fixed", device={"preset": "linear-64"}).fixed.rounding \
        == "stochastic"
    assert classify.classifier_config(small_task).fixed.rounding == "stochastic"     # float: untouched


# -- fixed point: the layered fast path is the golden model, bit for bit ---------------------------------

@pytest.mark.parametrize("layers, preset", [((6, 5, 3), "ideal"), ((4, 7, 5, 2), "rram-nonlinear")])
@pytest.mark.parametrize("nudge, beta", [("positive", 1.0), ("centered", 0.5), ("random_sign", 2.0)])
def test_fixed_layered_path_is_bit_exact(layers, nudge, beta, preset):
    cfg = layered_config(layers, nudge=nudge, beta=beta, batch_size=3, layer_lr=(0.2,) * (len(layers) - 1),
                         lr=0.2).replace(numerics="fixed", device={"preset": preset, "d2d_classes": 2})
    fmt = Formats(cfg)
    init = random_params(cfg, 5, 0.9)
    a = fixed.FixedParams.from_float(cfg, init.W, init.b)
    b = a.copy()
    r = np.random.default_rng(6)
    for t in range(4):
        x = r.uniform(0, 1, (3, layers[0]))
        y = classify.one_hot(r.integers(0, layers[-1], 3), layers[-1])
        drive, target = fixed.fixed_drive_for(fmt, x), fixed.fixed_target_for(fmt, y)
        W, bias = a.weights(fmt.device)
        golden = fixed.fixed_relax(fmt, W, bias, drive)
        fast = classify.fixed_relax_layered(fmt, W, bias, drive)
        np.testing.assert_array_equal(fast.v, golden.v)
        np.testing.assert_array_equal(fast.steps, golden.steps)
        nudged = fixed.fixed_relax(fmt, W, bias, drive, target, -1, v_start=golden.v)
        fast_nudged = classify.fixed_relax_layered(fmt, W, bias, drive, target, -1, v_start=fast.v)
        np.testing.assert_array_equal(fast_nudged.v, nudged.v)
        step_a, info_a = fixed.eqprop_fixed_update(fmt, a, drive, target, decay_steps=t)
        step_b, info_b = classify.fixed_layered_update(fmt, b, drive, target, decay_steps=t)
        np.testing.assert_array_equal(step_a.pulses_w, step_b.pulses_w)
        np.testing.assert_array_equal(a.codes_w, b.codes_w)
        np.testing.assert_array_equal(a.codes_b, b.codes_b)
        assert info_a == info_b and a.updates == b.updates


def test_coarse_device_pairs_get_the_classifiers_read_out_gain():
    """Pair presets with fewer than 128 levels map a device unit to 0.25 in a classifier whose initial
    weights fit in that range; narrow networks, finer and other presets keep theirs; a given w_scale
    or a levels override decides."""
    from memprop.model.classify import COARSE_PAIR_W_SCALE, classifier_device, glorot_limit

    digits = (64, 100, 10)
    assert glorot_limit(digits) == pytest.approx(np.sqrt(6 / 110)) and glorot_limit((64, 8, 3)) > 0.7
    assert classifier_device({"preset": "rram-nonlinear"}, digits)["w_scale"] == COARSE_PAIR_W_SCALE
    assert classifier_device({"preset": "linear-64"}, (784, 500, 10))["w_scale"] == COARSE_PAIR_W_SCALE
    assert "w_scale" not in classifier_device({"preset": "linear-64"}, (64, 8, 3))
    for preset in ("ideal", "linear-256", "soft-bounds", "reram-array-om"):
        assert "w_scale" not in classifier_device({"preset": preset}, digits), preset
    assert "w_scale" not in classifier_device({"preset": "linear-64", "levels": 256}, digits)
    assert classifier_device({"preset": "linear-64", "w_scale": 0.5}, digits)["w_scale"] == 0.5
