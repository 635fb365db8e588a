"""hw.fold: each symmetric pair streamed once, its product into both units' sums (mac.py)."""

from __future__ import annotations

import numpy as np
import pytest

from memprop.model.config import Config
from memprop.model.fixed import FixedParams
from memprop.rtl.cycles import step_cycles
from memprop.rtl.learnplan import LearnPlan
from memprop.rtl.schedule import Schedule
from memprop.rtl.verify import make_case, simulate_case


def cfg_of(network, lanes, fold=True, **sections):
    return Config.for_algorithm("eqprop", network=network, numerics="fixed", device={"preset": "linear-64"},
                                hw={"lanes": lanes, "fold": fold, **sections.pop("hw", {})}, **sections)


def test_the_seeds_network_streams_two_thirds_of_the_words():
    """N = 100 dense at P = 32: 205 words a step instead of 310, one weight per pair."""
    folded, full = Schedule(cfg_of({"n": 100}, 32)), Schedule(cfg_of({"n": 100}, 32, fold=False))
    assert (full.depth, folded.depth) == (310, 205)
    assert (full.synapses, folded.synapses, folded.products) == (9900, 4950, 9900)
    assert step_cycles(folded) < 0.7 * step_cycles(full)


@pytest.mark.parametrize("network, lanes", [({"n": 9}, 8), ({"n": 12, "topology": "band", "band": 4}, 4),
                                            ({"n": 12, "topology": "layered", "layers": (3, 6, 3)}, 4),
                                            ({"n": 7, "self_connections": True}, 2)])
def test_every_twin_sits_in_its_columns_bank(network, lanes):
    """The column path has no rotator: a twin (i, j) is streamed in lane j mod P."""
    sch = Schedule(cfg_of(network, lanes))
    st, k = sch.stream, np.nonzero(sch.twins)[0]
    assert len(k) and (k % lanes == st["col"][k] % lanes).all()
    # a twin is a free pair above the diagonal; everything else feeds its row only
    assert (st["col"][k] > st["row"][k]).all() and not sch.clamped[st["col"][k]].any()


def test_code_images_round_trip_and_refuse_asymmetric_codes():
    cfg = cfg_of({"n": 8}, 4, train={"batch_size": 1})
    sch = Schedule(cfg)
    rng = np.random.default_rng(1)
    params = FixedParams.from_float(cfg, rng.normal(0, 0.2, (8, 8)), np.zeros(8))
    img = sch.code_image(params.codes_w, params.class_w)
    back = sch.codes_from_image(img["codes"], np.zeros_like(params.codes_w))
    mask = sch.mask
    assert np.array_equal(back[:, mask], params.codes_w[:, mask])      # both copies, from one
    bad = params.codes_w.copy()
    bad[0, 1, 0] += 1
    with pytest.raises(ValueError, match="one copy of each symmetric pair"):
        sch.code_image(bad, params.class_w)


def test_a_folded_learner_has_no_mirrors():
    plan = LearnPlan(cfg_of({"n": 10}, 4))
    assert plan.entries["primary"].sum() == 45 and not plan.entries["mirror"].any()
    assert not plan.mirror_base.any()


@pytest.mark.parametrize("network, lanes, mode", [
    ({"n": 9}, 8, "step"),                          # short rows: words holding two rows' twins
    ({"n": 11, "topology": "band", "band": 3, "self_connections": True}, 4, "relax"),
    ({"n": 12, "topology": "layered", "layers": (3, 6, 3)}, 4, "relax"),
    ({"n": 10, "activation": "tanh", "dynamics": "euler"}, 2, "step"),
    ({"n": 11}, 3, "relax"),                        # P not a power of two: the blocks from a table
], ids=["dense P8", "band diagonal", "layered", "tanh", "P3"])
def test_folded_engine_is_bit_exact(network, lanes, mode):
    """Every step (or fixed point), code after LEARN and cycle count equals the model's."""
    cfg = cfg_of(network, lanes, train={"batch_size": 2},
                 fixed={"state_frac": 6} if network.get("activation") == "tanh" else {})
    report = simulate_case(make_case(cfg, 4), mode=mode)
    assert report["mode"] == mode and report["pulses"] > 0
