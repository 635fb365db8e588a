"""A layered classifier learns on the engine at its per-layer rates, decayed as the model decays them.

The seed's classifier settings (Frontiers: hard sigmoid, inputs clamped, one-hot targets, rates
alpha1 = 0.1 and alpha2 = 0.05 halved every epoch) on a small network: one engine, two minibatches
(the decay register at 0 and at 2 epochs), every relaxation step, stored fixed point, device code
and LEARN cycle count compared with the model (`rtl.verify.check_case`), whose update is
`model.classify.fixed_layered_update` with the same decay steps.
"""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from memprop.model import classify, fixed
from memprop.model.numerics import Formats
from memprop.model.tasks import Task
from memprop.rtl import hostmap as hm
from memprop.rtl.driver import EngineDriver
from memprop.rtl.engine import Engine
from memprop.rtl.learnplan import LearnPlan
from memprop.rtl.simbus import AmaranthBus
from memprop.rtl.verify import Case, check_case, expected


def small_classifier():
    """A 6-4-3 classifier with the seed's settings, minibatch 2, two MAC lanes."""
    r = np.random.default_rng(0)
    x, y = r.random((8, 6)), r.integers(0, 3, 8)
    task = Task("tiny", x, y, x, y, classes=(0, 1, 2), shape=(2, 3))
    return classify.classifier_config(task, (4,), batch_size=2, numerics="fixed", device={"preset": "linear-64"},
                                      hw={"lanes": 2}, max_step=0.1), task


def classifier_case(cfg, task, decay_steps: int, seed: int) -> Case:
    """Glorot initial weights programmed into the devices, two training images, one-hot targets."""
    r = np.random.default_rng(seed)
    fmt = Formats(cfg)
    init = classify.initial_params(cfg, r)
    params = fixed.FixedParams.from_float(cfg, init.W, r.uniform(-0.2, 0.2, cfg.network.n))
    params.updates = int(r.integers(0, 1000))
    idx = r.choice(len(task.y_train), cfg.train.batch_size, replace=False)
    drive = fixed.fixed_drive_for(fmt, task.x_train[idx])
    target = fixed.fixed_target_for(fmt, classify.one_hot(task.y_train[idx], task.n_classes))
    return Case(cfg, seed, params, drive, target, decay_steps)


def test_classifier_learns_at_per_layer_rates_with_decay():
    cfg, task = small_classifier()
    fmt = Formats(cfg)
    assert cfg.train.layer_lr == (0.1, 0.05) and fmt.decay_shift == 1
    assert len(LearnPlan(cfg).rates) == 2                    # the engine holds two rates, not alpha1 everywhere
    cases = [classifier_case(cfg, task, decay_steps, seed) for decay_steps, seed in ((0, 1), (2, 2))]
    plans = [expected(case) for case in cases]
    for case, exp in zip(cases, plans):
        # the scoreboard's model update is the classifier's layered one, at the same decay
        layered = case.params.copy()
        classify.fixed_layered_update(fmt, layered, case.drive, case.target, decay_steps=case.decay_steps)
        np.testing.assert_array_equal(layered.codes_w, exp.params.codes_w)
        np.testing.assert_array_equal(layered.codes_b, exp.params.codes_b)
        # both weight layers learn (the pulses of each layer reach the devices)
        first, second = exp.pulses.pulses_w[:6, 6:10], exp.pulses.pulses_w[6:10, 10:]
        assert np.abs(first).sum() > 0 and np.abs(second).sum() > 0
    dut = Engine(cfg)
    reports = []

    async def bench(ctx):
        driver = EngineDriver(dut.layout, AmaranthBus(ctx, dut.bus))
        for case, exp in zip(cases, plans):
            reports.append(await check_case(driver, case, exp, mode="relax"))
            assert await driver.reg(hm.R_DECAY) == case.decay_steps
        await driver.set_reg(hm.R_DECAY, 1000)                 # the register saturates where every rate has
        assert await driver.reg(hm.R_DECAY) == hm.DECAY_STEPS_MAX

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(reports) == 2 and all(r["pulses"] > 0 for r in reports)


def test_the_case_tells_the_layers_apart():
    """The comparison above would catch a learner that took a synapse's layer wrongly: with the two
    rates swapped, or with the decay ignored, the model's codes differ from the right ones."""
    cfg, task = small_classifier()
    swapped = cfg.replace(train={"layer_lr": (0.05, 0.1)})
    for decay_steps, seed in ((0, 1), (2, 2)):
        case = classifier_case(cfg, task, decay_steps, seed)
        right = expected(case).params
        wrong = expected(Case(swapped, seed, case.params, case.drive, case.target, decay_steps)).params
        assert np.any(wrong.codes_w != right.codes_w)
        if decay_steps:
            undecayed = expected(Case(cfg, seed, case.params, case.drive, case.target, 0)).params
            assert np.any(undecayed.codes_w != right.codes_w)


def test_one_rate_and_no_decay_build_the_constant_learner():
    """Without per-layer rates or decay the learner is what it was: constants, no decay port or register."""
    from memprop.model.config import Config
    from memprop.rtl.learn import Learner
    from memprop.rtl.learnlane import Quantiser

    plain = Config.for_algorithm("eqprop", numerics="fixed", network={"n": 8}, device={"preset": "linear-64"})
    same = small_classifier()[0].replace(train={"layer_lr": (0.1, 0.1), "lr_decay": 1.0})
    for cfg in (plain, same):
        fmt = Formats(cfg)
        assert Quantiser.constant_for(fmt) and len(LearnPlan(cfg).rates) == 1
        learner = Learner(cfg, hm.Layout(fmt))
        assert "decay" not in learner.signature.members
        learner._MustUse__silence = True
    decaying = small_classifier()[0]
    learner = Learner(decaying, hm.Layout(Formats(decaying)))
    assert "decay" in learner.signature.members
    learner._MustUse__silence = True


def test_driver_writes_the_decay_only_where_the_engine_has_it():
    import asyncio

    import pytest

    class Recorder:
        def __init__(self):
            self.writes = []

        async def write(self, addr, data):
            self.writes.append((addr, data))

        async def read(self, addr):
            return 0

    decaying = small_classifier()[0]
    constant = decaying.replace(train={"lr_decay": 1.0})
    for cfg, steps, want in ((decaying, 2, [2]), (decaying, 40, [hm.DECAY_STEPS_MAX]), (constant, 2, [])):
        bus = Recorder()
        asyncio.run(EngineDriver(hm.Layout(Formats(cfg)), bus).set_decay(steps))
        assert bus.writes == [(hm.address(hm.REG, hm.R_DECAY), v) for v in want]
    with pytest.raises(ValueError, match="decay_steps"):
        asyncio.run(EngineDriver(hm.Layout(Formats(decaying)), Recorder()).set_decay(-1))
