"""Formal properties of the UART (rtl/uart.py), and the harnesses that prove them.

Three proofs, each with the divisor `d` (clock cycles per bit) as its parameter:

- `UartTxProof`: the transmitter alone, any byte stream at its input;
- `UartRxProof`: the receiver alone, any waveform on the line, any consumer;
- `UartLoopbackProof`: transmitter -> line -> receiver, any byte stream, any consumer.

The environment (inputs) is free (`AnySeq`); reset is held low after the start, so the
design starts in its reset state. Lemmas are invariants the induction needs; they are
proven like every other assertion.
"""

from __future__ import annotations

from amaranth import Cat, Const, Elaboratable, Module, Mux, ResetSignal, Signal
from amaranth.asserts import AnySeq

from .formal import Properties, attach, past
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["UartLoopbackProof", "UartRxProof", "UartTxProof", "transmitter_properties", "receiver_properties"]

FRAME_BITS = 10          # start, 8 data bits, stop


def _uart(cls, divisor: int):
    return cls(divisor * 1_000_000, 1_000_000)


class _Monitor:
    """The transmitter's frame as the spec draws it: bit index and clock within the bit."""

    def __init__(self, m: Module, tx: UARTTransmitter, d: int):
        self.active = Signal(name="mon_tx_active")     # a frame is on the line
        self.bit = Signal(range(FRAME_BITS), name="mon_tx_bit")
        self.tick = Signal(range(d), name="mon_tx_tick")
        self.byte = Signal(8, name="mon_tx_byte")
        self.accept = Signal(name="mon_tx_accept")
        self.last = Signal(name="mon_tx_last")          # the last clock of the stop bit
        m.d.comb += [self.accept.eq(tx.i.valid & tx.i.ready),
                     self.last.eq(self.active & (self.bit == FRAME_BITS - 1) & (self.tick == d - 1))]
        with m.If(self.last):
            m.d.sync += self.active.eq(0)
        with m.Elif(self.active):
            m.d.sync += self.tick.eq(self.tick + 1)
            with m.If(self.tick == d - 1):
                m.d.sync += [self.tick.eq(0), self.bit.eq(self.bit + 1)]
        with m.If(self.accept):
            m.d.sync += [self.active.eq(1), self.bit.eq(0), self.tick.eq(0), self.byte.eq(tx.i.payload)]
        self.frame = Cat(Const(0, 1), self.byte, Const(1, 1))   # line value of bit b: frame[b]


def transmitter_properties(props: Properties, d: int, mon: _Monitor, *, prefix: str = "uart.tx",
                           lemmas_only: bool = False):
    """The transmitter's properties against the frame monitor `mon` (built in the harness from
    the transmitter's ports); `lemmas_only` declares them all as lemmas (the loopback proof
    uses them as invariants of its transmitter)."""

    def attach_fn(m: Module, tx: UARTTransmitter, internals):
        expected = mon.frame.bit_select(mon.bit, 1)

        def check(name, test, text, lemma=False):
            props.check(m, f"{prefix}_{name}", test, text, lemma=lemma or lemmas_only)

        check("idle_high", tx.busy | tx.tx, "the line is high (idle) whenever the transmitter is not sending")
        check("frame", ~mon.active | (tx.tx == expected),
              "every accepted byte goes out as a start bit, 8 data bits LSB first and a stop bit, "
              "each exactly one divisor long")
        check("one_frame_at_a_time", tx.i.ready == (~mon.active | mon.last),
              "the transmitter takes a new byte only when the previous stop bit ends, and then at once")
        # lemmas: the transmitter's counters follow the monitor's position in the frame
        left, timer, shreg = internals.left, internals.timer, internals.shreg
        framed = Cat(mon.byte, Const(1, 1))
        check("state_matches_frame",
              ~mon.active | ((left == FRAME_BITS - 1 - mon.bit) & (timer == d - 1 - mon.tick)
                             & (shreg == (framed >> mon.bit)[:9])),
              "lemma: shift register, bit and clock counters agree with the frame position", lemma=True)
        check("idle_state", mon.active | ((left == 0) & (timer == 0) & tx.tx),
              "lemma: between frames the counters are zero and the line is high", lemma=True)
        check("monitor_in_range", mon.bit < FRAME_BITS, "lemma: the monitor's bit index stays in the frame",
              lemma=True)
        if not lemmas_only:
            props.cover(m, f"{prefix}_back_to_back", mon.last & mon.accept,
                        "a byte follows the previous stop bit without a gap")
    return attach_fn


