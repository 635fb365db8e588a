"""Board tops: the engine behind the host link behind a UART, clocked by the board PLL.

`LinkedEngine` is the byte-level design (link + engine) that the simulated transport runs;
`BoardTop` adds the UART on the board's `uart` resource and two LEDs:

- LED 0: the engine is busy (stretched to at least `LED_HOLD_S` so a short command shows);
- LED 1: the link answered an error (stretched the same way).

With `clock_hz`, the whole design runs from the board PLL at that frequency (boards/clock.py:
the dividers come from yowasp-icepll / yowasp-ecppll and the UART divisor and link timeout
follow the achieved frequency); without it, on the board oscillator (`platform.default_clk`).
"""

from __future__ import annotations

from amaranth import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io, stream, wiring
from amaranth.lib.wiring import In, Out

from memprop.model.config import Config
from memprop.rtl.engine import Engine
from memprop.rtl.link import MAX_BURST, HostLink
from memprop.rtl.uart import UARTReceiver, UARTTransmitter, uart_divisor

from .build import DEFAULT_BAUD
from .clock import PLLClock, pll_params
#: Quiet time that ends a truncated frame and the discarding after an error.
LINK_TIMEOUT_S = 0.02
#: LEDs stay on at least this long after an event.
LED_HOLD_S = 0.05


class LinkedEngine(wiring.Component):
    """`HostLink` driving `Engine`: request bytes in on `rx`, response bytes out on `tx`."""

    def __init__(self, cfg: Config, *, timeout: int, max_burst: int = MAX_BURST, fifo_depth: int = 16,
                 clock_hz: float = 0, init=None):
        self.engine = Engine(cfg, init=init)      # init: weights baked in (boards.image.Image)
        self.link = HostLink(timeout=timeout, max_burst=max_burst, fifo_depth=fifo_depth, clock_hz=clock_hz)
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)), "rx_lost": In(1),
                          "busy": Out(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self.engine
        m.submodules.link = link = self.link
        wiring.connect(m, link.bus, engine.bus)
        wiring.connect(m, wiring.flipped(self.rx), link.rx)
        wiring.connect(m, link.tx, wiring.flipped(self.tx))
        m.d.comb += [link.rx_lost.eq(self.rx_lost), self.busy.eq(engine.busy), self.error.eq(link.error)]
        return m


#: The LED hold counts ticks of 2^STRETCH_TICK_BITS cycles: a 20-bit cycle counter's carry chain
#: was the iCEBreaker design's critical path (split across columns in a full device).
STRETCH_TICK_BITS = 12


def _stretch(m: Module, event, cycles: int):
    """A register that is high while `event` is (a cycle later) and for about `cycles`
    afterwards (at least `cycles`, at most one tick more). Registered, so the pin's path does
    not start inside the link's state machine (the ULX3S's longest output path)."""
    prescaler = Signal(STRETCH_TICK_BITS)
    tick = Signal()
    m.d.sync += [prescaler.eq(prescaler + 1), tick.eq(prescaler == (1 << STRETCH_TICK_BITS) - 1)]
    ticks = -(-cycles // (1 << STRETCH_TICK_BITS)) + 1
    left = Signal(range(ticks + 1))
    with m.If(event):
        m.d.sync += left.eq(ticks)
    with m.Elif(tick & (left != 0)):
        m.d.sync += left.eq(left - 1)
    lit = Signal()
    m.d.sync += lit.eq(event | (left != 0))
    return lit


def check_serial(clk_freq, baud: int, max_burst: int, fifo_depth: int) -> None:
    """ValueError unless the UART can run at `baud` and the link's FIFO holds the bytes that
    arrive while the link executes its longest frame (a burst: two cycles a word)."""
    divisor = uart_divisor(clk_freq, baud)
    need = (2 * max_burst + 16) // (10 * divisor) + 2
    if need > fifo_depth:
        raise ValueError(f"at {baud} baud the link's FIFO of {fifo_depth} bytes can overflow "
                         f"during a {max_burst}-word burst; use fifo_depth >= {need}")


class SerialEngine(wiring.Component):
    """`LinkedEngine` behind an 8N1 UART: the board design without its pins (simulated bit by bit
    in tests/boards/test_serial.py). `timeout` is the link's, in clock cycles."""

    def __init__(self, cfg: Config, *, clk_freq, baud: int, timeout: int, max_burst: int = MAX_BURST,
                 fifo_depth: int = 16, init=None):
        check_serial(clk_freq, baud, max_burst, fifo_depth)
        self.uart_rx = UARTReceiver(clk_freq, baud)
        self.uart_tx = UARTTransmitter(clk_freq, baud)
        self.core = LinkedEngine(cfg, timeout=timeout, max_burst=max_burst, fifo_depth=fifo_depth, clock_hz=clk_freq,
                                 init=init)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        m.submodules.uart_rx = rx = self.uart_rx
        m.submodules.uart_tx = tx = self.uart_tx
        wiring.connect(m, rx.o, core.rx)
        wiring.connect(m, core.tx, tx.i)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), core.rx_lost.eq(rx.frame_error | rx.overrun),
                     self.busy.eq(core.busy), self.error.eq(core.error)]
        return m


class BoardTop(Elaboratable):
    """Engine + link + UART (8N1 at `baud`) on an amaranth-boards platform's `uart` and LEDs."""

    def __init__(self, cfg: Config, *, baud: int = DEFAULT_BAUD, max_burst: int = MAX_BURST, fifo_depth: int = 16,
                 clock_hz: float | None = None, init=None):
        self.cfg = cfg
        self.init = init
        self.baud = baud
        self.max_burst = max_burst
        self.fifo_depth = fifo_depth
        self.clock_hz = clock_hz
        self.frequency = None          # the core clock, known after elaboration

    def elaborate(self, platform):
        osc = clk = platform.default_clk_frequency
        if self.clock_hz is not None:
            family = "ice40" if platform.device.startswith("iCE40") else "ecp5"
            params = pll_params(family, osc, self.clock_hz)
            clk = params["f_out_hz"]
        check_serial(clk, self.baud, self.max_burst, self.fifo_depth)
        self.frequency = clk
        m = Module()
        if self.clock_hz is not None:
            m.domains.sync = ClockDomain("sync")
            m.submodules.pll = PLLClock(family, osc, params, platform.request(platform.default_clk, dir="-"))
        serial = SerialEngine(self.cfg, clk_freq=clk, baud=self.baud, timeout=round(LINK_TIMEOUT_S * clk),
                              max_burst=self.max_burst, fifo_depth=self.fifo_depth, init=self.init)
        m.submodules.serial = serial
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [serial.rx.eq(rx_buf.i), tx_buf.o.eq(serial.tx)]
        # (the ULX3S's `uart_tx_enable` is the FT231X's TXDEN output: left alone, not driven)

        hold = round(LED_HOLD_S * clk)
        for number, event in ((0, serial.busy), (1, serial.error)):
            m.submodules[f"led{number}"] = led = io.Buffer("o", platform.request("led", number, dir="-"))
            m.d.comb += led.o.eq(_stretch(m, event, hold))
        return m
