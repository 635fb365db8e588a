"""The engine runs autoassociative networks with hidden units bit-exactly (the recall recipe's topology).

Hidden units come first (no input current, no target); the pattern units after them form the
contiguous output block the engine's neuron update already knows from layered networks.
"""

from __future__ import annotations

import numpy as np
import pytest

from memprop.model import fixed
from memprop.model.config import Config
from memprop.model.network import Params
from memprop.model.numerics import Formats
from memprop.rtl.verify import Case, simulate_case


def hidden_case(cfg: Config, seed: int, decay_steps: int = 0) -> Case:
    r = np.random.default_rng(seed)
    net = cfg.network
    init = Params.initial(net, 0.4, r)
    params = fixed.FixedParams.from_float(cfg, init.W, r.uniform(-0.3, 0.3, net.n))
    params.updates = int(r.integers(0, 1000))
    fmt = Formats(cfg)
    shape = (cfg.train.batch_size, net.pattern_units)
    x, y = np.where(r.random(shape) < 0.5, 1, -1), np.where(r.random(shape) < 0.5, 1, -1)
    return Case(cfg, seed, params, fixed.fixed_drive_for(fmt, x), fixed.fixed_target_for(fmt, y), decay_steps)


def simulate(case: Case) -> dict:
    return simulate_case(case)


@pytest.mark.parametrize("nudge, preset, seed, decay", [
    ("centered", "ideal", 0, 2),      # the recipe's step decay: its rate halved twice (R_DECAY = 2)
    pytest.param("positive", "linear-64", 1, 0, marks=pytest.mark.slow),
])
def test_hidden_units_are_bit_exact(nudge, preset, seed, decay):
    train = {"batch_size": 3, "nudge": nudge, "lr": 0.08, **({"lr_decay": 0.5, "lr_decay_every": 200} if decay else {})}
    cfg = Config.for_algorithm("eqprop", network={"n": 10, "hidden": 3, "input_gain": 0.25}, numerics="fixed",
                               train=train, device={"preset": preset}, hw={"lanes": 2})
    case = hidden_case(cfg, seed, decay)
    assert np.all(case.drive.x[:, :3] == 0) and not case.target.units[:3].any()
    report = simulate(case)
    assert report["pulses"] > 0
