"""The cycle model of docs/rtl.md, measured in simulation and checked exactly."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from memprop.model.config import Config
from memprop.rtl import cycles
from memprop.rtl.driver import EngineDriver
from memprop.rtl.engine import Engine, step_latency
from memprop.rtl.simbus import AmaranthBus
from memprop.rtl.verify import _phase_results, _reused_phases, expected, make_case, random_config


def measure(case):
    dut = Engine(case.cfg)
    out = {}

    async def bench(ctx):
        drv = EngineDriver(dut.layout, AmaranthBus(ctx, dut.bus))
        await drv.load_params(case.params)
        phases = await drv.train_minibatch(case.drive, case.target, case.params.updates,
                                           decay_steps=case.decay_steps)
        out["relax"] = [(key, r.steps, r.cycles) for key, r in _phase_results(case, expected(case), phases).items()]
        out["learn"] = phases["learn_cycles"]
        out["step"] = (await drv.step()).cycles

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return dut.layout.schedule, out


@pytest.mark.parametrize("seed", [0, 1, 2, 5, 7])
def test_measured_cycles_equal_the_model(seed):
    case = make_case(random_config(100 + seed, max_n=10, max_lanes=5), seed)
    sch, out = measure(case)
    reused = _reused_phases(case, expected(case))
    for key, steps, measured in out["relax"]:
        assert measured == cycles.relax_cycles(sch, steps, key in reused)
    assert out["step"] == cycles.relax_cycles(sch, 1)
    pulses = expected(case).pulses
    assert out["learn"] == cycles.learn_cycles(sch, pulses.pulses_w, pulses.pulses_b, pulses.changed)


@pytest.mark.parametrize("lanes", [1, 2, 3, 4, 5, 8, 13, 28])
@pytest.mark.parametrize("network", [{"n": 100}, {"n": 100, "topology": "band", "band": 60},
                                     {"n": 60, "topology": "layered", "layers": (30, 20, 10)}])
def test_step_cost_is_proportional_to_synapses(network, lanes):
    """cycles per step <= 1.1 ceil(synapses / P) + the constant pipeline latency."""
    cfg = Config.for_algorithm("eqprop", network=network, numerics="fixed", hw={"lanes": lanes},
                               device={"preset": "linear-64"})
    sch = cycles.Schedule(cfg)
    synapses = int(sch.mask[sch.rows].sum())
    assert sch.synapses == synapses
    bound = 1.1 * np.ceil(synapses / lanes) + step_latency(lanes)
    assert cycles.step_cycles(sch) <= bound


def test_a_step_spends_one_controller_cycle_besides_the_stream_and_the_pipeline():
    """L = the pipeline (reads, MAC, finalizer) + STEP_END: no STEP_START cycle and no cycle to
    see the last row's count (session 21: 225 -> 223 cycles a step on the ULX3S). The engine's
    cycle counter is checked against this model above and in every verification case, so a cycle
    put back into the controller fails here, not only as a slower bench."""
    from memprop.boards.build import get_board
    from memprop.rtl.engine import FINAL_LATENCY, READ_LATENCY
    from memprop.rtl.mac import mac_latency
    from memprop.rtl.schedule import Schedule

    assert all(step_latency(p) == READ_LATENCY + mac_latency(p) + FINAL_LATENCY + 1 for p in range(1, 65))
    assert [step_latency(p) for p in (4, 16, 32)] == [16, 17, 18]
    steps = {b: cycles.step_cycles(Schedule(get_board(b).default_config())) for b in ("icebreaker", "ulx3s")}
    assert steps == {"icebreaker": 2475 + 16, "ulx3s": 205 + 18}
