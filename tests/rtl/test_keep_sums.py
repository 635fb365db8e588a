"""hw.keep_sums: a step whose input state is the last step's reads the kept sums (docs/rtl.md,
"Kept sums"). Bit-exact with the model and cheaper where they hold; every write that changes what
they were computed from (state, inputs, codes, RESTORE, LEARN) makes the next step stream again,
which these tests see both in the states (stale sums give other states) and in the cycle counter."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from memprop.model import fixed
from memprop.model.config import Config
from memprop.rtl import cycles
from memprop.rtl import hostmap as hm
from memprop.rtl.driver import EngineDriver
from memprop.rtl.engine import Engine
from memprop.rtl.simbus import AmaranthBus
from memprop.rtl.verify import expected, first_difference, make_case

SEED = 5          # a case whose free phase reaches an exact fixed point (16 steps)


def keep_config(fold: bool) -> Config:
    return Config.for_algorithm("eqprop", network={"n": 10, "max_steps": 40}, numerics="fixed",
                                device={"preset": "linear-64"}, train={"batch_size": 1},
                                hw={"lanes": 4, "fold": fold, "keep_sums": True})


def run(cfg: Config, between=None, after=None) -> tuple:
    """Load a case, relax it free, do `between(drv, out)`, then relax it nudged (+beta); `after`:
    more driver work on the same engine. Returns the case and what the driver saw."""
    case = make_case(cfg, SEED)
    dut = Engine(cfg)
    out = {}

    async def bench(ctx):
        drv = EngineDriver(dut.layout, AmaranthBus(ctx, dut.bus))
        await drv.load_params(case.params)
        await drv.load_sample(case.drive.v0[0], case.drive.x[0], case.target.values[0])
        out["free"] = await drv.relax(hm.SIGN_FREE)
        if between is not None:
            await between(drv, out)
        out["nudged"] = await drv.relax(hm.SIGN_PLUS)
        if after is not None:
            await after(drv, out)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return case, dut.layout.schedule, out


def model_relax(case, params, v0, x, sign: int):
    fmt = case.fmt
    W, b = params.weights(fmt.device)
    drive = fixed.FixedDrive(v0[None], x[None], case.drive.clamped)
    target = fixed.FixedTarget(case.target.values[:1], case.target.units) if sign else None
    return fixed.fixed_relax(fmt, W, b, drive, target, sign)


def assert_agrees(what, got, model):
    i = first_difference(got.v, model.v[0])
    assert i is None, f"{what}: neuron {i}: rtl {int(got.v[i])}, model {int(model.v[0][i])}"
    assert got.steps == int(model.steps[0])


@pytest.mark.parametrize("fold", [False, True])
def test_a_nudged_phase_after_an_exact_fixed_point_reads_the_kept_sums(fold):
    case, sch, out = run(keep_config(fold))
    free = model_relax(case, case.params, case.drive.v0[0], case.drive.x[0], 0)
    assert free.converged[0], "the case must reach an exact fixed point for the sums to be kept"
    assert_agrees("free", out["free"], free)
    nudged = model_relax(case, case.params, free.v[0], case.drive.x[0], 1)
    assert_agrees("nudged", out["nudged"], nudged)
    assert out["free"].cycles == cycles.relax_cycles(sch, out["free"].steps)
    assert out["nudged"].cycles == cycles.relax_cycles(sch, out["nudged"].steps, reused=True)
    assert cycles.reuse_step_cycles(sch) < cycles.step_cycles(sch)


@pytest.mark.parametrize("what", ["state", "input", "code", "restore"])
def test_a_write_between_phases_makes_the_next_step_stream(what):
    """A stale sum would give the nudged phase other states than the model's (checked) and a
    reused step's cycles (checked too)."""
    cfg = keep_config(fold=True)
    case0 = make_case(cfg, SEED)
    changed = case0.params.copy()
    if what == "code":    # one pair's code moved: (0, 1) and its twin
        old = changed.codes_w[:, 0, 1].copy()
        changed.codes_w[:, 0, 1] = changed.codes_w[:, 1, 0] = np.where(old > 20, old - 17, old + 17)

    async def between(drv, out):
        v0, x = out["free"].v.copy(), case0.drive.x[0].copy()
        if what == "state":
            v0[9] = int(v0[9]) // 2 - 5
            await drv.bus.write(hm.address(hm.STATE, 9), int(v0[9]) & 0xFFFFFFFF)
        elif what == "input":
            x[2] = -x[2] if x[2] else 1
            await drv.bus.write(hm.address(hm.INPUT, 2), int(x[2]) & 0x3)
        elif what == "code":
            await drv.load_params(changed)
        else:            # RESTORE of a fixed point the host wrote (those writes alone keep the sums)
            v0 = out["free"].v.copy()
            v0[4] = -v0[4] // 2 + 3
            for i in range(cfg.network.n):
                await drv.bus.write(hm.address(hm.FIXPOINT, drv.layout.fixpoint_offset(hm.SET_FREE, 0, i)),
                                    int(v0[i]) & 0xFFFFFFFF)
            await drv.run(hm.OP_RESTORE, set_=hm.SET_FREE, slot=0)
        out["v0"], out["x"] = v0, x

    case, sch, out = run(cfg, between)
    assert out["free"].converged and cfg.fixed.tol_lsb == 0     # the sums held before the write
    assert not np.array_equal(out["v0"], out["free"].v) or not np.array_equal(out["x"], case.drive.x[0]) \
        or what == "code"
    nudged = model_relax(case, changed if what == "code" else case.params, out["v0"], out["x"], 1)
    assert_agrees(f"nudged after a {what} write", out["nudged"], nudged)
    assert out["nudged"].cycles == cycles.relax_cycles(sch, out["nudged"].steps)


def test_learn_makes_the_next_step_stream():
    """After LEARN (codes programmed) a RELAX from the same state streams the new weights."""
    cfg = keep_config(fold=True)
    case0 = make_case(cfg, SEED)
    learned = expected(case0).params
    assert not np.array_equal(learned.codes_w, case0.params.codes_w), "LEARN must change a code here"

    async def after(drv, out):
        await drv.run(hm.OP_STORE, set_=hm.SET_HI, slot=0)
        await drv.run(hm.OP_LEARN)
        out["again"] = await drv.relax(hm.SIGN_PLUS)

    async def between(drv, out):
        await drv.run(hm.OP_STORE, set_=hm.SET_LO, slot=0)

    case, sch, out = run(cfg, between, after)
    assert out["nudged"].converged
    again = model_relax(case, learned, out["nudged"].v, case.drive.x[0], 1)
    assert_agrees("RELAX after LEARN", out["again"], again)
    assert out["again"].cycles == cycles.relax_cycles(sch, out["again"].steps)


def test_the_cycle_model_refuses_a_reuse_the_engine_cannot_make():
    from memprop.rtl.schedule import Schedule

    with pytest.raises(ValueError, match="keep_sums"):
        cycles.relax_cycles(Schedule(keep_config(True).replace(hw={"keep_sums": False})), 3, reused=True)
