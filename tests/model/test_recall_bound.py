"""The nearest-pattern bound, the MSE < 0.1 criterion, generated glyph sets and the seeds' initial states."""

from __future__ import annotations

import numpy as np
import pytest

from memprop.model import patterns as pattern_sets
from memprop.model import recall
from memprop.model.config import Config, ConfigError
from memprop.model.network import Params, drive_for


def test_credit_is_one_for_the_unique_nearest_and_shared_on_ties():
    stored = np.array([[1, 1, 1, 1], [-1, -1, -1, -1], [1, 1, -1, -1]], np.int8)
    noisy = np.array([[1, 1, 1, -1],     # distance 1, 3, 1 to the three: tie between 0 and 2
                      [1, 1, 1, 1],      # pattern 0 itself
                      [-1, -1, -1, 1]],  # nearest is 1
                     np.int8)
    credit = recall.nearest_pattern_credit(stored, noisy, np.array([0, 0, 0]))
    np.testing.assert_array_equal(credit, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(recall.nearest_pattern_credit(stored, noisy, np.array([2, 1, 1])), [0.5, 0.0, 1.0])


def test_bound_is_the_nearest_pattern_decoder_on_the_same_inputs():
    """Recomputed by brute force from the corrupted inputs evaluate() draws."""
    pats = pattern_sets.load()
    cfg = Config.for_algorithm("hebbian", network={"n": pats.size})
    params = Params(W=np.zeros((100, 100)), b=np.zeros(100), mask=np.ones((100, 100), bool))
    result = recall.evaluate(params, cfg, pats, 0.2, 50, seed=3)
    rng = np.random.default_rng(3)
    clean = np.repeat(pats.values, 50, axis=0)
    noisy = pattern_sets.corrupt(clean, 0.2, rng)
    dist = (noisy[:, None, :] != pats.values[None, :, :]).sum(-1)
    truth = np.repeat(np.arange(pats.count), 50)
    nearest = dist == dist.min(axis=1, keepdims=True)
    expected = (nearest[np.arange(len(truth)), truth] / nearest.sum(axis=1)).reshape(pats.count, 50)
    assert result.bound == pytest.approx(expected.mean(), abs=1e-12)
    np.testing.assert_allclose(result.per_class_bound, expected.mean(axis=1), atol=1e-12)
    assert 0.9 < result.bound < 1.0
    assert result.accuracy <= result.bound


def test_mse_criterion_counts_near_misses_the_exact_one_does_not():
    """A Hopfield network with W = 0 returns its input: a trial with k flipped pixels has MSE 4k/N."""
    pats = pattern_sets.load()
    cfg = Config.for_algorithm("hebbian", network={"n": pats.size})
    params = Params(W=np.zeros((100, 100)), b=np.zeros(100), mask=np.ones((100, 100), bool))
    result = recall.evaluate(params, cfg, pats, 0.02, 200, seed=0)
    rng = np.random.default_rng(0)
    clean = np.repeat(pats.values, 200, axis=0)
    flipped = (pattern_sets.corrupt(clean, 0.02, rng) != clean).sum(axis=1)
    assert result.accuracy == pytest.approx(np.mean(flipped == 0))
    assert result.accuracy_mse == pytest.approx(np.mean(4 * flipped / 100 < recall.MSE_THRESHOLD))
    assert result.accuracy_mse > result.accuracy


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_generated_sets_are_correlated_10x10_glyphs_at_least_14_apart(seed):
    pats = pattern_sets.generate(seed=seed)
    assert pats.values.shape == (16, 100) and pats.shape == (10, 10)
    assert pats.min_hamming() >= 14
    assert pats.mean_abs_correlation() > 0.2          # correlated like hex16 (0.415), not random
    again = pattern_sets.load(f"generated:{seed}")
    np.testing.assert_array_equal(again.values, pats.values)
    assert again.source == f"generated:{seed}"


def test_generated_set_names_are_checked():
    with pytest.raises(pattern_sets.PatternError, match="generated:SEED"):
        pattern_sets.load("generated:x")


def test_seed_initial_states():
    x = np.random.default_rng(0).choice([-1, 1], (5, 20))
    half = Config.for_algorithm("eqprop", network={"n": 20, "init_state": "half"}).network
    drive = drive_for(half, x)
    assert np.all(drive.v0 == 0.5)
    np.testing.assert_array_equal(drive.current, 0.5 * x)
    rand = Config.for_algorithm("eqprop", network={"n": 20, "init_state": "random"}).network
    v0 = drive_for(rand, x, np.random.default_rng(1)).v0
    assert v0.min() >= -1 and v0.max() <= 1 and len(np.unique(v0)) == v0.size
    with pytest.raises(ValueError, match="random generator"):
        drive_for(rand, x)
    with pytest.raises(ConfigError, match="init_state"):
        Config.for_algorithm("eqprop", network={"n": 20, "init_state": "half"}, numerics="fixed")


def test_new_fields_at_their_defaults_keep_old_fingerprints():
    """Weight files written before init_state existed still load (their fingerprints are unchanged)."""
    assert Config.for_algorithm("eqprop").fingerprint == "07e88b92e5f5b07b"
    assert Config.for_algorithm("eqprop", network={"init_state": "half"}).fingerprint != "07e88b92e5f5b07b"


def test_hidden_units_come_first_without_input_or_target():
    from memprop.model import training
    from memprop.model.network import readout, target_for, units_of

    cfg = Config.for_algorithm("eqprop", network={"n": 23, "hidden": 3}, train={"epochs": 2})
    net = cfg.network
    clamped, outputs = units_of(net)
    assert not clamped.any() and not outputs[:3].any() and outputs[3:].all()
    x = np.random.default_rng(0).choice([-1, 1], (4, 20))
    drive = drive_for(net, x)
    assert drive.v0.shape == (4, 23) and np.all(drive.v0[:, :3] == 0) and np.all(drive.current[:, :3] == 0)
    np.testing.assert_array_equal(drive.v0[:, 3:], x)
    assert target_for(net, x).values.shape == (4, 23)
    assert readout(net, drive.v0).shape == (4, 20)
    pats = pattern_sets.from_array(np.random.default_rng(1).choice([-1, 1], (3, 20)))
    params, _ = training.train(cfg, pats, progress=False)
    assert params.W.shape == (23, 23)
    assert 0.0 <= recall.evaluate(params, cfg, pats, 0.05, 5, 0).accuracy <= 1.0
    with pytest.raises(pattern_sets.PatternError, match="23 units but the network \\(besides its 3 hidden units\\) has 20"):
        training.train(cfg, pattern_sets.from_array(np.ones((1, 23), np.int8)), progress=False)
    with pytest.raises(ConfigError, match="hidden"):
        Config.for_algorithm("hebbian", network={"n": 23, "hidden": 3})
    with pytest.raises(ConfigError, match="hidden"):
        Config.for_algorithm("eqprop", network={"n": 9, "topology": "layered", "layers": (4, 5), "hidden": 2})
