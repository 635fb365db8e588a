"""An 8N1 UART: a transmitter and a receiver with `lib.stream` byte interfaces.

Both take the clock frequency and the baud rate and derive one integer divisor (clock cycles
per bit); `__init__` rejects a divisor below `MIN_DIVISOR` or a baud rate that the divisor
misses by more than `MAX_BAUD_ERROR`. No FIFOs here: the receiver holds one byte (a second
byte that completes before the first was taken is an overrun), the transmitter takes a byte
whenever it is idle.

The receiver synchronises `rx` (two flip-flops), waits half a bit after the falling edge of
the start bit, checks that the start bit is still low (a shorter glitch is ignored), then
samples every bit in its middle. A stop bit that reads 0 is a framing error: the byte is
dropped, `frame_error` pulses for one cycle, and the receiver waits for the line to return
high (a break) before it looks for the next start bit.
"""

from __future__ import annotations

from numbers import Real

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from . import formal

#: Fewest clock cycles per bit: the receiver samples at divisor // 2 and needs room around it.
MIN_DIVISOR = 4
#: Largest relative difference between the requested baud rate and clk_freq / divisor.
MAX_BAUD_ERROR = 0.02


def uart_divisor(clk_freq, baud) -> int:
    """Clock cycles per bit for `baud` at `clk_freq`; ValueError when the UART cannot work."""
    for name, value in (("clk_freq", clk_freq), ("baud", baud)):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"{name} must be a number, not {value!r}")
        if not value > 0:
            raise ValueError(f"{name} must be positive, not {value!r}")
    divisor = round(clk_freq / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"baud {baud!r} is too fast for a {clk_freq!r} Hz clock: {clk_freq / baud:.2f} "
                         f"cycles per bit, at least {MIN_DIVISOR} needed")
    error = abs(clk_freq / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"baud {baud!r} cannot be made from a {clk_freq!r} Hz clock: the nearest divisor "
                         f"{divisor} gives {clk_freq / divisor:.0f} baud ({error:.1%} off, at most "
                         f"{MAX_BAUD_ERROR:.0%} allowed)")
    return divisor


class UARTTransmitter(wiring.Component):
    """Sends each byte of `i` as start bit, 8 data bits (LSB first), stop bit on `tx`.

    `tx` is a register (no glitches on the line); `busy` is high while a frame is on the line.
    """

    def __init__(self, clk_freq, baud):
        self.divisor = uart_divisor(clk_freq, baud)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        timer = Signal(range(d))
        left = Signal(range(10))            # bits still to put on the line after the current one
        shreg = Signal(9)                   # data bits then the stop bit, LSB first
        idle = (left == 0) & (timer == 0)
        m.d.comb += [self.i.ready.eq(idle), self.busy.eq(~idle)]
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(left != 0):
            m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(shreg >> 1), left.eq(left - 1), timer.eq(d - 1)]
        with m.Elif(self.i.valid):
            m.d.sync += [self.tx.eq(0), shreg.eq(Cat(self.i.payload, 1)), left.eq(9), timer.eq(d - 1)]
        formal.hook(self, m, timer=timer, left=left, shreg=shreg)
        return m


class UARTReceiver(wiring.Component):
    """Turns the `rx` line into bytes on `o`; `frame_error` and `overrun` pulse for one cycle.

    `o.valid` stays high until the byte is taken; a byte completed while the previous one is
    still waiting replaces it and pulses `overrun`.
    """

    def __init__(self, clk_freq, baud):
        self.divisor = uart_divisor(clk_freq, baud)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "frame_error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(d))
        bits = Signal(range(9))
        shreg = Signal(8)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(line):
                        m.next = "IDLE"                     # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(d - 1), bits.eq(8)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), bits.eq(bits - 1), timer.eq(d - 1)]
                    with m.If(bits == 1):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(line):
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        m.d.comb += self.overrun.eq(self.o.valid & ~self.o.ready)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.frame_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        formal.hook(self, m, fsm=fsm, line=line, timer=timer, bits=bits, shreg=shreg)
        return m
