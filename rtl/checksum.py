"""CHECKSUM: the CRC-32 of the weights a bank holds, computed by the engine on command.

The host proves what the engine computes with (after a load, after training, after a host
died half-way through a load) without reading every code back: docs/hostlink.md, "Weights
on a board". The checksum is CRC-32 as zlib computes it (reflected polynomial 0xEDB88320,
initial value and final XOR 0xFFFFFFFF) over

    every code entry in stream order (word by word, lane 0 first), then every bias entry,
    each as ceil(E / 8) bytes, least significant first (E = Layout.entry_bits);
    then the update counter t and the seed, 4 bytes each, least significant first,

which is `memprop.boards.image.checksum` on the host. One byte per clock: the CRC step is
linear over GF(2), so each of the 32 output bits is a flat XOR of at most 9 input bits
(found by running the reference on unit vectors, like the link's CRC-16).

Cycles (from `start` to `done`, rtl/cycles.py style):

    checksum_cycles = D (2 + P B) + N (2 + B) + 8 + 1        B = ceil(E / 8)

D words of P entries (a read cycle, a load cycle, P B byte cycles), N biases (the same with
one entry), 8 bytes of t and seed, and the cycle that raises `done`.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .crc import linear_taps, xor_step

CRC32_POLY = 0xEDB88320      # reflected 0x04C11DB7
CRC32_INIT = 0xFFFFFFFF


def crc32_byte(crc: int, byte: int) -> int:
    """One byte of the reflected CRC-32 without init or final XOR (the linear step)."""
    crc ^= byte
    for _ in range(8):
        crc = (crc >> 1) ^ CRC32_POLY if crc & 1 else crc >> 1
    return crc


_TAPS = linear_taps(crc32_byte, 32)


def crc32_next(crc, byte):
    """The CRC-32 step on Amaranth values: a 32-bit CRC and one byte in, the next CRC out."""
    return xor_step(_TAPS, crc, byte)


def entry_bytes(entry_bits: int) -> int:
    return max(1, -(-entry_bits // 8))


def checksum_cycles(words: int, lanes: int, n: int, entry_bits: int) -> int:
    """Cycles of a CHECKSUM command's walk (the controller adds its DISPATCH cycle)."""
    b = entry_bytes(entry_bits)
    return words * (2 + lanes * b) + n * (2 + b) + 8 + 1


class WeightChecksum(wiring.Component):
    """Walks a bank of the code and bias memories and returns its CRC-32.

    `start` (one cycle) begins; `active` while it owns the code and bias read ports
    (`code_addr`/`code_data`, `bias_addr`/`bias_data`: synchronous reads, data one cycle after
    the address); `done` pulses with `result` valid (it stays until the next start).
    `updates` and `seed` are the bank's counter and seed, read at the end.
    """

    def __init__(self, *, words: int, lanes: int, entry_bits: int, n: int, word_bits: int, n_bits: int):
        if words < 1 or lanes < 1 or n < 1 or not 1 <= entry_bits <= 32:
            raise ValueError(f"a checksum needs words, lanes, units >= 1 and 1..32-bit entries, not "
                             f"{words!r}, {lanes!r}, {n!r}, {entry_bits!r}")
        self.words, self.lanes, self.entry_bits, self.n = words, lanes, entry_bits, n
        self.bytes = entry_bytes(entry_bits)
        super().__init__({
            "start": In(1), "active": Out(1), "done": Out(1), "result": Out(32),
            "code_addr": Out(word_bits), "code_data": In(lanes * entry_bits),
            "bias_addr": Out(n_bits), "bias_data": In(entry_bits),
            "updates": In(32), "seed": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        D, P, E, N, B = self.words, self.lanes, self.entry_bits, self.n, self.bytes
        crc = Signal(32)
        word = Signal(range(D + 1))
        unit = Signal(range(N + 1))
        lane = Signal(range(P + 1))
        k = Signal(range(max(B, 8) + 1))
        shreg = Signal(P * E)                  # the word's entries, lane 0 in the low bits
        entry = Signal(max(8 * B, 8))          # the entry being fed, byte 0 in the low bits
        tail = Signal(64)                      # t then seed
        m.d.comb += self.code_addr.eq(word), self.bias_addr.eq(unit)

        def feed(value):
            m.d.sync += crc.eq(crc32_next(crc, value))

        # `active` (not IDLE) is a register of its own, set and cleared with the state's moves: it
        # selects the code memory's address (a decode of the state there is a longer path)
        busy = Signal()
        m.d.comb += self.active.eq(busy)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [crc.eq(CRC32_INIT), word.eq(0), unit.eq(0), busy.eq(1)]
                    m.next = "READ_WORD"
            with m.State("READ_WORD"):                      # code_addr = word
                m.next = "LOAD_WORD"
            with m.State("LOAD_WORD"):
                m.d.sync += [shreg.eq(self.code_data >> E if P > 1 else 0), entry.eq(self.code_data[:E]),
                             lane.eq(0), k.eq(0)]
                m.next = "WORD_BYTES"
            with m.State("WORD_BYTES"):
                feed(entry[:8])
                m.d.sync += [entry.eq(entry >> 8), k.eq(k + 1)]
                with m.If(k == B - 1):
                    m.d.sync += [k.eq(0), entry.eq(shreg[:E]), shreg.eq(shreg >> E), lane.eq(lane + 1)]
                    with m.If(lane == P - 1):
                        m.d.sync += word.eq(word + 1)
                        with m.If(word == D - 1):
                            m.next = "READ_BIAS"
                        with m.Else():
                            m.next = "READ_WORD"
            with m.State("READ_BIAS"):                      # bias_addr = unit
                m.next = "LOAD_BIAS"
            with m.State("LOAD_BIAS"):
                m.d.sync += [entry.eq(self.bias_data), k.eq(0)]
                m.next = "BIAS_BYTES"
            with m.State("BIAS_BYTES"):
                feed(entry[:8])
                m.d.sync += [entry.eq(entry >> 8), k.eq(k + 1)]
                with m.If(k == B - 1):
                    m.d.sync += [k.eq(0), unit.eq(unit + 1)]
                    with m.If(unit == N - 1):
                        m.d.sync += tail.eq(Cat(self.updates, self.seed))
                        m.next = "TAIL"
                    with m.Else():
                        m.next = "READ_BIAS"
            with m.State("TAIL"):
                feed(tail[:8])
                m.d.sync += [tail.eq(tail >> 8), k.eq(k + 1)]
                with m.If(k == 7):
                    m.d.sync += self.result.eq(crc32_next(crc, tail[:8]) ^ CRC32_INIT)
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.d.sync += busy.eq(0)
                m.next = "IDLE"
        return m
