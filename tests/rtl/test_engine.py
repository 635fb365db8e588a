"""The engine against the fixed-point model in Amaranth's simulator: every step, every code."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from memprop.model.config import Config
from memprop.model.numerics import Formats
from memprop.rtl import hostmap as hm
from memprop.rtl.driver import EngineDriver, EngineError
from memprop.rtl.engine import WIDE_CODE_LANES, Engine
from memprop.rtl.learn import paired_reads
from memprop.rtl.learnplan import LearnPlan
from memprop.rtl.simbus import AmaranthBus
from memprop.rtl.verify import (Mismatch, check_steps_and_learn, expected, make_case, random_config,
                                simulate_case)


def simulate(case, exp=None, mode="step"):
    return simulate_case(case, exp, mode)


def steps_and_learn(cfg, case, steps: int) -> dict:
    """`check_steps_and_learn` on the engine in Amaranth's simulator: its report."""
    dut = Engine(cfg)
    out = {}

    async def bench(ctx):
        driver = EngineDriver(dut.layout, AmaranthBus(ctx, dut.bus))
        out["report"] = await check_steps_and_learn(driver, case, steps=steps)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out["report"]


@pytest.mark.parametrize("seed", range(6))
def test_random_config_is_bit_exact(seed):
    """Odd seeds relax with RELAX commands (the engine decides convergence), even ones step by step."""
    cfg = random_config(seed, max_n=12, max_lanes=6)
    report = simulate(make_case(cfg, seed), mode="relax" if seed % 2 else "step")
    assert report["mode"] == ("relax" if seed % 2 else "step")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6, 60))
def test_random_config_is_bit_exact_sweep(seed):
    cfg = random_config(seed, max_n=20, max_lanes=8)
    simulate(make_case(cfg, seed), mode="relax" if seed % 2 else "step")


def test_wide_code_words_read_back_bit_exact():
    """From WIDE_CODE_LANES lanes a host read of a code answers a cycle later (a register stage):
    every code the host reads after LEARN is still the model's."""
    cfg = Config.for_algorithm("eqprop", network={"n": 9}, numerics="fixed", train={"batch_size": 2},
                               device={"preset": "linear-64"}, hw={"lanes": WIDE_CODE_LANES, "learn_lanes": 3})
    report = simulate(make_case(cfg, 5), mode="relax")
    assert report["mode"] == "relax"


@pytest.mark.parametrize("network, nudge", [
    ({"n": 12}, "positive"),
    ({"n": 12, "topology": "layered", "layers": (3, 6, 3), "activation": "tanh", "dynamics": "euler"}, "centered"),
    ({"n": 10, "activation": "tanh", "dynamics": "euler"}, "positive"),
    ({"n": 12, "topology": "layered", "layers": (4, 5, 3)}, "centered"),
], ids=["dense", "layered tanh centered", "tanh", "layered centered"])
def test_paired_learners_are_bit_exact_through_the_engine(network, nudge):
    """A wide learner (W >= PAIRED_READ_LANES) reads HI and LO together from its own copies, the
    rows' included, written from STORE or RELAX with the store bit (dense) and host writes (the
    short check): every stored fixed point, code after LEARN and command's cycle count equals the
    model's, minibatch 3."""
    cfg = Config.for_algorithm("eqprop", numerics="fixed", network=network,
                               fixed={"state_frac": 6} if network.get("activation") == "tanh" else {},
                               train={"batch_size": 3, "nudge": nudge}, device={"preset": "linear-64"},
                               hw={"lanes": 8, "learn_lanes": 8})
    assert paired_reads(LearnPlan(cfg).width)
    case = make_case(cfg, 3)
    report = simulate(case, mode="relax")
    assert report["mode"] == "relax" and report["learn_cycles"] > 0
    assert steps_and_learn(cfg, case, steps=1)["pulses"] > 0


def test_learn_compares_device_classes():
    """A device class that LEARN (or anything) changed is a mismatch: the engine's entries carry them."""
    cfg = Config.for_algorithm("eqprop", network={"n": 6}, numerics="fixed", train={"batch_size": 1},
                               device={"preset": "linear-64", "d2d_classes": 4, "d2d": 0.1}, hw={"lanes": 2})
    case = make_case(cfg, 4)
    exp = expected(case)
    i, j = map(int, np.argwhere(case.params.mask)[0])
    exp.params.class_w = exp.params.class_w.copy()
    exp.params.class_w[0, i, j] = (exp.params.class_w[0, i, j] + 1) % 4
    with pytest.raises(Mismatch, match=rf"synapse \({i}, {j}\) has class"):
        simulate(case, exp)


def test_a_wrong_stored_fixed_point_is_reported():
    cfg = Config.for_algorithm("eqprop", network={"n": 6}, numerics="fixed", train={"batch_size": 2},
                               device={"preset": "linear-64"}, hw={"lanes": 2})
    case = make_case(cfg, 2)
    exp = expected(case)
    key = (1, "plus")
    exp.traces[key][-1] = exp.traces[key][-1].copy()
    exp.traces[key][-1][3] += 1
    with pytest.raises(Mismatch, match=r"sample 1, plus phase \(RELAX\): neuron 3"):
        simulate(case, exp, mode="relax")


