"""Threefry-2x32 counter-based random number generator (docs/numerics.md, section 5).

Bit-exact with `memprop.model.rng.threefry2x32` (Salmon et al., SC 2011; Random123 known-answer
vectors in tests/rtl/test_threefry.py). Add-rotate-xor only: no multiplier.

Iterative datapath, one operation per clock cycle:

* a *round* ``x0 <- x0 + x1; x1 <- rotl(x1, R[r % 8]) ^ (x0 + x1)``: the x0 adder, an xor
  and a rotation multiplexer (8 fixed rotations);
* a *key injection* ``x0 <- x0 + ks[j % 3]; x1 <- x1 + ks[(j + 1) % 3] + j`` before the first
  round (j = 0) and after every fourth round. The x0 injection reuses the round adder (its
  second operand is a 2:1 multiplexer); the x1 injection has its own adder. The key schedule
  sits in three registers that rotate by one place at every injection, so it needs no
  multiplexer.

The schedule for ``rounds`` rounds has ``rounds + rounds // 4 + 1`` operations (17 for 13).
Cycle timing (see `Threefry2x32.latency`): the input is registered at the clock edge where it
is transferred, the operations run on the following edges, and ``o.valid`` rises with the last
one. ``i.ready`` is high only while the unit is idle (no computation running and no result
waiting, or the waiting result being taken in this same cycle), so one request is in flight at
a time and a new one can be accepted at the edge where the previous result is transferred.
With 13 rounds: `LATENCY` = 18 cycles from input transfer to output transfer, one result
every 18 cycles back to back.

Area (yosys, Threefry alone): iCE40 562 SB_LUT4 + 64 SB_CARRY + 167 flip-flops; ECP5
671 LUT4 + 35 CCU2C + 167 TRELLIS_FF (``-nodsp``). About a third of the LUTs is the 8-way
rotation multiplexer.

(No ``from __future__ import annotations`` here: `wiring.Component` reads the port
annotations as objects.)
"""


from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from memprop.model.rng import DRAW_BITS, PARITY, ROTATIONS, ROUNDS

__all__ = [
    "INPUT_LAYOUT", "LATENCY", "OUTPUT_LAYOUT", "RAND_KEY1", "Threefry2x32", "threefry_schedule",
    "rand_request", "rand_request_ints",
]

#: Payload of the input stream: counter (c0, c1) and key (k0, k1), packed LSB first in this order.
INPUT_LAYOUT = data.StructLayout({"c0": 32, "c1": 32, "k0": 32, "k1": 32})
#: Payload of the output stream: the two output words.
OUTPUT_LAYOUT = data.StructLayout({"x0": 32, "x1": 32})
#: Second key word of every `rand()` draw: ASCII "memp" (docs/numerics.md, section 5).
RAND_KEY1 = 0x6D656D70


