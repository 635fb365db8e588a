"""The board's training protocol (`session.minibatches`, `session.model_train`) is the model's:
the noise curriculum ramps over the run and the learning rate decays on the model's schedule."""

from __future__ import annotations

import numpy as np

from memprop.boards import session
from memprop.model import fixed
from memprop.model.config import Config
from memprop.model.numerics import Formats


def fixed_cfg(**train) -> Config:
    return Config.for_algorithm("eqprop", network={"n": 16}, numerics="fixed",
                                train={"repeats": 4, "batch_size": 4, **train})


PATTERNS = np.where(np.random.default_rng(3).random((2, 16)) < 0.5, 1, -1).astype(np.int8)


def test_the_curriculum_ramps_over_the_boards_run():
    """train_flip 0 -> 0.45 over a 2-epoch run: epoch 1 shows clean inputs, epoch 2 flips ~45 %."""
    cfg = fixed_cfg(train_flip=0.0, train_flip_end=0.45, epochs=50)   # the run's length, not the Config's
    flips = {1: [], 2: []}
    for epoch, x, y in session.minibatches(cfg, PATTERNS, 2, seed=0):
        flips[epoch].append(np.mean(x != y))
    assert np.mean(flips[1]) == 0.0
    assert 0.25 < np.mean(flips[2]) < 0.65


def test_model_train_decays_the_rate_like_the_model():
    """The board's model twin applies decay step e = (epoch - 1) // lr_decay_every to every LEARN."""
    cfg = fixed_cfg(lr=0.08, lr_decay=0.5, lr_decay_every=1)
    fmt = Formats(cfg)
    start = fixed.FixedParams.from_float(cfg, np.zeros((16, 16)), np.zeros(16))
    got = session.model_train(cfg, start, PATTERNS, 2, seed=1)
    want, undecayed = start.copy(), start.copy()
    for epoch, x, y in session.minibatches(cfg, PATTERNS, 2, seed=1):
        drive, target = fixed.fixed_drive_for(fmt, x), fixed.fixed_target_for(fmt, y)
        fixed.eqprop_fixed_update(fmt, want, drive, target, epoch - 1)
        fixed.eqprop_fixed_update(fmt, undecayed, drive, target, 0)
    assert np.array_equal(got.codes_w, want.codes_w) and np.array_equal(got.codes_b, want.codes_b)
    assert not np.array_equal(got.codes_w, undecayed.codes_w)
