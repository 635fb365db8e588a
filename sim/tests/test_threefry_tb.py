"""cocotb testbench: Threefry-2x32 Verilog (rtl/threefry.py, RTL or gate level) vs model/rng.py.

Run through `memprop.sim.runner.run_cocotb` (see tests/sim/test_threefry_cocotb.py); the DUT is
Amaranth's Verilog of `Threefry2x32`, ports ``clk``, ``rst``, ``i__valid``, ``i__ready``,
``i__payload[127:0]`` (c0, c1, k0, k1 packed LSB first), ``o__valid``, ``o__ready``,
``o__payload[63:0]`` (x0, x1).

Environment (all optional):

* ``MEMPROP_TF_ROUNDS``: rounds the DUT was generated with (13);
* ``MEMPROP_TF_MODEL_ROUNDS``: rounds of the reference (default: the DUT's). Setting it to a
  different value is a deliberate model error, used to prove that a mismatch fails the run;
* ``MEMPROP_TF_VECTORS``: random vectors per test (200); ``MEMPROP_TF_SPEED_CYCLES``: length
  of the two speed runs (20000 cycles);
* ``MEMPROP_WAVES_FILE``: set by the runner to the waveform path, quoted in failure messages.

Scoreboard shape: a driver (input stream, random idle cycles), a monitor that drives
``o.ready`` from a backpressure pattern and samples transfers after `ReadOnly`, the model, and
an in-order checker that reports the first differing vector.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ReadOnly, RisingEdge, Timer, with_timeout

from memprop.model.rng import rand, threefry2x32
from memprop.rtl.threefry import Threefry2x32, rand_request_ints

CLOCK_NS = 10
FIELDS_IN = ("c0", "c1", "k0", "k1")
MASK32 = 0xFFFFFFFF

# Random123 tests/kat_vectors for 13 rounds: counter (c0, c1), key (k0, k1) -> (x0, x1).
KAT13 = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x9D1C5EC6, 0x8BD50731)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFD36D048, 0x2D17272C)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xBA3E4725, 0xF27D669E)),
]


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


DUT_ROUNDS = _env_int("MEMPROP_TF_ROUNDS", 13)
MODEL_ROUNDS = _env_int("MEMPROP_TF_MODEL_ROUNDS", DUT_ROUNDS)
N_VECTORS = _env_int("MEMPROP_TF_VECTORS", 200)
SPEED_CYCLES = _env_int("MEMPROP_TF_SPEED_CYCLES", 20_000)
WAVES = os.environ.get("MEMPROP_WAVES_FILE", "(waveforms off: run with waves=True)")


def model(vec: tuple[int, int, int, int]) -> tuple[int, int]:
    x0, x1 = threefry2x32(*vec, rounds=MODEL_ROUNDS)
    return int(x0), int(x1)


def pack(vec: tuple[int, int, int, int]) -> int:
    return sum((w & MASK32) << (32 * n) for n, w in enumerate(vec))


@dataclass
class Transfer:
    cycle: int
    time_ns: float
    x0: int
    x1: int


def edge_index() -> int:
    """Index of the current (or latest) rising edge: the clock starts high at t = 0."""
    return int(get_sim_time("ns")) // CLOCK_NS


@dataclass
class ThreefryBench:
    """Driver, monitor and checker around one DUT. Cycle numbers are rising-edge indices (from
    simulation time, so they do not depend on the order in which coroutines wake up)."""

    dut: object
    sent: list[tuple[int, int, int, int]] = field(default_factory=list)
    received: list[Transfer] = field(default_factory=list)
    accept_cycles: list[int] = field(default_factory=list)

    async def start(self) -> None:
        Clock(self.dut.clk, CLOCK_NS, unit="ns").start()
        self.dut.i__valid.value = 0
        self.dut.o__ready.value = 0
        self.dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def drive(self, vectors: Iterable[tuple[int, int, int, int]],
                    idle: Iterator[int] = itertools.repeat(0)) -> None:
        """Offer each vector after `next(idle)` idle cycles; hold it until accepted."""
        dut = self.dut
        for vec in vectors:
            for _ in range(next(idle)):
                await RisingEdge(dut.clk)
            dut.i__payload.value = pack(vec)
            dut.i__valid.value = 1
            while True:
                await ReadOnly()
                accepted = bool(dut.i__ready.value)
                await RisingEdge(dut.clk)
                if accepted:
                    break
            dut.i__valid.value = 0
            self.sent.append(tuple(vec))
            self.accept_cycles.append(edge_index())   # the edge that transferred it

    async def collect(self, count: int, ready: Iterator[int] = itertools.repeat(1)) -> None:
        """Drive o.ready from `ready` each cycle; record `count` output transfers."""
        dut = self.dut
        while len(self.received) < count:
            dut.o__ready.value = next(ready)
            await ReadOnly()
            if dut.o__valid.value and dut.o__ready.value:
                word = dut.o__payload.value.to_unsigned()
                # sampled before the edge that transfers it: edge index + 1
                self.received.append(Transfer(edge_index() + 1, get_sim_time("ns") + CLOCK_NS,
                                              word & MASK32, word >> 32))
            await RisingEdge(dut.clk)
        dut.o__ready.value = 0

    def check(self, label: str = "") -> None:
        """In-order comparison with the model; fail on the first differing vector."""
        assert len(self.received) == len(self.sent), (
            f"{label}: {len(self.sent)} inputs accepted but {len(self.received)} outputs seen")
        for n, (vec, out) in enumerate(zip(self.sent, self.received)):
            want = model(vec)
            if (out.x0, out.x1) != want:
                raise AssertionError(
                    f"{label}: first mismatch at vector {n} of {len(self.sent)}: "
                    f"input c0={vec[0]:08x} c1={vec[1]:08x} k0={vec[2]:08x} k1={vec[3]:08x}; "
                    f"DUT x0={out.x0:08x} x1={out.x1:08x}, model ({MODEL_ROUNDS} rounds) "
                    f"x0={want[0]:08x} x1={want[1]:08x}; output transfer at cycle {out.cycle} "
                    f"(t={out.time_ns:.0f} ns); waveform: {WAVES}")


def random_vectors(n: int, seed: int) -> list[tuple[int, int, int, int]]:
    rng = random.Random(seed)
    return [tuple(rng.getrandbits(32) for _ in FIELDS_IN) for _ in range(n)]


async def run_stream(dut, vectors, *, idle=None, ready=None, label: str,
                     timeout_cycles: int | None = None) -> ThreefryBench:
    tb = ThreefryBench(dut)
    await tb.start()
    latency = Threefry2x32(DUT_ROUNDS).latency
    timeout_cycles = timeout_cycles or 20 * (latency + 4) * (len(vectors) + 2)
    driver = cocotb.start_soon(tb.drive(vectors, idle or itertools.repeat(0)))
    await with_timeout(tb.collect(len(vectors), ready or itertools.repeat(1)),
                       timeout_cycles * CLOCK_NS, "ns")
    await driver
    tb.check(label)
    return tb


@cocotb.test()
async def test_known_answers(dut):
    """Random123 known-answer vectors (13 rounds only)."""
    if DUT_ROUNDS != 13:
        return
    vectors = [vec for vec, _ in KAT13]
    tb = await run_stream(dut, vectors, label="KAT")
    got = [(t.x0, t.x1) for t in tb.received]
    assert got == [want for _, want in KAT13], f"KAT mismatch: {got}; waveform: {WAVES}"


@cocotb.test()
async def test_random_vectors_with_backpressure(dut):
    """N random vectors; random idle input cycles and a stalling consumer."""
    rng = random.Random(1234)
    idle = (rng.choice([0, 0, 0, 1, 3]) for _ in itertools.count())
    ready = (int(rng.random() < 0.6) for _ in itertools.count())
    await run_stream(dut, random_vectors(N_VECTORS, seed=7), idle=idle, ready=ready,
                     label="random vectors")


@cocotb.test()
async def test_rand_draws(dut):
    """rand(seed, t, s, d) requests wired as in docs/numerics.md section 5."""
    rng = random.Random(99)
    cases = [(rng.getrandbits(32), rng.randrange(1 << 20), rng.randrange(1 << 26),
              rng.randrange(64)) for _ in range(32)]
    cases += [(0, 0, 0, 0), (MASK32, MASK32, 2**26 - 1, 63)]
    vectors = [tuple(rand_request_ints(*case)[f] for f in FIELDS_IN) for case in cases]
    tb = await run_stream(dut, vectors, label="rand draws")
    if MODEL_ROUNDS == 13:
        assert [t.x1 if case[3] & 1 else t.x0 for t, case in zip(tb.received, cases)] == \
            [int(rand(*case)) for case in cases]


@cocotb.test()
async def test_back_to_back_throughput(dut):
    """Input always valid, output always ready: one result every `latency` cycles."""
    vectors = random_vectors(20, seed=3)
    tb = await run_stream(dut, vectors, label="back to back")
    latency = Threefry2x32(DUT_ROUNDS).latency
    gaps = [b - a for a, b in zip(tb.accept_cycles, tb.accept_cycles[1:])]
    assert gaps == [latency] * (len(vectors) - 1), f"accept spacing {gaps}, want {latency}"
    lat = [t.cycle - a for a, t in zip(tb.accept_cycles, tb.received)]
    assert lat == [latency] * len(vectors), f"latency {lat}, want {latency}"


@cocotb.test()
async def test_speed(dut):
    """Simulated cycles per second of wall time (back-to-back traffic), logged and checked."""
    latency = Threefry2x32(DUT_ROUNDS).latency
    n = max(1, SPEED_CYCLES // latency)
    start = time.perf_counter()
    tb = await run_stream(dut, random_vectors(n, seed=11), label="speed")
    wall = time.perf_counter() - start
    cycles = edge_index()
    dut._log.info("SPEED cycles=%d wall_s=%.3f cycles_per_s=%.0f", cycles, wall, cycles / wall)


@cocotb.test()
async def test_speed_free_running(dut):
    """Simulator speed with Python out of the loop: constant input, output always ready, one
    `Timer` for the whole run; then the last result is checked against the model."""
    tb = ThreefryBench(dut)
    await tb.start()
    vec = (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344)
    dut.i__payload.value = pack(vec)
    dut.i__valid.value = 1
    dut.o__ready.value = 1
    start = time.perf_counter()
    await Timer(SPEED_CYCLES * CLOCK_NS, "ns")
    wall = time.perf_counter() - start
    dut.o__ready.value = 0
    await RisingEdge(dut.clk)
    await with_timeout(_wait_valid(dut), 4 * Threefry2x32(DUT_ROUNDS).latency * CLOCK_NS, "ns")
    word = dut.o__payload.value.to_unsigned()
    got, want = (word & MASK32, word >> 32), model(vec)
    assert got == want, (f"free-running: DUT {got[0]:08x} {got[1]:08x}, model {want[0]:08x} "
                         f"{want[1]:08x}; waveform: {WAVES}")
    dut._log.info("SPEED free-running cycles=%d wall_s=%.3f cycles_per_s=%.0f",
                  SPEED_CYCLES, wall, SPEED_CYCLES / wall)


async def _wait_valid(dut) -> None:
    while True:
        await ReadOnly()
        if dut.o__valid.value:
            return
        await RisingEdge(dut.clk)