def receiver_properties(props: Properties, d: int):
    def attach_fn(m: Module, rx: UARTReceiver, internals):
        waiting = Signal(name="mon_rx_waiting")      # a byte on `o` was not taken this cycle
        m.d.comb += waiting.eq(rx.o.valid & ~rx.o.ready)
        was_waiting = past(m, waiting, "mon_rx_was_waiting")
        was_payload = past(m, rx.o.payload, "mon_rx_was_payload")
        was_overrun = past(m, rx.overrun, "mon_rx_was_overrun")
        props.check(m, "uart.rx_no_silent_loss",
                    ~was_waiting | was_overrun | (rx.o.valid & (rx.o.payload == was_payload)),
                    "a received byte stays on the output until it is taken; it is replaced only with an "
                    "overrun pulse")
        props.check(m, "uart.rx_overrun_only_when_full", ~rx.overrun | waiting,
                    "an overrun is reported only when a byte is waiting and not taken")
        fsm = internals.fsm
        props.check(m, "uart.rx_counters_in_range",
                    (internals.bits <= 8) & (~fsm.ongoing("DATA") | (internals.bits >= 1)),
                    "lemma: the bit counter stays within the frame", lemma=True)
        props.cover(m, "uart.rx_byte", rx.o.valid & rx.o.ready, "a byte is received and taken")
        props.cover(m, "uart.rx_overrun", rx.overrun, "an overrun")
        props.cover(m, "uart.rx_frame_error", rx.frame_error, "a framing error (stop bit 0)")
        props.cover(m, "uart.rx_glitch", fsm.ongoing("START") & (internals.timer == 0) & internals.line,
                    "a low glitch shorter than half a bit is ignored")
    return attach_fn


def _no_reset(m: Module):
    Properties.assume(m, ~ResetSignal())


class UartTxProof(Elaboratable):
    def __init__(self, props: Properties, divisor: int = 4):
        self.props, self.d = props, divisor

    def elaborate(self, platform):
        m = Module()
        _no_reset(m)
        m.submodules.tx = tx = _uart(UARTTransmitter, self.d)
        m.d.comb += [tx.i.valid.eq(AnySeq(1)), tx.i.payload.eq(AnySeq(8))]
        attach(tx, transmitter_properties(self.props, self.d, _Monitor(m, tx, self.d)))
        return m


class UartRxProof(Elaboratable):
    def __init__(self, props: Properties, divisor: int = 4):
        self.props, self.d = props, divisor

    def elaborate(self, platform):
        m = Module()
        _no_reset(m)
        m.submodules.rx = rx = attach(_uart(UARTReceiver, self.d), receiver_properties(self.props, self.d))
        m.d.comb += [rx.rx.eq(AnySeq(1)), rx.o.ready.eq(AnySeq(1))]
        return m


