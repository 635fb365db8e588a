"""What the proofs found, pinned in simulation (each was a failed property with a trace)."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from memprop.model.config import Config
from memprop.rtl import hostmap as hm
from memprop.rtl.controller_formal import engine_controller


@pytest.mark.parametrize("fields", [{"set": 3, "slot": 0}, {"set": 0, "slot": 2}, {"set": 1, "slot": 200}])
@pytest.mark.parametrize("op", [hm.OP_STORE, hm.OP_RESTORE])
def test_store_restore_of_a_missing_set_or_slot_is_refused(op, fields):
    """controller.addresses_in_range failed: STORE(set=3) wrote past the fixed-point memory and a
    slot >= batch was truncated onto another slot. Such commands are now refused like an unknown
    opcode: one cycle, the error bit, no fixed-point or state access."""
    cfg = Config.for_algorithm("eqprop", numerics="fixed", network={"n": 6}, train={"batch_size": 2},
                               device={"preset": "linear-64"})
    ctrl = engine_controller(cfg)
    seen = {"access": 0, "busy": 0}

    async def bench(ctx):
        ctx.set(ctrl.command, {"op": op, "sign": 0, **fields})
        ctx.set(ctrl.command_valid, 1)
        await ctx.tick()
        ctx.set(ctrl.command_valid, 0)
        for _ in range(3 * cfg.network.n + 4):
            seen["busy"] += ctx.get(ctrl.busy)
            seen["access"] += sum(ctx.get(s) for s in (ctrl.store_read, ctrl.store_write, ctrl.restore_read,
                                                         ctrl.restore_write))
            await ctx.tick()
        assert ctx.get(ctrl.error) == 1

    sim = Simulator(ctrl)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"access": 0, "busy": 1}


def test_valid_store_still_runs():
    cfg = Config.for_algorithm("eqprop", numerics="fixed", network={"n": 6}, train={"batch_size": 2},
                               device={"preset": "linear-64"})
    ctrl = engine_controller(cfg)
    writes = []

    async def bench(ctx):
        ctx.set(ctrl.command, {"op": hm.OP_STORE, "sign": 0, "set": hm.SET_FREE, "slot": 1})
        ctx.set(ctrl.command_valid, 1)
        await ctx.tick()
        ctx.set(ctrl.command_valid, 0)
        for _ in range(2 * cfg.network.n + 4):
            if ctx.get(ctrl.store_write):
                writes.append((ctx.get(ctrl.set), ctx.get(ctrl.slot), ctx.get(ctrl.write_item)))
            await ctx.tick()
        assert ctx.get(ctrl.error) == 0

    sim = Simulator(ctrl)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert writes == [(hm.SET_FREE, 1, i) for i in range(cfg.network.n)]
