# amaranth: UnusedElaboratable=no
"""Threefry-2x32 RTL (rtl/threefry.py) against Random123's known answers and model/rng.py.

Amaranth simulator, async testbenches; stream helpers as in Amaranth's docs/stdlib/stream.rst.
"""

from __future__ import annotations

import itertools
import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from memprop.model.rng import rand, threefry2x32
from memprop.rtl.threefry import (LATENCY, PIPELINE_LATENCY, Threefry2x32, Threefry2x32Pipeline,
                                  call_request, rand_request, rand_request_ints, threefry_schedule)

# Random123 tests/kat_vectors: (rounds, counter c0 c1, key k0 k1, expected x0 x1).
KAT = [
    (13, (0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x9D1C5EC6, 0x8BD50731)),
    (13, (0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0xFD36D048, 0x2D17272C)),
    (13, (0x243F6A88, 0x85A308D3), (0x13198A2E, 0x03707344), (0xBA3E4725, 0xF27D669E)),
    (20, (0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    (20, (0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    (20, (0x243F6A88, 0x85A308D3), (0x13198A2E, 0x03707344), (0xC4923A9C, 0x483DF7A0)),
]


def model(c0, c1, k0, k1, rounds=13):
    x0, x1 = threefry2x32(c0, c1, k0, k1, rounds=rounds)
    return int(x0), int(x1)


async def stream_put(ctx, stream, payload):
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


def run(dut, *testbenches, processes=(), max_cycles=100_000):
    """Run until the testbenches finish; fail if that takes more than `max_cycles` clocks."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    for process in processes:
        sim.add_process(process)            # processes are background: they never block the end

    async def watchdog(ctx):
        for _ in range(max_cycles):         # plain awaits: no async generator left suspended
            await ctx.tick()
        raise AssertionError(f"testbenches still running after {max_cycles} cycles")

    sim.add_testbench(watchdog, background=True)
    sim.run()


def run_vectors(rounds, vectors, *, in_idle=None, out_stall=None, unit=Threefry2x32):
    """Feed `vectors` (dicts c0..k1), collect outputs; optional idle/stall patterns (1 = wait)."""
    dut = unit(rounds)
    got = []

    async def producer(ctx):
        idle = itertools.cycle(in_idle or [0])
        for v in vectors:
            while next(idle):
                await ctx.tick()
            await stream_put(ctx, dut.i, v)

    async def consumer(ctx):
        stall = itertools.cycle(out_stall or [0])
        for _ in vectors:
            while next(stall):
                await ctx.tick()
            p = await stream_get(ctx, dut.o)
            got.append((p.x0, p.x1))

    run(dut, producer, consumer)
    assert len(got) == len(vectors), "simulation ended before all outputs arrived"
    return got


def random_vectors(n, seed):
    rng = random.Random(seed)
    return [{k: rng.getrandbits(32) for k in ("c0", "c1", "k0", "k1")} for _ in range(n)]


def test_model_matches_random123_kat():
    for rounds, (c0, c1), (k0, k1), expected in KAT:
        assert model(c0, c1, k0, k1, rounds) == expected


@pytest.mark.parametrize("rounds", [13, 20])
def test_rtl_random123_kat(rounds):
    cases = [case for case in KAT if case[0] == rounds]
    vectors = [{"c0": c[0], "c1": c[1], "k0": k[0], "k1": k[1]} for _, c, k, _ in cases]
    assert run_vectors(rounds, vectors) == [e for *_, e in cases]


def test_rtl_200_random_vectors_match_model():
    vectors = random_vectors(200, seed=1)
    expected = [model(**v) for v in vectors]
    got = run_vectors(13, vectors, in_idle=[0, 0, 1, 0, 0], out_stall=[0, 1, 0, 0])
    for n, (g, e, v) in enumerate(zip(got, expected, vectors)):
        assert g == e, f"vector {n} {v}: RTL {g[0]:08x} {g[1]:08x}, model {e[0]:08x} {e[1]:08x}"


@pytest.mark.parametrize("rounds", [1, 3, 4, 5, 8, 12, 16])
def test_other_round_counts(rounds):
    vectors = random_vectors(8, seed=rounds)
    assert run_vectors(rounds, vectors) == [model(**v, rounds=rounds) for v in vectors]


def test_back_to_back_with_output_backpressure():
    """Producer always valid; the consumer stalls for long random stretches. Nothing is lost,
    duplicated or reordered, and no input is accepted while a computation is running or a
    result is waiting (unless that result is transferred at the same edge)."""
    dut = Threefry2x32()
    vectors = random_vectors(40, seed=2)
    expected = [model(**v) for v in vectors]
    got, accepts, delivers = [], [], []
    rng = random.Random(5)

    async def producer(ctx):
        for v in vectors:
            await stream_put(ctx, dut.i, v)

    async def consumer(ctx):
        while len(got) < len(vectors):
            ctx.set(dut.o.ready, rng.random() < 0.15)
            await ctx.tick()

    async def monitor(ctx):
        cycle = 0
        while True:
            _, _, iv, ir, ov, orr, x0, x1 = await ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready,
                dut.o.payload.x0, dut.o.payload.x1)
            if iv and ir:
                accepts.append(cycle)
            if ov and orr:
                delivers.append(cycle)
                got.append((x0, x1))
            if ir:
                assert not ov or orr, "input ready while a result waits"
            cycle += 1

    run(dut, producer, consumer, processes=[monitor])
    assert got == expected
    # one request in flight: every accept (after the first) coincides with or follows a delivery
    for n in range(1, len(vectors)):
        assert accepts[n] >= delivers[n - 1]
        assert accepts[n] - accepts[n - 1] >= dut.latency


def test_latency_is_documented_constant():
    dut = Threefry2x32()
    assert dut.steps == len(threefry_schedule(13)) == 13 + 3 + 1
    assert dut.latency == dut.steps + 1 == LATENCY == 18
    edges = {}

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload, {"c0": 1, "c1": 2, "k0": 3, "k1": 4})
        ctx.set(dut.i.valid, 1)
        n = 0
        while True:
            _, _, iv, ir, ov, orr = await ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready)
            if iv and ir:
                edges.setdefault("in", []).append(n)
            if ov and orr:
                edges.setdefault("out", []).append(n)
            n += 1
            if len(edges.get("out", [])) == 3:
                return

    run(dut, tb)
    # initiation interval = latency with o.ready high: input n+1 accepted at output n's edge
    assert [o - i for i, o in zip(edges["in"], edges["out"])] == [dut.latency] * 3
    assert edges["in"][1:3] == edges["out"][0:2]


def test_rand_request_wiring_matches_model_rand():
    """The call holding draw d; the draw is word d mod 2 (docs/numerics.md, section 5)."""
    seed, t, s, d = Signal(32), Signal(32), Signal(20), Signal(6)
    m = Module()
    m.submodules.rng = rng = Threefry2x32()
    m.d.comb += rng.i.payload.eq(rand_request(seed, t, s, d))
    cases = [(0xDEADBEEF, 0, 0, 0), (12345, 7, 9 * 16 + 3, 5),
             (2**32 - 1, 2**32 - 1, 2**20 - 1, 63),
             (42, 1000, 256 + 15, 2 + 2 * 3 + 1), (42, 1000, 256 + 15, 2 + 2 * 3)]
    got = []

    async def tb(ctx):
        for case in cases:
            for sig, val in zip((seed, t, s, d), case):
                ctx.set(sig, val)
            ctx.set(rng.i.valid, 1)          # the payload is wired by rand_request
            await ctx.tick().until(rng.i.ready)
            ctx.set(rng.i.valid, 0)
            out = await stream_get(ctx, rng.o)
            got.append(out.x1 if case[3] & 1 else out.x0)

    run(m, tb)
    assert got == [int(rand(*case)) for case in cases]
    for case in cases:
        req = rand_request_ints(*case)
        assert model(**req)[case[3] & 1] == int(rand(*case))


def test_call_request_gives_both_draws_of_a_call():
    m = Module()
    m.submodules.rng = rng = Threefry2x32()
    k = Signal(5)
    m.d.comb += rng.i.payload.eq(call_request(77, 3, 1234, k))
    got = []

    async def tb(ctx):
        for call in (0, 1, 31):
            ctx.set(k, call)
            ctx.set(rng.i.valid, 1)          # the payload is wired by call_request
            await ctx.tick().until(rng.i.ready)
            ctx.set(rng.i.valid, 0)
            out = await stream_get(ctx, rng.o)
            got.append((out.x0, out.x1))

    run(m, tb)
    assert got == [(int(rand(77, 3, 1234, 2 * c)), int(rand(77, 3, 1234, 2 * c + 1))) for c in (0, 1, 31)]


def test_rand_request_constants_and_checks():
    payload = rand_request(0x1234, 5, 3, 2)
    assert len(payload) == 128
    with pytest.raises(ValueError, match="draw index"):
        rand_request(0, 0, 0, 64)
    with pytest.raises(ValueError, match="at most 6 bits"):
        rand_request(0, 0, 0, Signal(7))
    with pytest.raises(ValueError, match="non-negative"):
        rand_request(-1, 0, 0, 0)
    with pytest.raises(ValueError, match="call index"):
        call_request(0, 0, 0, 32)
    with pytest.raises(ValueError, match="at most 5 bits"):
        call_request(0, 0, 0, Signal(6))


# -- the pipelined unit ------------------------------------------------------------------------

@pytest.mark.parametrize("rounds", [13, 20])
def test_pipeline_random123_kat(rounds):
    cases = [case for case in KAT if case[0] == rounds]
    vectors = [{"c0": c[0], "c1": c[1], "k0": k[0], "k1": k[1]} for _, c, k, _ in cases]
    assert run_vectors(rounds, vectors, unit=Threefry2x32Pipeline) == [e for *_, e in cases]


@pytest.mark.parametrize("rounds", [1, 4, 5, 13])
def test_pipeline_random_vectors_with_idle_and_backpressure(rounds):
    vectors = random_vectors(60, seed=10 + rounds)
    got = run_vectors(rounds, vectors, unit=Threefry2x32Pipeline, in_idle=[0, 0, 1], out_stall=[0, 1, 0, 0, 1])
    assert got == [model(**v, rounds=rounds) for v in vectors]


def test_pipeline_one_result_per_cycle_with_tags_and_static_key():
    """Always valid in, always ready out: a result every cycle, `latency` edges after its request,
    each with its request's tag. The static-key variant computes the same words."""
    for static in (False, True):
        dut = Threefry2x32Pipeline(tag_bits=7, static_key=static)
        assert dut.latency == PIPELINE_LATENCY == 17
        reqs = [{"c0": n * 3, "c1": n * 7 + 1, "k0": 5, "k1": 0x6D656D70, "tag": n % 128} for n in range(30)]
        accepted, delivered = [], []

        async def tb(ctx):
            ctx.set(dut.o.ready, 1)
            cycle, sent = 0, 0
            while len(delivered) < len(reqs):
                if sent < len(reqs):
                    ctx.set(dut.i.payload, reqs[sent])
                ctx.set(dut.i.valid, sent < len(reqs))
                _, _, iv, ir, ov, out = await ctx.tick().sample(dut.i.valid, dut.i.ready, dut.o.valid, dut.o.payload)
                if iv and ir:
                    accepted.append(cycle)
                    sent += 1
                if ov:
                    delivered.append((cycle, out.x0, out.x1, out.tag))
                cycle += 1

        run(dut, tb)
        assert accepted == list(range(len(reqs)))
        assert [c for c, *_ in delivered] == [a + dut.latency for a in accepted]
        assert [(x0, x1) for _, x0, x1, _ in delivered] == \
            [model(r["c0"], r["c1"], r["k0"], r["k1"]) for r in reqs]
        assert [tag for *_, tag in delivered] == [r["tag"] for r in reqs]


def test_iterative_unit_carries_the_tag():
    dut = Threefry2x32(tag_bits=3)
    got = []

    async def tb(ctx):
        for n in range(5):
            await stream_put(ctx, dut.i, {"c0": n, "c1": 0, "k0": 0, "k1": 0, "tag": n})
            out = await stream_get(ctx, dut.o)
            got.append((out.tag, out.x0, out.x1))

    run(dut, tb)
    assert got == [(n, *model(n, 0, 0, 0)) for n in range(5)]


@pytest.mark.parametrize("bad", [0, -1])
def test_rounds_out_of_range(bad):
    with pytest.raises(ValueError, match=f"rounds must be at least 1, not {bad}"):
        Threefry2x32(bad)


@pytest.mark.parametrize("bad", [2.0, True, "13"])
def test_rounds_type_checked(bad):
    with pytest.raises(TypeError, match="rounds must be an integer"):
        Threefry2x32(bad)
    with pytest.raises(TypeError, match="rounds must be an integer"):
        Threefry2x32Pipeline(bad)


def test_tag_bits_checked():
    with pytest.raises(ValueError, match="tag_bits must be a non-negative integer, not -1"):
        Threefry2x32Pipeline(tag_bits=-1)
