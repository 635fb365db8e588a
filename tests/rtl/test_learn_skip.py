"""hw.learn_skip: LEARN passes over the synapses and biases of units whose HI and LO fixed points are
equal in every slot, and ends at once when no unit changed. Same codes as the model (and as the
learner without it), the cycle model exact, fewer cycles; the change tracker alone against a
Python model of it."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from memprop.model import fixed
from memprop.model.config import Config
from memprop.rtl import cycles
from memprop.rtl.changed import LATENCY, ChangedUnits
from memprop.rtl.learn import LEARN_UNCHANGED
from memprop.rtl.learnplan import LearnPlan
from memprop.rtl.verify import make_case, simulate_case

from .test_learner import STORE_TO_LEARN, check_learn, small


# -- the tracker alone --------------------------------------------------------------------------

def test_tracker_follows_every_write():
    """Random writes to both sets (bursts, then idle): once `busy` falls, `changed` is exactly
    "HI differs from LO in some slot" per unit, and `any_changed` its OR; `busy` stays high for
    LATENCY cycles after the last write."""
    n, n_bits, slot_bits, bits = 11, 4, 2, 6
    dut = ChangedUnits(n, n_bits, slot_bits, bits)
    r = np.random.default_rng(3)
    seen = []

    async def bench(ctx):
        sets = np.zeros((2, 1 << slot_bits, n), dtype=np.int64)
        for burst in range(25):
            writes = []
            for _ in range(int(r.integers(1, 12))):
                hi, slot, unit = int(r.integers(0, 2)), int(r.integers(0, 1 << slot_bits)), int(r.integers(0, n))
                # mostly the other set's word: flags must clear as well as set
                value = int(sets[1 - hi, slot, unit]) if r.random() < 0.6 else int(r.integers(-32, 32))
                writes.append((hi, slot, unit, value))
            if burst in (12, 24):               # LO made equal to HI everywhere: nothing changed
                writes = [(0, int(s), int(u), int(sets[1, s, u])) for s, u in zip(*np.nonzero(sets[0] != sets[1]))]
            for hi, slot, unit, value in writes:
                sets[hi, slot, unit] = value
                ctx.set(dut.en, 1)
                ctx.set(dut.hi, hi)
                ctx.set(dut.slot, slot)
                ctx.set(dut.unit, unit)
                ctx.set(dut.value, value)
                await ctx.tick()
            ctx.set(dut.en, 0)
            busy = 0
            while ctx.get(dut.busy):
                busy += 1
                await ctx.tick()
            assert busy == LATENCY - 1          # the write's own cycle, then these
            want = (sets[0] != sets[1]).any(axis=0)
            got = np.array([(ctx.get(dut.changed) >> u) & 1 for u in range(n)], dtype=bool)
            np.testing.assert_array_equal(got, want, err_msg=f"burst {burst}")
            assert ctx.get(dut.any_changed) == int(want.any())
            seen.append(int(want.sum()))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert 0 in seen and max(seen) >= 3          # both "nothing changed" and several units were seen


def test_tracker_refuses_too_many_units():
    with pytest.raises(ValueError, match="unit bits"):
        ChangedUnits(17, 4, 1, 8)


# -- the learner ------------------------------------------------------------------------------------

def partly_changed(cfg: Config, seed: int, units: list[int], slot: int = -1):
    """Random HI fixed points; LO equal to them except `units` in one slot."""
    case = make_case(cfg, seed)
    fmt = case.fmt
    r = np.random.default_rng(seed)
    B, n = cfg.train.batch_size, cfg.network.n
    v_hi = r.integers(fmt.lo, fmt.hi + 1, (B, n))
    v_lo = v_hi.copy()
    for u in units:
        v_lo[slot, u] = fmt.lo if v_hi[slot, u] != fmt.lo else fmt.hi
    return case, (v_hi, v_lo)


SKIP_CONFIGS = {
    "narrow": ({"hw": {"lanes": 4}}, [3]),
    "two lanes, stochastic": ({"hw": {"lanes": 4, "learn_lanes": 2}, "fixed": {"rounding": "stochastic"}}, [0, 8]),
    "wide fold dual": ({"network": {"n": 20}, "hw": {"lanes": 16, "learn_lanes": 8, "threefry": "dual",
                                                      "fold": True}}, [5, 17]),
    "wide mirrors": ({"network": {"n": 21}, "hw": {"lanes": 16, "learn_lanes": 16}, "train": {"batch_size": 3}},
                     [20]),
    "layered carry, an input": ({"network": {"n": 12, "topology": "layered", "layers": (3, 6, 3)},
                                 "hw": {"lanes": 8, "learn_lanes": 8}, "fixed": {"rounding": "carry"}}, [1]),
    "tanh paired": ({"network": {"n": 10, "activation": "tanh", "dynamics": "euler", "self_connections": True},
                     "fixed": {"state_frac": 6}, "hw": {"lanes": 9, "learn_lanes": 9},
                     "train": {"batch_size": 4}}, [4, 9]),
    "band c2c": ({"network": {"n": 10, "topology": "band", "band": 5}, "hw": {"lanes": 2},
                  "device": {"preset": "ideal", "levels": 64, "c2c": 0.2}, "train": {"max_step": 0.1}}, [2]),
}


@pytest.mark.parametrize("name", list(SKIP_CONFIGS))
def test_skipping_learner_is_bit_exact_and_faster(name):
    """A few units changed: the codes (and carries) equal the model's, the cycles the cycle model's,
    and the same LEARN without hw.learn_skip takes more cycles for the same pulses."""
    sections, units = SKIP_CONFIGS[name]
    sections = {**sections, "hw": {**sections.get("hw", {}), "learn_skip": True}}
    cfg = small(**sections)
    case, states = partly_changed(cfg, 4, units)
    skipping = check_learn(cfg, 4, case, states=states)
    assert skipping["pulses"] > 0 and skipping["step"].changed.sum() >= len(units)
    plain_cfg = cfg.replace(hw={"learn_skip": False})
    plain = check_learn(plain_cfg, 4, make_case(plain_cfg, 4), states=states)
    assert plain["pulses"] == skipping["pulses"]
    assert skipping["cycles"] < plain["cycles"]


@pytest.mark.parametrize("name", ["narrow", "wide fold dual", "layered carry, an input"])
def test_nothing_changed_ends_learn_at_once(name):
    """HI equal to LO everywhere: LEARN_UNCHANGED cycles, no code (and no carry) moves."""
    sections, _ = SKIP_CONFIGS[name]
    cfg = small(**{**sections, "hw": {**sections.get("hw", {}), "learn_skip": True}})
    case, states = partly_changed(cfg, 5, [])
    before = case.params.copy()
    out = check_learn(cfg, 5, case, states=states)
    assert out["cycles"] == LEARN_UNCHANGED and out["pulses"] == 0
    np.testing.assert_array_equal(out["after"].codes_w, before.codes_w)
    np.testing.assert_array_equal(out["after"].codes_b, before.codes_b)


def test_learn_waits_for_the_last_store_event():
    """LEARN started in the cycle after the last STORE event: the learner waits until the tracker
    has seen it (a few cycles more than the cycle model), then learns exactly as the model."""
    sections, units = SKIP_CONFIGS["wide fold dual"]
    cfg = small(**{**sections, "hw": {**sections["hw"], "learn_skip": True}})
    case, states = partly_changed(cfg, 6, units)
    out = check_learn(cfg, 6, case, states=states, gap=0)
    assert out["model_cycles"] < out["cycles"] <= out["model_cycles"] + STORE_TO_LEARN


def test_cycle_model_needs_the_changed_units():
    cfg = small(hw={"lanes": 4, "learn_skip": True})
    n = cfg.network.n
    plan = LearnPlan(cfg)
    zeros_w, zeros_b = np.zeros((n, n), dtype=np.int64), np.zeros(n, dtype=np.int64)
    with pytest.raises(ValueError, match="LearnStep.changed"):
        cycles.learner_cycles(plan, zeros_w, zeros_b)
    with pytest.raises(ValueError, match="shape"):
        cycles.learner_cycles(plan, zeros_w, zeros_b, np.zeros(n + 1, dtype=bool))
    assert cycles.learner_cycles(plan, zeros_w, zeros_b, np.zeros(n, dtype=bool)) == LEARN_UNCHANGED


def test_model_reports_the_changed_units():
    cfg = small(hw={"lanes": 4})
    case, (v_hi, v_lo) = partly_changed(cfg, 2, [1, 6], slot=0)
    step = fixed.learn(case.fmt, case.params.copy(), v_hi, v_lo, case.drive.clamped)
    assert np.flatnonzero(step.changed).tolist() == [1, 6]


# -- the engine, through the bus ---------------------------------------------------------------

@pytest.mark.parametrize("sections, mode", [
    ({"network": {"n": 10}, "hw": {"lanes": 4}}, "relax"),
    ({"network": {"n": 10}, "hw": {"lanes": 7, "learn_lanes": 6, "threefry": "dual", "fold": True}}, "step"),
    ({"network": {"n": 12, "topology": "layered", "layers": (3, 6, 3)}, "hw": {"lanes": 8}}, "relax"),
], ids=["plain relax", "fold dual steps", "layered STOREs"])
def test_engine_skips_through_the_bus(sections, mode):
    """The whole engine, driven as a host drives it (STORE or RELAX with the store bit, then
    LEARN): the targets are the free fixed points but for one unit of one sample, so the nudged
    phase moves a few units; every step, fixed point, code and the LEARN cycles equal the model's.
    With every target at the free fixed point nothing changes and LEARN takes LEARN_UNCHANGED."""
    cfg = Config.for_algorithm("eqprop", numerics="fixed", train={"batch_size": 2},
                               device={"preset": "linear-64"}, **sections)
    cfg = cfg.replace(hw={"learn_skip": True})
    case = make_case(cfg, 8)
    fmt = case.fmt
    W, b = case.params.weights(fmt.device)
    free = fixed.fixed_relax(fmt, W, b, case.drive)
    unit = int(np.flatnonzero(case.target.units)[-1])
    case.target.values[:] = free.v
    quiet = simulate_case(case, mode=mode)
    assert quiet["learn_cycles"] == cycles.COMMAND_OVERHEAD + LEARN_UNCHANGED and quiet["pulses"] == 0
    case = make_case(cfg, 8)
    case.target.values[:] = free.v
    case.target.values[0, unit] = fmt.lo if free.v[0, unit] > 0 else fmt.hi
    moved = simulate_case(case, mode=mode)
    assert moved["pulses"] > 0 and moved["learn_cycles"] > quiet["learn_cycles"]
