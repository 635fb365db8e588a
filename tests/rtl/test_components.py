"""Each datapath component on its own, against the fixed-point model's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from memprop.model.config import Config
from memprop.model import fixed
from memprop.model.fixed import FixedTarget, fixed_step
from memprop.model.numerics import Formats, bitlen_signed
from memprop.rtl.mac import ADDS_PER_STAGE, MacArray, first_stage_adds, mac_latency, tree_stages
from memprop.rtl.neuron import NEURON_LATENCY, NeuronUpdate

CONFIGS = [
    {"network": {"n": 8}},
    {"network": {"n": 8, "activation": "hard_sigmoid"}, "train": {"beta": 0.5}},
    {"network": {"n": 8, "activation": "tanh", "dynamics": "euler", "eps": 0.25}, "train": {"beta": 2.0},
     "fixed": {"state_frac": 6, "weight_frac": 7}},
]


def _sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("sections", CONFIGS)
def test_neuron_update_equals_the_model_step(sections):
    """One unit's update for random and extreme operands equals model.fixed.fixed_step."""
    cfg = Config.for_algorithm("eqprop", numerics="fixed", device={"preset": "linear-64"}, **sections)
    fmt = Formats(cfg)
    n = cfg.network.n
    rng = np.random.default_rng(0)
    cases = []
    for k in range(150):
        W = rng.integers(-fmt.w_max, fmt.w_max + 1, (n, n))
        if k % 10 == 0:   # extremes: every weight at +-w_max against saturated states
            W = np.full((n, n), fmt.w_max * (1 if k % 20 else -1))
        W = np.triu(W) + np.triu(W, 1).T
        np.fill_diagonal(W, 0)   # no self-connections: the accumulator bound's degree is n - 1
        b = rng.integers(-fmt.w_max, fmt.w_max + 1, n)
        v = rng.integers(fmt.lo, fmt.hi + 1, (1, n)) if k % 10 else np.full((1, n), fmt.hi)
        x = rng.integers(-1, 2, (1, n))
        t = rng.integers(fmt.lo, fmt.hi + 1, (1, n))
        sign = int(rng.integers(-1, 2))
        want = fixed_step(fmt, W, b, v, x, FixedTarget(t, np.ones(n, bool)), sign)[0, 0]
        a = fmt.act_lut[v[0] - fmt.lo]
        cases.append(dict(acc=int(a @ W[:, 0]), bias=int(b[0]), x=int(x[0, 0]), t=int(t[0, 0]), v=int(v[0, 0]),
                          sign=sign, deriv=int(fmt.der_lut[v[0, 0] - fmt.lo]), want=int(want)))
    dut = NeuronUpdate(fmt, row_bits=4)

    async def bench(ctx):
        for c in cases:
            ctx.set(dut.valid, 1)
            ctx.set(dut.acc, c["acc"])
            ctx.set(dut.bias, c["bias"])
            ctx.set(dut.x, c["x"])
            ctx.set(dut.target, c["t"])
            ctx.set(dut.v, c["v"])
            ctx.set(dut.is_output, 1)
            ctx.set(dut.sign, c["sign"])
            ctx.set(dut.deriv, c["deriv"])
            await ctx.tick().repeat(NEURON_LATENCY)
            assert ctx.get(dut.o_valid) == 1
            got = ctx.get(dut.v_new)
            assert got == c["want"], f"{c}: rtl {got}"
            assert ctx.get(dut.delta) == abs(c["want"] - c["v"])

    _sim(dut, bench)


