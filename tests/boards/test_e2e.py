"""The whole host stack end to end: EngineDriver -> LinkClient -> frames -> HostLink -> Engine,
in Amaranth's simulator at the byte level, against the fixed-point model bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from memprop.boards.host import run_simulated
from memprop.model import fixed
from memprop.model.config import Config
from memprop.rtl import hostmap as hm
from memprop.rtl.driver import EngineDriver, EngineError
from memprop.rtl.verify import check_case, make_case

CFG = Config.for_algorithm("eqprop", network={"n": 8}, numerics="fixed", train={"batch_size": 1, "seed": 3},
                           device={"preset": "linear-64"}, hw={"lanes": 2})


def test_identity_and_a_relaxation_match_the_model():
    case = make_case(CFG, 5)
    fmt = case.fmt
    W, b = case.params.weights(fmt.device)
    want = fixed.fixed_relax(fmt, W, b, fixed.FixedDrive(case.drive.v0[:1], case.drive.x[:1], case.drive.clamped))

    async def session(t, design):
        driver = EngineDriver(design.engine.layout, t)
        await driver.check_identity()
        before = t.frames
        await driver.load_params(case.params)
        await t.flush()
        loaded = t.frames - before
        back = await driver.read_params(case.params)
        [got] = await driver.recall(fixed.FixedDrive(case.drive.v0[:1], case.drive.x[:1], case.drive.clamped))
        return back, got, loaded

    back, got, loaded = run_simulated(CFG, session)
    assert np.array_equal(got.v, want.v[0])
    assert (got.steps, got.converged) == (int(want.steps[0]), bool(want.converged[0]))
    assert np.array_equal(back.codes_w * case.params.mask, case.params.codes_w * case.params.mask)
    assert np.array_equal(back.codes_b, case.params.codes_b)
    # posted writes: 56 codes in bursts of 32 (the simulated link's buffer), the biases, t and seed
    assert loaded == 2 + 1 + 1


def test_a_bitstream_for_another_config_is_refused():
    other = CFG.replace(network={"n": 9})

    async def session(t, design):
        driver = EngineDriver(hm.Layout(fixed.Formats(other)), t)
        with pytest.raises(EngineError, match="does not match the config"):
            await driver.check_identity()

    run_simulated(CFG, session)


@pytest.mark.slow
@pytest.mark.parametrize("posted", [True, False])
def test_training_step_through_the_link_is_bit_exact(posted):
    """verify.check_case (every relaxation step, STORE, LEARN, the codes after it) over the link."""
    case = make_case(CFG, 11)

    async def session(t, design):
        return await check_case(EngineDriver(design.engine.layout, t), case)

    report = run_simulated(CFG, session, posted=posted)
    assert report["pulses"] > 0