def test_a_wrong_model_is_reported_as_a_mismatch():
    cfg = Config.for_algorithm("eqprop", network={"n": 8}, numerics="fixed", train={"batch_size": 1},
                               device={"preset": "linear-64"}, hw={"lanes": 2})
    case = make_case(cfg, 3)
    exp = expected(case)
    key = (0, "free")
    exp.traces[key][0] = exp.traces[key][0].copy()
    exp.traces[key][0][5] += 1          # the model is off by one LSB in neuron 5 at step 1
    with pytest.raises(Mismatch, match=r"sample 0, free phase, step 1, neuron 5"):
        simulate(case, exp)


def test_stuck_devices_and_per_class_c2c_are_bit_exact():
    """Stuck classes (constant GMAP, identity UP/DOWN) next to noisy working classes: the learner's
    per-class C2C lookup gives every code the model gives, and no stuck code ever changes."""
    import numpy as np

    from memprop.model.numerics import Formats

    cfg = Config.for_algorithm("eqprop", network={"n": 8}, numerics="fixed",
                               train={"batch_size": 2, "lr": 0.5, "max_step": 0.05, "seed": 5},
                               device={"preset": "linear-64", "levels": 16, "stuck": 0.3, "c2c": 0.3, "d2d": 0.1,
                                       "d2d_classes": 2}, hw={"lanes": 2})
    tables = Formats(cfg).device
    assert tables.stuck_classes == (2, 3) and list(tables.c2c_table) == [19661, 19661, 0, 0]
    case = make_case(cfg, 1)
    exp = expected(case)
    simulate(case, exp)
    stuck = tables.is_stuck(case.params.class_w) & case.params.mask[None]
    assert stuck.any()
    assert np.array_equal(exp.params.codes_w[stuck], case.params.codes_w[stuck])
    partner_stuck = stuck.any(axis=0) & ~stuck.all(axis=0)
    assert np.any(exp.pulses.pulses_w[np.triu(partner_stuck)] != 0)          # pulses reached such pairs
    assert np.any(exp.params.codes_w != case.params.codes_w)


def test_random_campaign_covers_stuck_devices_and_per_class_c2c():
    from memprop.model.numerics import Formats

    tables = [Formats(random_config(seed, max_n=20, max_lanes=8)).device for seed in range(60)]
    both = [t for t in tables if t.stuck_classes and t.c2c_table.any()]
    assert len(both) >= 5 and any(t.devices == 2 for t in both) and any(t.devices == 1 for t in both)
    default = [Formats(random_config(seed, max_n=12, max_lanes=6)).device for seed in range(6)]
    assert any(t.stuck_classes and t.c2c_table.any() for t in default)     # in the default suite too


def spram_config(cfg):
    """`cfg` with its codes in SPRAM, with as many of its lanes as the four blocks hold."""
    from memprop.rtl.codemem import spram_fits

    lanes = cfg.hw.lanes
    while lanes > 1 and spram_fits(1, lanes, hm.Layout(Formats(cfg)).entry_bits):
        lanes -= 1
    return cfg.replace(hw={"lanes": lanes, "code_memory": "spram"})


@pytest.mark.parametrize("seed", [1, 3])
def test_spram_code_memory_is_bit_exact(seed):
    """The SPRAM back end (the cell's Amaranth model) behind the same engine: every step, every code."""
    cfg = spram_config(random_config(seed, max_n=12, max_lanes=6))
    simulate(make_case(cfg, seed))


@pytest.mark.parametrize("seed", [0, 5])
def test_steps_and_learn_check(seed):
    """The short check that gate-level runs use: a few steps, then LEARN from written fixed points."""
    cfg = random_config(seed, max_n=10, max_lanes=4)
    report = steps_and_learn(cfg, make_case(cfg, seed), steps=3)
    assert report["steps"] >= 1 and report["learn_cycles"] > 0