@pytest.mark.parametrize("lanes", [1, 3, 4, 8, 32])
def test_mac_array_row_sums_over_a_segmented_stream(lanes):
    """Blocks holding a row end and the next row's start give exact per-row sums."""
    rng = np.random.default_rng(lanes)
    lengths = rng.integers(lanes, 3 * lanes + 2, 12)
    w_bits, a_bits = 11, 10
    acc_bits = bitlen_signed(int(lengths.max()) * 2 ** (w_bits - 1) * 2 ** (a_bits - 1))
    w = [rng.integers(-(2 ** (w_bits - 1)), 2 ** (w_bits - 1), n) for n in lengths]
    a = [rng.integers(-(2 ** (a_bits - 1)), 2 ** (a_bits - 1), n) for n in lengths]
    want = [int(np.dot(x, y)) for x, y in zip(w, a)]
    flat = [(wi, ai, k == len(x) - 1) for x, y in zip(w, a) for k, (wi, ai) in enumerate(zip(x, y))]
    flat += [(0, 0, False)] * ((-len(flat)) % lanes)
    blocks = [flat[i:i + lanes] for i in range(0, len(flat), lanes)]
    dut = MacArray(lanes, w_bits, a_bits, acc_bits)
    got = []

    async def collect(ctx):
        async for _, _, valid, total in ctx.tick().sample(dut.row_valid, dut.row_sum):
            if valid:
                got.append(total)

    async def bench(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for block in blocks:
            ctx.set(dut.valid, 1)
            for lane, (wi, ai, last) in enumerate(block):
                ctx.set(dut.w[lane], int(wi))
                ctx.set(dut.a[lane], int(ai))
            ctx.set(dut.entry, sum(1 << i for i in range(len(block))))
            ctx.set(dut.last, sum(1 << i for i, (_, _, last) in enumerate(block) if last))
            await ctx.tick()
        ctx.set(dut.valid, 0)
        await ctx.tick().repeat(mac_latency(lanes) + 2)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(collect)
    sim.add_testbench(bench)
    sim.run_until(1e-8 * (len(blocks) + 20))
    assert got == want


def test_adder_tree_stages_cover_every_level_with_the_first_lightest():
    """The first stage (behind the head/tail select) takes the levels the later stages leave, so
    the latency is that of full stages and no stage adds more than ADDS_PER_STAGE levels."""
    for lanes in range(1, 130):
        levels, first = (lanes - 1).bit_length(), first_stage_adds(lanes)
        assert first + ADDS_PER_STAGE * (tree_stages(lanes) - 1) == levels, lanes
        assert min(levels, 1) <= first <= ADDS_PER_STAGE, lanes
    assert (tree_stages(32), first_stage_adds(32)) == (3, 1)        # the ULX3S's P = 32


@pytest.mark.parametrize("sections", CONFIGS)
@pytest.mark.parametrize("lanes, lutram", [(1, 0), (9, 3)])
def test_state_memory_copies_every_write_to_every_lane(sections, lanes, lutram):
    """Each lane reads ρ(v) of any unit and half `copy_latency` cycles after its state was written
    (two where the hard activations pass two register levels, `two_level_copies`: the write
    registers of the lanes' group, fanout.LANES_PER_COPY lanes each, then the copy's own),
    whichever copy serves it; the state port reads v."""
    from memprop.rtl.statemem import StateMemory

    cfg = Config.create(numerics="fixed", **sections)
    fmt = Formats(cfg)
    n, nb = cfg.network.n, 3
    dut = StateMemory(fmt, nb, lanes, lutram)
    rng = np.random.default_rng(lanes)
    values = {(u, h): int(rng.integers(fmt.lo, fmt.hi + 1)) for u in range(n) for h in (0, 1)}
    act = dict(zip(range(fmt.lo, fmt.hi + 1), fixed.activation(fmt, np.arange(fmt.lo, fmt.hi + 1)).tolist()))

    async def bench(ctx):
        for (u, h), v in values.items():
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_unit, u)
            ctx.set(dut.w_half, h)
            ctx.set(dut.w_value, v)
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        ctx.set(dut.w_value, fmt.hi)                    # not enabled: nothing may change
        await ctx.tick().repeat(dut.copy_latency)
        for h in (0, 1):
            ctx.set(dut.cur, h)
            for start in range(0, n, lanes):
                cols = [(start + lane * 3) % n for lane in range(lanes)]
                for lane, c in enumerate(cols):
                    ctx.set(dut.act_col[lane], c)
                ctx.set(dut.rd_unit, start)
                ctx.set(dut.rd_half, h)
                await ctx.tick()
                assert ctx.get(dut.rd_data) == values[start, h]
                assert [ctx.get(dut.act[lane]) for lane in range(lanes)] == [act[values[c, h]] for c in cols]

    _sim(dut, bench)


def test_lane_copies_differ_in_init_and_refuse_too_many():
    """A copy per LANES_PER_COPY lanes, each with its own init (equal ones yosys would merge), and
    a clear error when the shape cannot hold that many distinct inits."""
    from amaranth import signed

    from memprop.rtl.fanout import LANES_PER_COPY, copy_of, lane_copies

    copies = lane_copies("x", 4, 8 * LANES_PER_COPY + 1)
    assert len(copies) == 9 and len({c.init for c in copies}) == 9
    assert copy_of(LANES_PER_COPY - 1) == 0 and copy_of(LANES_PER_COPY) == 1
    assert len(lane_copies("y", signed(4), 32, spread=False)) == 1
    with pytest.raises(ValueError, match="9 copies of z need distinct inits"):
        lane_copies("z", signed(4), 8 * LANES_PER_COPY + 1)
