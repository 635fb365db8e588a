# amaranth: UnusedElaboratable=no
"""The engine's components on their own in Amaranth's simulator: stream, code memory, SPRAM
model, state memory and controller (MacArray and NeuronUpdate: test_components.py)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from memprop.model.config import Config
from memprop.model.numerics import Formats
from memprop.rtl import hostmap as hm
from memprop.rtl.codemem import CodeMemory, spram_fits, spram_layout
from memprop.rtl.controller import Controller
from memprop.rtl.cycles import store_cycles
from memprop.rtl.schedule import Schedule
from memprop.rtl.spram import SPRAM
from memprop.rtl.statemem import StateMemory
from memprop.rtl.stream import StreamGenerator


def run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def cfg_of(network, lanes, fold=False, **sections):
    return Config.for_algorithm("eqprop", network=network, numerics="fixed", hw={"lanes": lanes, "fold": fold},
                                device={"preset": "linear-64"}, **sections)


NETWORKS = [{"n": 7}, {"n": 7, "self_connections": True}, {"n": 12, "topology": "band", "band": 8},
            {"n": 12, "topology": "band", "band": 11, "self_connections": True},
            {"n": 9, "topology": "band", "band": 8}, {"n": 100, "topology": "band", "band": 90},
            {"n": 10, "topology": "layered", "layers": (3, 4, 3)},
            {"n": 16, "topology": "layered", "layers": (5, 2, 6, 3)},       # four layers, one narrower than P
            {"n": 11, "topology": "layered", "layers": (2, 9)}]


def stream_words(gen: StreamGenerator, pattern) -> list:
    """Drive restart/advance as `pattern` says ("r", "a", "h" per cycle); entries seen after each."""
    out = []
    port = gen.port

    async def bench(ctx):
        for action in pattern:
            ctx.set(port.restart, action == "r")
            ctx.set(port.advance, action == "a")
            addr = ctx.get(gen.addr)
            await ctx.tick()
            ctx.set(port.restart, 0)
            ctx.set(port.advance, 0)
            entries = [{k: ctx.get(getattr(port.entries[lane], k)) for k in ("valid", "last", "col", "row")}
                       for lane in range(gen.lanes)]
            for lane, e in enumerate(entries):      # the registered flags agree with col and row
                assert ctx.get(port.entries[lane].above) == (e["valid"] and e["col"] > e["row"]), (lane, e)
                assert ctx.get(port.entries[lane].diag) == (e["valid"] and e["col"] == e["row"]), (lane, e)
            out.append((addr, entries))

    run(gen, bench)
    return out


@pytest.mark.parametrize("lanes", [1, 3, 4, 8])
@pytest.mark.parametrize("network", NETWORKS)
def test_stream_generator_equals_the_schedule(network, lanes):
    """Every back end presents exactly Schedule.stream, word by word, and holds between requests."""
    check_stream_generator(Schedule(cfg_of(network, lanes)))


@pytest.mark.parametrize("lanes", [1, 3, 4, 8])
@pytest.mark.parametrize("network", NETWORKS)
def test_folded_stream_generator_equals_the_schedule(network, lanes):
    """A folded stream (hw.fold: columns j >= i and the clamped ones) from both back ends."""
    sch = Schedule(cfg_of(network, lanes, fold=True))
    full = Schedule(cfg_of(network, lanes))
    st = sch.stream
    v = st["valid"]
    assert ((st["col"][v] >= st["row"][v]) | sch.clamped[st["col"][v]]).all()
    # every synapse of a free unit is streamed once, in one of its two rows
    pairs = {frozenset((int(i), int(j))) for i, j in zip(full.stream["row"][full.stream["valid"]],
                                                         full.stream["col"][full.stream["valid"]])}
    folded = [frozenset((int(i), int(j))) for i, j in zip(st["row"][v], st["col"][v])]
    assert len(folded) == len(set(folded)) and set(folded) == pairs
    # a twin sits in its column's bank (lane j mod P): the column path needs no rotation
    twins = np.nonzero(sch.twins)[0]
    assert (twins % lanes == st["col"][twins] % lanes).all()
    ends = np.nonzero(st["last"])[0] // lanes
    assert len(ends) == len(sch.rows) == len(set(ends.tolist())), "one row end per word, every row ends"
    check_stream_generator(sch, backends=("rom",))
    with pytest.raises(ValueError, match="needs 'rom'"):
        StreamGenerator(sch, "counters")


def check_stream_generator(sch: Schedule, backends=("rom", "counters")):
    lanes = sch.lanes
    st = sch.stream
    for backend in backends:
        gen = StreamGenerator(sch, backend)
        pattern = ["r"] + ["a", "h"] * (sch.depth - 1) + ["r", "a"]
        seen = stream_words(gen, pattern)
        words = [seen[0]] + seen[1:2 * sch.depth - 1:2]
        held = seen[2:2 * sch.depth - 1:2]
        assert [a for a, _ in words] == list(range(sch.depth)), backend
        for w, (_, entries) in enumerate(words):
            for lane, e in enumerate(entries):
                k = w * lanes + lane
                want = {"valid": int(st["valid"][k]), "last": int(st["last"][k]), "row": int(st["row"][k]),
                        "col": int(st["col"][k])}
                assert e == want, f"{backend}: word {w} lane {lane}: {e} != {want}"
        for w, (_, entries) in enumerate(held, start=1):
            assert entries == words[w][1], f"{backend}: word {w} not held"
        assert seen[-2][0] == 0 and seen[-2][1] == words[0][1], "restart presents word 0 again"


def test_stream_generator_rejects_unknown_backends():
    sch = Schedule(cfg_of({"n": 10, "topology": "layered", "layers": (3, 4, 3)}, 2))
    with pytest.raises(ValueError, match="backend must be one of"):
        StreamGenerator(sch, "table")


def code_memory_bench(mem: CodeMemory, rng, writes: int = 60):
    """Random entry writes and word reads against a Python dictionary."""
    P, E, D = mem.lanes, mem.entry_bits, mem.depth
    port = mem.port
    shadow = np.zeros((D, P), np.int64)
    written = np.zeros((D, P), bool)

    async def bench(ctx):
        for _ in range(writes):
            addr = int(rng.integers(D))
            en = int(rng.integers(1, 1 << P))
            values = rng.integers(0, 1 << E, P)
            ctx.set(port.addr, addr)
            ctx.set(port.w_en, en)
            ctx.set(port.w_data, sum(int(v) << (k * E) for k, v in enumerate(values)))
            await ctx.tick()
            for k in range(P):
                if en >> k & 1:
                    shadow[addr, k] = values[k]
                    written[addr, k] = True
            ctx.set(port.w_en, 0)
            addr = int(rng.integers(D))
            ctx.set(port.addr, addr)
            await ctx.tick()
            word = ctx.get(port.r_data)
            got = [(word >> (k * E)) & ((1 << E) - 1) for k in range(P)]
            for k in range(P):
                if written[addr, k]:
                    assert got[k] == shadow[addr, k], f"word {addr} entry {k}"

    run(mem, bench)


@pytest.mark.parametrize("backend", ["block", "spram"])
@pytest.mark.parametrize("lanes,entry_bits", [(4, 16), (5, 12), (3, 9), (1, 20)])
def test_code_memory_writes_single_entries(backend, lanes, entry_bits):
    mem = CodeMemory(37, lanes, entry_bits, backend=backend)
    code_memory_bench(mem, np.random.default_rng(lanes * 100 + entry_bits))


def test_spram_capacity():
    assert spram_layout(4, 16) == (16, 4) and spram_layout(5, 12) == (12, 4) and spram_layout(3, 9) == (12, 3)
    assert spram_fits(2475, 4, 16) is None
    assert "5 SPRAM blocks" in spram_fits(100, 5, 16)
    assert "exceed the SPRAM depth" in spram_fits(20000, 1, 16)
    with pytest.raises(ValueError, match="does not fit SPRAM"):
        CodeMemory(100, 8, 16, backend="spram")


def test_spram_model_reads_writes_nibbles_and_reads_nothing_while_writing():
    cell = SPRAM(primitive=False, depth=64)

    async def bench(ctx):
        ctx.set(cell.address, 5)
        ctx.set(cell.data_in, 0xABCD)
        ctx.set(cell.mask_wren, 0b1111)
        ctx.set(cell.wren, 1)
        await ctx.tick()
        assert ctx.get(cell.data_out) == 0            # undefined after a write (the model: 0)
        ctx.set(cell.data_in, 0x1234)
        ctx.set(cell.mask_wren, 0b0101)
        await ctx.tick()
        ctx.set(cell.wren, 0)
        await ctx.tick()
        assert ctx.get(cell.data_out) == 0xA2C4
        ctx.set(cell.chip_select, 0)
        ctx.set(cell.address, 6)
        await ctx.tick()
        assert ctx.get(cell.data_out) == 0xA2C4       # deselected: the output holds

    run(cell, bench)


@pytest.mark.parametrize("activation", ["hard_tanh", "tanh"])
def test_state_memory_writes_state_now_and_activations_a_cycle_later(activation):
    net = {"n": 6, "activation": activation, "dynamics": "euler" if activation == "tanh" else "bounded",
           "eps": 0.25 if activation == "tanh" else 0.5}
    fmt = Formats(cfg_of(net, 3))
    dut = StateMemory(fmt, 3, 3)
    rng = np.random.default_rng(1)
    values = rng.integers(fmt.lo, fmt.hi + 1, (2, 6))

    def act(v):
        return int(v) if fmt.hard else int(fmt.act_lut[v - fmt.lo])

    async def bench(ctx):
        for half in (0, 1):
            for i in range(6):
                ctx.set(dut.w_en, 1)
                ctx.set(dut.w_unit, i)
                ctx.set(dut.w_half, half)
                ctx.set(dut.w_value, int(values[half, i]))
                await ctx.tick()
        ctx.set(dut.w_en, 0)
        await ctx.tick()
        for half in (0, 1):
            ctx.set(dut.cur, half)
            for i in range(6):
                ctx.set(dut.rd_unit, i)
                ctx.set(dut.rd_half, half)
                for lane in range(3):
                    ctx.set(dut.act_col[lane], (i + lane) % 6)
                await ctx.tick()
                assert ctx.get(dut.rd_data) == values[half, i]
                for lane in range(3):
                    assert ctx.get(dut.act[lane]) == act(values[half, (i + lane) % 6])

    run(dut, bench)


def test_controller_sequences_a_step_and_a_store():
    """STEP: D issue cycles (restart, then advance), drain until every row is written back;
    STORE: a unit a cycle, each unit written the cycle after it is read; cycle counter as the
    cycle model says."""
    n, rows, words = 5, 5, 4
    dut = Controller(n=n, n_rows=rows, words=words, v_bits=10, n_bits=3, slot_bits=1, tol=0, max_steps=10)

    async def bench(ctx):
        ctx.set(dut.command, {"op": hm.OP_STEP, "sign": hm.SIGN_PLUS, "set": 0, "slot": 0})
        ctx.set(dut.command_valid, 1)
        await ctx.tick()
        ctx.set(dut.command_valid, 0)
        seen = {"restart": 0, "advance": 0, "start": 0}
        cycles = 0
        while ctx.get(dut.busy):
            seen["restart"] += ctx.get(dut.restart)
            seen["advance"] += ctx.get(dut.advance)
            seen["start"] += ctx.get(dut.step_start)
            # write back one row per cycle after the issue ends, delta 1
            if cycles > words + 3 and ctx.get(dut.busy):
                ctx.set(dut.row_written, 1)
                ctx.set(dut.row_delta, 1)
            await ctx.tick()
            ctx.set(dut.row_written, 0)
            cycles += 1
        assert seen == {"restart": 1, "advance": words - 1, "start": 1}
        assert ctx.get(dut.steps) == 1 and ctx.get(dut.last_delta) == 1 and not ctx.get(dut.converged)
        assert ctx.get(dut.sign) == 1 and ctx.get(dut.cur) == 1
        ctx.set(dut.command, {"op": hm.OP_STORE, "sign": 0, "set": hm.SET_HI, "slot": 1})
        ctx.set(dut.command_valid, 1)
        await ctx.tick()
        ctx.set(dut.command_valid, 0)
        stored, read, last_read = [], [], None
        while ctx.get(dut.busy):
            if ctx.get(dut.store_write):
                stored.append((ctx.get(dut.write_item), ctx.get(dut.set), ctx.get(dut.slot)))
                assert ctx.get(dut.write_item) == last_read        # the unit read the cycle before
            last_read = ctx.get(dut.item) if ctx.get(dut.store_read) else None
            if last_read is not None:
                read.append(last_read)
            await ctx.tick()
        assert stored == [(i, hm.SET_HI, 1) for i in range(n)] and read == list(range(n))
        assert ctx.get(dut.cycles) == store_cycles(n) == n + 2          # was 2 n + 1 (read, write, read...)
        ctx.set(dut.command, {"op": 9, "sign": 0, "set": 0, "slot": 0})   # unknown opcode
        ctx.set(dut.command_valid, 1)
        await ctx.tick()
        ctx.set(dut.command_valid, 0)
        await ctx.tick().repeat(2)
        assert ctx.get(dut.error) and not ctx.get(dut.busy)

    run(dut, bench)
