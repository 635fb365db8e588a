"""The PyTorch peer (`memprop[peer]`): the same training as the numpy model, to rounding."""

from __future__ import annotations

import numpy as np
import pytest

from memprop import peer
from memprop.model import patterns, training
from memprop.model.config import Config

torch = pytest.importorskip("torch", reason=peer.INSTALL_HINT)


@pytest.mark.parametrize("nudge", ["positive", "centered"])
def test_peer_trains_the_same_network_as_numpy(nudge):
    pats = patterns.load()
    cfg = Config.for_algorithm("eqprop", network={"n": 100}, train={"epochs": 2, "nudge": nudge})
    ours, hist = training.train(cfg, pats, progress=False)
    theirs, peer_hist = peer.train_peer(cfg, pats)
    np.testing.assert_allclose(theirs.W, ours.W, rtol=0, atol=1e-9)
    np.testing.assert_allclose(theirs.b, ours.b, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(theirs.mask, ours.mask)
    np.testing.assert_allclose(peer_hist.steps, hist.steps, rtol=1e-12)


def test_peer_refuses_what_it_does_not_implement():
    with pytest.raises(ValueError, match="float EqProp"):
        peer.train_peer(Config.for_algorithm("rbp", network={"n": 100}, train={"epochs": 1}), patterns.load())