class UartLoopbackProof(Elaboratable):
    """Transmitter -> receiver with the same divisor: what goes out comes back, once, intact."""

    def __init__(self, props: Properties, divisor: int = 4):
        self.props, self.d = props, divisor

    def elaborate(self, platform):
        m = Module()
        _no_reset(m)
        props, d = self.props, self.d
        m.submodules.tx = tx = _uart(UARTTransmitter, d)
        m.submodules.rx = rx = _uart(UARTReceiver, d)
        m.d.comb += [tx.i.valid.eq(AnySeq(1)), tx.i.payload.eq(AnySeq(8)), rx.o.ready.eq(AnySeq(1)),
                     rx.rx.eq(tx.tx)]
        tx_monitor = _Monitor(m, tx, d)
        attach(tx, transmitter_properties(props, d, tx_monitor, prefix="uart.loopback_tx", lemmas_only=True))

        def loopback(m_rx: Module, rx_: UARTReceiver, internals):
            # the bytes sent and not yet received, oldest first (the receiver finishes a byte
            # one clock after the transmitter may take the next one: two can be in flight)
            queue = [Signal(8, name=f"mon_sent{i}") for i in range(2)]
            count = Signal(range(3), name="mon_in_flight")
            accept = tx.i.valid & tx.i.ready
            done = Signal(name="mon_rx_done")
            fsm, timer, bits, shreg = internals.fsm, internals.timer, internals.bits, internals.shreg
            m_rx.d.comb += done.eq(fsm.ongoing("STOP") & (timer == 0) & internals.line)
            with m_rx.If(done & accept):
                m_rx.d.sync += [queue[0].eq(Mux(count == 1, tx.i.payload, queue[1])), queue[1].eq(tx.i.payload)]
            with m_rx.Elif(done):
                m_rx.d.sync += [queue[0].eq(queue[1]), count.eq(count - 1)]
            with m_rx.Elif(accept):
                m_rx.d.sync += [queue[0].eq(Mux(count == 0, tx.i.payload, queue[0])), queue[1].eq(tx.i.payload),
                                count.eq(count + 1)]
            was_done = past(m_rx, done, "mon_was_done")
            was_expected = past(m_rx, queue[0], "mon_was_expected")
            props.check(m_rx, "uart.loopback_exact",
                        (~done | (count != 0)) & (~was_done | (rx_.o.valid & (rx_.o.payload == was_expected))),
                        "every byte the transmitter sends is received once, in order and with its value, by a "
                        "receiver of the same divisor")
            props.check(m_rx, "uart.loopback_no_frame_error", ~rx_.frame_error,
                        "a clean line never gives a framing error")
            # lemma: the receiver's state is a function of where the line (two clocks behind the
            # transmitter, through the synchroniser) is in the frame
            mon = tx_monitor
            position = Signal(range(FRAME_BITS * d), name="mon_tx_position")
            m_rx.d.comb += position.eq(mon.bit * d + mon.tick)
            active2 = past(m_rx, past(m_rx, mon.active, "mon_active1"), "mon_active2")
            pos2 = past(m_rx, past(m_rx, position, "mon_pos1"), "mon_pos2")
            byte2 = past(m_rx, past(m_rx, mon.byte, "mon_byte1"), "mon_byte2")
            tx_line2 = past(m_rx, past(m_rx, tx.tx, "mon_line1", init=1), "mon_line2", init=1)
            h = d // 2
            old_flying = Signal(name="mon_old_flying")   # the frame the receiver sees, not yet received
            new_flying = Signal(name="mon_new_flying")   # the transmitter's frame, not yet on the line
            m_rx.d.comb += [old_flying.eq(active2 & (pos2 <= h + 9 * d)), new_flying.eq(mon.active & (position < 2))]
            expected = Signal(name="mon_rx_expected_state")
            with m_rx.If(~active2):
                m_rx.d.comb += expected.eq(fsm.ongoing("IDLE"))
            with m_rx.Else():
                with m_rx.Switch(pos2):
                    for c in range(FRAME_BITS * d):
                        with m_rx.Case(c):
                            if c == 0 or c > h + 9 * d:
                                m_rx.d.comb += expected.eq(fsm.ongoing("IDLE"))
                            elif c <= h:
                                m_rx.d.comb += expected.eq(fsm.ongoing("START") & (timer == h - c))
                            elif c <= h + 8 * d:
                                samples = (c - h - 1) // d
                                ok = fsm.ongoing("DATA") & (timer == d - 1 - (c - h - 1) % d) & (bits == 8 - samples)
                                if samples:
                                    ok &= shreg[8 - samples:] == byte2[:samples]
                                m_rx.d.comb += expected.eq(ok)
                            else:
                                m_rx.d.comb += expected.eq(fsm.ongoing("STOP") & (timer == d - 1 - (c - h - 8 * d - 1))
                                                           & (shreg == byte2))
            props.check(m_rx, "uart.loopback_rx_follows_line",
                        expected & (internals.line == tx_line2) & (count == old_flying + new_flying)
                        & (~old_flying | (queue[0] == byte2))
                        & (~new_flying | (Mux(old_flying, queue[1], queue[0]) == mon.byte)),
                        "lemma: the receiver's state follows the line's position in the frame", lemma=True)
            received = Signal(2, name="mon_received")
            with m_rx.If(done & (received != 3)):
                m_rx.d.sync += received.eq(received + 1)
            props.cover(m_rx, "uart.loopback_byte", was_done & rx_.o.valid, "a byte went round the loop")

        attach(rx, loopback)
        return m