def threefry_schedule(rounds: int) -> list[tuple[str, int]]:
    """The operation sequence of Threefry-2x32 with `rounds` rounds.

    Each entry is ``("inject", j)`` (key injection j) or ``("round", r)`` (round r); the RTL
    executes one entry per clock cycle.
    """
    ops: list[tuple[str, int]] = [("inject", 0)]
    for r in range(rounds):
        ops.append(("round", r))
        if r % 4 == 3:
            ops.append(("inject", r // 4 + 1))
    return ops


#: `Threefry2x32.latency` of the 13-round unit: clock edges from input transfer to output
#: transfer (and the initiation interval), without elaborating one.
LATENCY = len(threefry_schedule(ROUNDS)) + 1


class Threefry2x32(wiring.Component):
    """Threefry-2x32 with `rounds` rounds, one operation per clock cycle.

    Parameters
    ----------
    rounds : int
        Number of rounds (13 in memprop, 20 in Random123's default); at least 1.

    Members
    -------
    i : ``In(stream.Signature(INPUT_LAYOUT))``
        Counter and key. Accepted only while idle.
    o : ``Out(stream.Signature(OUTPUT_LAYOUT))``
        The two output words; held until transferred.
    """

    i: In(stream.Signature(INPUT_LAYOUT))
    o: Out(stream.Signature(OUTPUT_LAYOUT))

    def __init__(self, rounds: int = ROUNDS):
        if not isinstance(rounds, int) or isinstance(rounds, bool):
            raise TypeError(f"rounds must be an integer, not {rounds!r}")
        if rounds < 1:
            raise ValueError(f"rounds must be at least 1, not {rounds!r}")
        self._rounds = rounds
        self._schedule = threefry_schedule(rounds)
        super().__init__()

    @property
    def rounds(self) -> int:
        return self._rounds

    @property
    def steps(self) -> int:
        """Clock cycles of computation: rounds plus key injections (17 for 13 rounds)."""
        return len(self._schedule)

    @property
    def latency(self) -> int:
        """Clock edges from the input transfer to the output transfer when ``o.ready`` is high.

        If the input is transferred at clock edge n (``i.valid & i.ready`` sampled high),
        ``o.valid`` is high after edge ``n + latency - 1`` and the result is transferred at edge
        ``n + latency``, which can also transfer the next input. So this is also the initiation
        interval: one result every `latency` cycles (18 for 13 rounds).
        """
        return self.steps + 1

    def elaborate(self, platform):
        m = Module()

        schedule = self._schedule
        x0 = Signal(32)
        x1 = Signal(32)
        ks = [Signal(32, name=f"ks{n}") for n in range(3)]
        step = Signal(range(len(schedule)))
        busy = Signal()
        max_inject = max(j for kind, j in schedule if kind == "inject")

        # Decode of the current operation (a small ROM indexed by `step`).
        is_inject = Signal()
        inject_index = Signal(range(max_inject + 1))
        rot_sel = Signal(range(len(ROTATIONS)))
        last = Signal()
        with m.Switch(step):
            for n, (kind, idx) in enumerate(schedule):
                with m.Case(n):
                    if kind == "inject":
                        m.d.comb += [is_inject.eq(1), inject_index.eq(idx)]
                    else:
                        m.d.comb += rot_sel.eq(idx % len(ROTATIONS))
                    if n == len(schedule) - 1:
                        m.d.comb += last.eq(1)

        # Datapath: one shared x0 adder, the x1 injection adder, xor and a rotation multiplexer.
        sum0 = Signal(32)
        m.d.comb += sum0.eq(x0 + Mux(is_inject, ks[0], x1))
        x1_rot = Signal(32)
        with m.Switch(rot_sel):
            for n, amount in enumerate(ROTATIONS):
                with m.Case(n):
                    m.d.comb += x1_rot.eq(x1.rotate_left(amount))
        x1_inject = Signal(32)
        m.d.comb += x1_inject.eq(x1 + ks[1] + inject_index)

        # Handshake: `accept` may coincide with the transfer of the previous result.
        accept = Signal()
        m.d.comb += [
            self.o.payload.x0.eq(x0),
            self.o.payload.x1.eq(x1),
            self.i.ready.eq(~busy & (~self.o.valid | self.o.ready)),
            accept.eq(self.i.valid & self.i.ready),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.If(accept):
            p = self.i.payload
            m.d.sync += [
                x0.eq(p.c0),
                x1.eq(p.c1),
                ks[0].eq(p.k0),
                ks[1].eq(p.k1),
                ks[2].eq(p.k0 ^ p.k1 ^ PARITY),
                step.eq(0),
                busy.eq(1),
            ]
        with m.Elif(busy):
            m.d.sync += x0.eq(sum0)
            with m.If(is_inject):
                m.d.sync += [
                    x1.eq(x1_inject),
                    ks[0].eq(ks[1]),
                    ks[1].eq(ks[2]),
                    ks[2].eq(ks[0]),
                ]
            with m.Else():
                m.d.sync += x1.eq(x1_rot ^ sum0)
            with m.If(last):
                m.d.sync += [busy.eq(0), self.o.valid.eq(1)]
            with m.Else():
                m.d.sync += step.eq(step + 1)

        return m


def _word(x, width: int, name: str) -> Value:
    """`x` (a non-negative int or an unsigned value) as exactly `width` bits: zero-extended or
    truncated, like the model's ``& 0xFFFFFFFF``."""
    if isinstance(x, int):
        if x < 0:
            raise ValueError(f"{name} must be non-negative, not {x!r}")
        return Const(x & ((1 << width) - 1), width)
    v = Value.cast(x)
    if v.shape().signed:
        raise TypeError(f"{name} must be an unsigned value, not {v.shape()!r}")
    if len(v) >= width:
        return v[:width]
    return Cat(v, Const(0, width - len(v)))


def rand_request(seed, t, s, d) -> Value:
    """The 128-bit `Threefry2x32` input payload of the draw ``rand(seed, t, s, d)``.

    Wiring of docs/numerics.md section 5 (as `memprop.model.rng.rand`): counter
    ``(t, (s << 6) + d)`` and key ``(seed, 0x6D656D70)``, words truncated to 32 bits. `seed`,
    `t`, `s`, `d` are unsigned Amaranth values or non-negative ints; `d` is the draw index,
    at most 6 bits wide (``d < 64``), so ``(s << 6) + d`` is a plain concatenation (no adder).
    Use as ``m.d.comb += rng.i.payload.eq(rand_request(seed, t, s, d))``; the draw is
    ``rng.o.payload.x0``.
    """
    if isinstance(d, int):
        if not 0 <= d < (1 << DRAW_BITS):
            raise ValueError(f"draw index d must be in [0, {1 << DRAW_BITS}), not {d!r}")
    elif len(Value.cast(d)) > DRAW_BITS:
        raise ValueError(f"draw index d must be at most {DRAW_BITS} bits wide, "
                         f"not {Value.cast(d).shape()!r}")
    c1 = Cat(_word(d, DRAW_BITS, "d"), _word(s, 32 - DRAW_BITS, "s"))
    payload = Cat(_word(t, 32, "t"), c1, _word(seed, 32, "seed"), Const(RAND_KEY1, 32))
    assert len(payload) == INPUT_LAYOUT.size
    return payload


def rand_request_ints(seed: int, t: int, s: int, d: int) -> dict[str, int]:
    """The input payload fields of ``rand(seed, t, s, d)`` as ints (for testbenches)."""
    if not 0 <= d < (1 << DRAW_BITS):
        raise ValueError(f"draw index d must be in [0, {1 << DRAW_BITS}), not {d!r}")
    return {"c0": t & 0xFFFFFFFF, "c1": ((s << DRAW_BITS) + d) & 0xFFFFFFFF,
            "k0": seed & 0xFFFFFFFF, "k1": RAND_KEY1}
