# amaranth: UnusedElaboratable=no
"""The 8N1 UART in simulation: parameter checks, tx -> rx loopback, bit timing, framing errors."""

from __future__ import annotations

import pytest
from amaranth import Elaboratable, Module
from amaranth.sim import Simulator

from memprop.rtl.uart import MIN_DIVISOR, UARTReceiver, UARTTransmitter, uart_divisor


def test_divisor():
    assert uart_divisor(12e6, 115200) == 104
    assert uart_divisor(25_000_000, 1_000_000) == 25
    assert uart_divisor(12_000_000, 3_000_000) == MIN_DIVISOR


@pytest.mark.parametrize("clk, baud, match", [
    (12e6, 6e6, "too fast"),                  # 2 cycles per bit
    (10, 2.2, r"cannot be made.*% off"),      # nearest divisor 5 is 9% off
    (0, 9600, "clk_freq must be positive"),
    (12e6, -1, "baud must be positive"),
])
def test_divisor_errors(clk, baud, match):
    with pytest.raises(ValueError, match=match):
        UARTReceiver(clk, baud)
    with pytest.raises(ValueError, match=match):
        UARTTransmitter(clk, baud)


def test_divisor_type_error():
    with pytest.raises(TypeError, match="baud must be a number, not '9600'"):
        UARTTransmitter(12e6, "9600")


def frame_bits(byte: int, stop: int = 1) -> list[int]:
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


def run_rx(divisor: int, segments: list[tuple[int, int]], tail: int = 0):
    """Drive `rx` with (level, cycles) segments; return received bytes and error/overrun pulses."""
    dut = UARTReceiver(divisor, 1)
    got = {"bytes": [], "frame_error": 0, "overrun": 0}

    async def drive(ctx):
        for level, cycles in segments:
            ctx.set(dut.rx, level)
            await ctx.tick().repeat(cycles)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(tail + 4 * divisor)

    async def watch(ctx):
        ctx.set(dut.o.ready, 1)
        async for _, _, valid, payload, ferr, ovr in ctx.tick().sample(dut.o.valid, dut.o.payload,
                                                                        dut.frame_error, dut.overrun):
            if valid:
                got["bytes"].append(payload)
            got["frame_error"] += ferr
            got["overrun"] += ovr

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_testbench(watch, background=True)
    sim.run()
    return got


def serial(data: list[int], period: float, stop: int = 1, idle: int = 5) -> list[tuple[int, int]]:
    """Line segments for `data` with a (possibly fractional) bit period in cycles."""
    segments, t, at = [(1, idle)], 0.0, 0
    for byte in data:
        for bit in frame_bits(byte, stop):
            t += period
            segments.append((bit, round(t) - at))
            at = round(t)
    return segments


def test_loopback():
    data = [0x00, 0xFF, 0x55, 0xAA, 0xA5, 0x5A, 0x01, 0x80, 0x3C]

    class Loop(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.tx, m.submodules.rx = tx, rx
            m.d.comb += rx.rx.eq(tx.tx)
            return m

    tx, rx = UARTTransmitter(10e6, 1e6), UARTReceiver(10e6, 1e6)
    got, errors = [], []

    async def send(ctx):
        for byte in data:                      # back to back: the stop bit is the only gap
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)
        await ctx.tick().until(~tx.busy)
        await ctx.tick().repeat(30)

    async def receive(ctx):
        ctx.set(rx.o.ready, 1)
        async for _, _, valid, payload, ferr in ctx.tick().sample(rx.o.valid, rx.o.payload, rx.frame_error):
            if valid:
                got.append(payload)
            if ferr:
                errors.append(ferr)

    sim = Simulator(Loop())
    sim.add_clock(1e-7)
    sim.add_testbench(send)
    sim.add_testbench(receive, background=True)
    sim.run()
    assert got == data
    assert not errors


def test_tx_bit_timing():
    """Start bit, 8 data bits LSB first, stop bit; each exactly `divisor` cycles."""
    dut = UARTTransmitter(7, 1)
    line = []

    async def bench(ctx):
        ctx.set(dut.i.payload, 0xB4)
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(7 * 11):
            line.append(ctx.get(dut.tx))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    bits = [line[7 * i + 3] for i in range(10)]       # mid-bit
    assert bits == frame_bits(0xB4)
    assert all(line[7 * i: 7 * i + 7] == [bits[i]] * 7 for i in range(10))


@pytest.mark.parametrize("period", [32, 31.2, 32.9])   # within +-3% of the divisor
def test_rx_tolerates_baud_mismatch(period):
    data = [0x00, 0xFF, 0x96, 0x5A]
    got = run_rx(32, serial(data, period))
    assert got == {"bytes": data, "frame_error": 0, "overrun": 0}


def test_rx_framing_error_drops_the_byte():
    segments = serial([0x41], 16, stop=0) + [(0, 40)] + serial([0x42], 16)   # a break, then a good byte
    got = run_rx(16, segments)
    assert got == {"bytes": [0x42], "frame_error": 1, "overrun": 0}


def test_rx_ignores_a_glitch():
    got = run_rx(16, [(1, 10), (0, 5), (1, 60)] + serial([0x7E], 16))
    assert got == {"bytes": [0x7E], "frame_error": 0, "overrun": 0}


def test_rx_overrun():
    dut = UARTReceiver(8, 1)
    pulses = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        for level, cycles in serial([0x11, 0x22], 8):
            ctx.set(dut.rx, level)
            for _ in range(cycles):
                await ctx.tick()
                pulses.append(ctx.get(dut.overrun))
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(10)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 0x22

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert sum(pulses) == 1
