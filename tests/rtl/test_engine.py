"""The engine against the fixed-point model in Amaranth's simulator: every step, every code."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from memprop.model.config import Config
from memprop.model.numerics import Formats
from memprop.rtl import hostmap as hm
from memprop.rtl.driver import EngineDriver
from memprop.rtl.engine import Engine
from memprop.rtl.simbus import AmaranthBus
from memprop.rtl.verify import Mismatch, check_case, expected, make_case, random_config


def simulate(case, exp=None):
    dut = Engine(case.cfg)
    out = {}

    async def bench(ctx):
        driver = EngineDriver(dut.layout, AmaranthBus(ctx, dut.bus))
        out["report"] = await check_case(driver, case, exp)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out["report"]


@pytest.mark.parametrize("seed", range(6))
def test_random_config_is_bit_exact(seed):
    cfg = random_config(seed, max_n=12, max_lanes=6)
    simulate(make_case(cfg, seed))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6, 60))
def test_random_config_is_bit_exact_sweep(seed):
    cfg = random_config(seed, max_n=20, max_lanes=8)
    simulate(make_case(cfg, seed))


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
