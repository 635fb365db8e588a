"""The host link: framed, CRC-checked engine bus transactions over a byte stream (a UART).

`HostLink` reads request frames from `rx`, executes them on the engine's `HostBus` (as the
initiator) and answers every frame with one response frame on `tx`. docs/hostlink.md is the
specification; the constants and the reference CRC below are shared with the host
(memprop.boards.host) and the tests.

Request (host -> link), all multi-byte fields big-endian, CRC over every byte before it:

    READ   A5 01 a2 a1 a0 c1 c0                        7 bytes
    WRITE  A5 02 a2 a1 a0 d3 d2 d1 d0 c1 c0            11 bytes
    BURST  A5 03 a2 a1 a0 n  (d3 d2 d1 d0) x (n+1) c1 c0   words to addr, addr+1, ... addr+n
    INFO   A5 04 00 00 00 c1 c0                        link version and burst capacity

Response (link -> host): 5A op status d3 d2 d1 d0 c1 c0 (9 bytes). READ: the word read;
WRITE: 0; BURST: the number of words written; INFO: VERSION << 24 | (max_burst - 1) << 16 |
clock in 10 kHz units (0: not told).

A frame is executed only after its CRC has been checked, so a BURST is buffered first. A
corrupt frame (first byte not A5, unknown opcode, burst longer than the buffer, bad CRC, a
byte lost in the UART) is never executed: the link swallows bytes until the line has been
quiet for `timeout` cycles and then sends one error response. A frame that stops half-way
(no byte for `timeout` cycles) gets a TIMEOUT response.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import formal
from . import hostmap as hm
from .crc import linear_taps, xor_of, xor_step, zero_check_taps
from .engine import HostBus

VERSION = 1

SYNC_REQUEST = 0xA5
SYNC_RESPONSE = 0x5A

OP_READ = 0x01
OP_WRITE = 0x02
OP_BURST = 0x03
OP_INFO = 0x04
OPCODES = {OP_READ: "READ", OP_WRITE: "WRITE", OP_BURST: "BURST", OP_INFO: "INFO"}

ST_OK = 0x00
ST_BAD_CRC = 0x01       # the CRC of the frame did not match
ST_BAD_OPCODE = 0x02    # unknown opcode
ST_TIMEOUT = 0x03       # the frame stopped half-way (no byte for `timeout` cycles)
ST_BAD_SYNC = 0x04      # a frame did not start with SYNC_REQUEST
ST_LOST_BYTE = 0x05     # the UART dropped a byte (framing error or overrun)
ST_BAD_LENGTH = 0x06    # a BURST longer than the link's buffer
STATUS = {ST_OK: "ok", ST_BAD_CRC: "bad CRC", ST_BAD_OPCODE: "unknown opcode", ST_TIMEOUT: "timeout (truncated frame)",
          ST_BAD_SYNC: "bad sync byte", ST_LOST_BYTE: "byte lost by the UART (framing error or overrun)",
          ST_BAD_LENGTH: "burst longer than the link's buffer"}

RESPONSE_BYTES = 9
MAX_BURST = 256         # the count byte holds n - 1

CRC_POLY = 0x1021       # CRC-16/CCITT-FALSE: x^16 + x^12 + x^5 + 1, init 0xFFFF, MSB first, no final xor
CRC_INIT = 0xFFFF


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """The reference CRC (crc16(b"123456789") == 0x29B1). A frame followed by its CRC gives 0."""
    for byte in data:
        crc = _crc16_raw(byte, crc)
    return crc


def _crc16_raw(byte: int, crc: int) -> int:
    """One byte of the CRC without the init value (the linear part)."""
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


_TAPS = linear_taps(lambda crc, byte: _crc16_raw(byte, crc), 16)


def crc16_next(crc, byte):
    """The same CRC step on Amaranth values: one byte per clock, each bit a flat XOR."""
    return xor_step(_TAPS, crc, byte)


_EXPECT_TAPS, _ZERO_TAPS = zero_check_taps(lambda crc, byte: _crc16_raw(byte, crc), 16)


def crc16_ends_at_zero(crc, byte):
    """`crc16_next(crc, byte) == 0` as a compare of `byte` with bits of the CRC register (for
    this CRC: its high byte, and its low byte must be 0): no XOR tree ahead of the compare."""
    return (byte == xor_of(_EXPECT_TAPS, crc)) & ~xor_of(_ZERO_TAPS, crc).any()


#: INFO reports the link's clock in these units (its low 16 bits; 0: not told).
CLOCK_UNIT_HZ = 10_000


def info_word(max_burst: int, clock_hz: float = 0) -> int:
    """VERSION << 24 | (max_burst - 1) << 16 | clock in 10 kHz (0 when unknown)."""
    return (VERSION << 24) | ((max_burst - 1) << 16) | min(int(round(clock_hz / CLOCK_UNIT_HZ)), 0xFFFF)


class HostLink(wiring.Component):
    """Request frames on `rx` -> engine bus transactions -> response frames on `tx`.

    Parameters: `timeout` (clock cycles without a byte that end a frame, and the quiet time
    that ends the discarding after an error), `max_burst` (words a BURST may carry: the size
    of the buffer, one block RAM at 256), `fifo_depth` (bytes the link can take while it is
    executing a frame or waiting to send a response), `clock_hz` (reported by INFO in 10 kHz
    units so that the host can turn cycle counts into time; 0: not reported).

    `rx_lost` (from the UART: framing error or overrun) marks the current frame corrupt.
    `error` pulses when an error response is queued; `active` is high inside a frame.
    Every bus write is followed by at least one cycle without a write (a STATE write needs it).
    """

    def __init__(self, *, timeout: int, max_burst: int = MAX_BURST, fifo_depth: int = 16, clock_hz: float = 0):
        if not isinstance(timeout, int) or timeout < 2:
            raise ValueError(f"timeout must be an integer of at least 2 cycles, not {timeout!r}")
        if not isinstance(max_burst, int) or not 1 <= max_burst <= MAX_BURST:
            raise ValueError(f"max_burst must be an integer in 1..{MAX_BURST}, not {max_burst!r}")
        if not isinstance(fifo_depth, int) or fifo_depth < 2:
            raise ValueError(f"fifo_depth must be an integer of at least 2, not {fifo_depth!r}")
        self.timeout = timeout
        self.max_burst = max_burst
        self.fifo_depth = fifo_depth
        self.clock_hz = clock_hz
        super().__init__({
            "rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)), "rx_lost": In(1),
            "bus": Out(HostBus()), "error": Out(1), "active": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=self.fifo_depth)
        wiring.connect(m, wiring.flipped(self.rx), rx_fifo.w_stream)
        inp = rx_fifo.r_stream
        byte = inp.payload

        m.submodules.burst_mem = burst_mem = memory.Memory(shape=32, depth=self.max_burst, init=[])
        buf_wr = burst_mem.write_port()
        buf_rd = burst_mem.read_port()

        op = Signal(8)
        addr = Signal(hm.ADDR_BITS)
        data = Signal(hm.DATA_BITS)
        count = Signal(8)                       # BURST: words - 1
        count_end = Signal(9, init=1)           # count + 1, kept beside it: no adder before the burst's end test
        index = Signal(range(self.max_burst + 1))
        k = Signal(2)                           # byte within a field
        crc = Signal(16)
        quiet = Signal(range(self.timeout + 1))   # cycles without a byte
        lost = Signal()                         # the UART dropped a byte since the last check
        status = Signal(8)
        took = Signal()
        m.d.comb += took.eq(inp.valid & inp.ready)

        # the response: queued by the parser, sent by the serializer (below)
        queue = Signal()
        sending = Signal()

        with m.If(self.rx_lost):
            m.d.sync += lost.eq(1)
        m.d.sync += [bus.we.eq(0), bus.re.eq(0)]
        with m.If(took):
            m.d.sync += [quiet.eq(0), crc.eq(crc16_next(crc, byte))]
        with m.Elif(quiet != self.timeout):
            m.d.sync += quiet.eq(quiet + 1)

        def fail(code):
            """Stop parsing: swallow bytes until the line is quiet, then answer `code` (with data 0:
            DISCARD clears it, so no check's verdict, the CRC's above all, reaches the data register)."""
            m.d.sync += [status.eq(code), quiet.eq(0)]
            m.next = "DISCARD"

        def receiving(state_body):
            """A state that takes bytes; a lost byte or a timeout ends the frame."""
            m.d.comb += inp.ready.eq(1)
            with m.If(lost):
                m.d.sync += lost.eq(0)
                fail(ST_LOST_BYTE)
            with m.Elif(took):
                state_body()
            with m.Elif(quiet == self.timeout):
                m.d.sync += [status.eq(ST_TIMEOUT), data.eq(0)]
                m.next = "RESPOND"

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += inp.ready.eq(1)
                m.d.sync += [op.eq(0), k.eq(0), index.eq(0), crc.eq(crc16_next(CRC_INIT, byte))]
                with m.If(lost):
                    m.d.sync += lost.eq(0)
                    fail(ST_LOST_BYTE)
                with m.Elif(took):
                    with m.If(byte == SYNC_REQUEST):
                        m.next = "OP"
                    with m.Else():
                        fail(ST_BAD_SYNC)
            with m.State("OP"):
                m.d.comb += self.active.eq(1)

                def on_op():
                    m.d.sync += op.eq(byte)
                    with m.If((byte == OP_READ) | (byte == OP_WRITE) | (byte == OP_BURST) | (byte == OP_INFO)):
                        m.next = "ADDR"
                    with m.Else():
                        fail(ST_BAD_OPCODE)
                receiving(on_op)
            with m.State("ADDR"):
                m.d.comb += self.active.eq(1)

                def on_addr():
                    m.d.sync += [addr.eq(Cat(byte, addr[:16])), k.eq(k + 1)]
                    with m.If(k == 2):
                        m.d.sync += k.eq(0)
                        with m.Switch(op):
                            with m.Case(OP_WRITE):
                                m.next = "DATA"
                            with m.Case(OP_BURST):
                                m.next = "COUNT"
                            with m.Default():
                                m.next = "CRC"
                receiving(on_addr)
            with m.State("COUNT"):
                m.d.comb += self.active.eq(1)

                def on_count():
                    m.d.sync += [count.eq(byte), count_end.eq(byte + 1)]
                    with m.If(byte >= self.max_burst):
                        fail(ST_BAD_LENGTH)
                    with m.Else():
                        m.next = "DATA"
                receiving(on_count)
            with m.State("DATA"):
                m.d.comb += self.active.eq(1)
                word = Cat(byte, data[:24])
                m.d.comb += [buf_wr.addr.eq(index), buf_wr.data.eq(word)]

                def on_data():
                    m.d.sync += [data.eq(word), k.eq(k + 1)]
                    with m.If(k == 3):
                        with m.If(op == OP_BURST):
                            m.d.comb += buf_wr.en.eq(1)
                            m.d.sync += index.eq(index + 1)
                            with m.If(index == count):
                                m.next = "CRC"
                        with m.Else():
                            m.next = "CRC"
                receiving(on_data)
            with m.State("CRC"):
                m.d.comb += self.active.eq(1)

                def on_crc():
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == 1):
                        with m.If(crc16_ends_at_zero(crc, byte)):
                            m.d.sync += [index.eq(0), status.eq(ST_OK)]
                            m.next = "EXECUTE"
                        with m.Else():
                            fail(ST_BAD_CRC)
                receiving(on_crc)
            with m.State("DISCARD"):
                m.d.comb += inp.ready.eq(1)
                m.d.sync += [lost.eq(0), data.eq(0)]
                with m.If(self.rx_lost):
                    m.d.sync += quiet.eq(0)
                with m.If((quiet == self.timeout) & ~self.rx_lost):
                    m.next = "RESPOND"
            with m.State("EXECUTE"):
                m.d.comb += self.active.eq(1)
                with m.Switch(op):
                    with m.Case(OP_READ):
                        m.d.sync += [bus.addr.eq(addr), bus.re.eq(1)]
                        m.next = "READ_WAIT"
                    with m.Case(OP_WRITE):
                        m.d.sync += [bus.addr.eq(addr), bus.wdata.eq(data), bus.we.eq(1)]
                        m.d.sync += data.eq(0)
                        m.next = "WRITE_GAP"
                    with m.Case(OP_BURST):
                        m.d.comb += buf_rd.addr.eq(index)
                        m.next = "BURST_WRITE"
                    with m.Default():           # OP_INFO
                        m.d.sync += data.eq(info_word(self.max_burst, self.clock_hz))
                        m.next = "RESPOND"
            with m.State("READ_WAIT"):
                m.d.comb += self.active.eq(1)
                with m.If(bus.rvalid):
                    m.d.sync += data.eq(bus.rdata)
                    m.next = "RESPOND"
            with m.State("WRITE_GAP"):         # the cycle in which the engine sees the write
                m.d.comb += self.active.eq(1)
                m.next = "RESPOND"
            with m.State("BURST_WRITE"):
                # the word read in EXECUTE / BURST_GAP goes out; writes alternate with idle cycles
                m.d.comb += self.active.eq(1)
                m.d.sync += [bus.addr.eq(addr + index), bus.wdata.eq(buf_rd.data), bus.we.eq(1),
                             index.eq(index + 1)]
                m.next = "BURST_GAP"
            with m.State("BURST_GAP"):
                m.d.comb += [self.active.eq(1), buf_rd.addr.eq(index)]
                with m.If(index == count_end):
                    m.d.sync += data.eq(index)
                    m.next = "RESPOND"
                with m.Else():
                    m.next = "BURST_WRITE"
            with m.State("RESPOND"):
                with m.If(~sending):
                    m.d.comb += [queue.eq(1), self.error.eq(status != ST_OK)]
                    m.d.sync += data.eq(0)
                    m.next = "IDLE"

        # -- serializer: 5A op status d3 d2 d1 d0 crc1 crc0 -----------------------------------
        out = Signal(56)
        sent = Signal(range(RESPONSE_BYTES + 1), init=RESPONSE_BYTES)
        out_crc = Signal(16)
        tx = self.tx
        m.d.comb += sending.eq(sent != RESPONSE_BYTES)
        m.d.comb += [tx.valid.eq(sending),
                     tx.payload.eq(Mux(sent < 7, out[48:], Mux(sent == 7, out_crc[8:], out_crc[:8])))]
        with m.If(queue):
            m.d.sync += [out.eq(Cat(data, status, op, Const(SYNC_RESPONSE, 8))), sent.eq(0),
                         out_crc.eq(CRC_INIT)]
        with m.Elif(tx.valid & tx.ready):
            m.d.sync += [sent.eq(sent + 1), out.eq(out << 8)]
            with m.If(sent < 7):
                m.d.sync += out_crc.eq(crc16_next(out_crc, tx.payload))
        formal.hook(self, m, fsm=fsm, rx_fifo=rx_fifo, burst_mem=burst_mem, buf_rd=buf_rd, buf_wr=buf_wr, op=op,
                    addr=addr, data=data, count=count, count_end=count_end, index=index, k=k, crc=crc, quiet=quiet, lost=lost,
                    status=status, queue=queue, sending=sending, out=out, sent=sent, out_crc=out_crc)
        return m