def test_carries_live_across_learns_and_host_writes_zero_them():
    """Rounding "carry" in the engine: a reload of the weights zeroes every carry (a second LEARN from
    reloaded weights equals the first, as the model's from zero carries), and a further LEARN goes on
    from the carries the last one left (the model's second update from the same fixed points)."""
    from memprop.model import fixed
    from memprop.rtl.verify import compare_codes

    cfg = Config.for_algorithm("eqprop", network={"n": 8}, numerics="fixed", train={"batch_size": 2, "lr": 1.0, "max_step": 0.2},
                               fixed={"rounding": "carry"}, device={"preset": "reram-array-om", "d2d_classes": 2},
                               hw={"lanes": 4})
    case = make_case(cfg, 3)
    fmt = case.fmt
    dut = Engine(cfg)
    out = {}

    async def bench(ctx):
        driver = EngineDriver(dut.layout, AmaranthBus(ctx, dut.bus))
        first = await check_steps_and_learn(driver, case, steps=1)
        await check_steps_and_learn(driver, case, steps=1)          # reloaded: from zero carries again
        r = np.random.default_rng([case.seed, 1])                     # the fixed points check_steps_and_learn wrote
        n, B = cfg.network.n, dut.layout.batch
        lo = r.integers(fmt.lo, fmt.hi + 1, (B, n))
        hi = np.clip(lo + r.integers(-40, 41, (B, n)), fmt.lo, fmt.hi)
        want = case.params.copy()
        for _ in range(2):
            step = fixed.learn(fmt, want, fixed.activation(fmt, hi), fixed.activation(fmt, lo), case.drive.clamped)
        await driver.run(hm.OP_LEARN)
        compare_codes(case, await driver.read_params(case.params), want)
        out.update(first=first, second_pulses=int(np.abs(step.pulses_w).sum()), carries=int(np.abs(want.carry_w).sum()))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert out["first"]["pulses"] > 0 and out["second_pulses"] > 0 and out["carries"] > 0


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("nudge", ["positive", "centered"])
def test_relax_stores_the_fixed_point_as_it_goes(fused, nudge, monkeypatch):
    """With every unit relaxed, RELAX with the store bit leaves in (set, slot) what a STORE after it
    would have copied: the stored fixed points and the codes after LEARN are the model's either way,
    and no STORE runs for a used slot."""
    cfg = Config.for_algorithm("eqprop", network={"n": 7}, numerics="fixed",
                               train={"batch_size": 2, "nudge": nudge}, device={"preset": "linear-64"},
                               hw={"lanes": hm.RELAX_STORE_LANES, "learn_lanes": 3})
    assert hm.Layout(Formats(cfg)).relax_store
    if not fused:
        async def without(self):
            return False
        monkeypatch.setattr(EngineDriver, "relax_stores", without)
    for mode in ("relax", "step"):
        report = simulate(make_case(cfg, 7), mode=mode)
        assert report["relax_store"] is fused
        stores_per_sample = 3 if nudge == "centered" else 2
        assert report["stores"] == (0 if fused else 2 * stores_per_sample)


def _run_commands(cfg, commands):
    """Each (op, set, slot, store) command on a fresh engine; whether the engine refused it."""
    dut = Engine(cfg)
    refused = []

    async def bench(ctx):
        driver = EngineDriver(dut.layout, AmaranthBus(ctx, dut.bus))
        for op, set_, slot, store in commands:
            try:
                await driver.run(op, set_=set_, slot=slot, store=store)
                refused.append(False)
            except EngineError:
                refused.append(True)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return refused


def test_relax_store_is_refused_where_it_cannot_be_honoured():
    """The store bit on a set or slot that does not exist, or on a design whose steps do not write every
    unit back (clamped inputs: their states would be missing), is refused with the error bit, and the
    engine goes on; without the store bit the same RELAX runs. Designs narrower than
    RELAX_STORE_LANES leave the feature out and refuse the bit too."""
    dense = Config.for_algorithm("eqprop", network={"n": 5}, numerics="fixed", train={"batch_size": 2},
                                 device={"preset": "linear-64"}, hw={"lanes": hm.RELAX_STORE_LANES, "learn_lanes": 2})
    assert _run_commands(dense, [(hm.OP_RELAX, hm.SET_HI, 2, True), (hm.OP_STEP, 3, 0, True),
                                 (hm.OP_RELAX, hm.SET_HI, 1, True), (hm.OP_STEP, hm.SET_FREE, 0, True)]) \
        == [True, True, False, False]
    narrow = dense.replace(hw={"lanes": hm.RELAX_STORE_LANES - 1})     # a narrow design leaves the feature out
    assert not hm.Layout(Formats(narrow)).relax_store
    assert _run_commands(narrow, [(hm.OP_RELAX, hm.SET_HI, 1, True), (hm.OP_RELAX, hm.SET_HI, 1, False)]) \
        == [True, False]
    layered = Config.for_algorithm("eqprop", network={"n": 7, "topology": "layered", "layers": [3, 2, 2]}, numerics="fixed",
                                   train={"batch_size": 1}, device={"preset": "linear-64"}, hw={"lanes": 2})
    assert not hm.Layout(Formats(layered)).relax_store
    assert _run_commands(layered, [(hm.OP_RELAX, hm.SET_HI, 0, True), (hm.OP_RELAX, hm.SET_HI, 0, False)]) \
        == [True, False]


@pytest.mark.parametrize("fold", [False, True])
def test_two_level_activation_copies_are_ready_for_the_next_step(fold):
    """With more than one group of lanes the activation copies are written two cycles after the
    state (statemem.py): N <= P, so the next step's first word reads every unit, the last one
    written included, as early as the controller allows. RELAX, many steps, bit-exact. (Checked
    by delaying the copies' writes: it passes up to 5 cycles and fails from 6.)"""
    from memprop.rtl.statemem import two_level_copies

    cfg = Config.for_algorithm("eqprop", network={"n": 6}, numerics="fixed", train={"batch_size": 1},
                               hw={"lanes": 8, "fold": fold})
    assert two_level_copies(Formats(cfg), cfg.hw.lanes)
    report = simulate(make_case(cfg, 3), mode="relax")
    assert report["mode"] == "relax"
