"""Threefry-2x32 counter-based random number generators (docs/numerics.md, section 5).

Bit-exact with `memprop.model.rng.threefry2x32` (Salmon et al., SC 2011; Random123 known-answer
vectors in tests/rtl/test_threefry.py). Add-rotate-xor only: no multiplier. Two datapaths
share one operation schedule (`threefry_schedule`) and one stream interface:

* `Threefry2x32`, **iterative**: one operation per clock cycle on one pair of registers, one
  result every 18 cycles (13 rounds). Small: for the iCE40.
* `Threefry2x32Pipeline`, **pipelined**: one register stage per operation, one result per
  clock cycle, latency 17 (13 rounds). The rotations are wiring, each stage one 32-bit adder
  and an xor (a key injection: two adders). About ten times the iterative unit's area: for
  learning units that need a draw per lane and cycle.

The operations are

* a *round* ``x0 <- x0 + x1; x1 <- rotl(x1, R[r % 8]) ^ (x0 + x1)``;
* a *key injection* ``x0 <- x0 + ks[j % 3]; x1 <- x1 + ks[(j + 1) % 3] + j`` before the first
  round (j = 0) and after every fourth round (17 operations for 13 rounds).

Both units carry an optional *tag* (``tag_bits``) from the request to its result, so a
consumer that requests for several lanes can route each result without bookkeeping.

Iterative unit, cycle timing (see `Threefry2x32.latency`): the input is registered at the clock
edge where it is transferred, the operations run on the following edges, and ``o.valid`` rises
with the last one. ``i.ready`` is high only while the unit is idle (no computation running and
no result waiting, or the waiting result being taken in this same cycle), so one request is in
flight at a time. Area (yosys, Threefry alone): iCE40 562 SB_LUT4 + 64 SB_CARRY + 167
flip-flops; ECP5 671 LUT4 + 35 CCU2C + 167 TRELLIS_FF (``-nodsp``). About a third of the LUTs
is the 8-way rotation multiplexer.

(No ``from __future__ import annotations`` here: `wiring.Component` reads the port
annotations as objects.)
"""


from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from memprop.model.rng import CALL_BITS, DRAW_BITS, PARITY, ROTATIONS, ROUNDS

__all__ = [
    "INPUT_LAYOUT", "LATENCY", "OUTPUT_LAYOUT", "PIPELINE_LATENCY", "RAND_KEY1", "Threefry2x32",
    "Threefry2x32Pipeline", "call_request", "input_layout", "output_layout", "threefry_schedule",
    "rand_request", "rand_request_ints",
]


def input_layout(tag_bits: int = 0) -> data.StructLayout:
    """Counter (c0, c1) and key (k0, k1), packed LSB first in this order, then the tag if any."""
    fields = {"c0": 32, "c1": 32, "k0": 32, "k1": 32}
    return data.StructLayout({**fields, "tag": tag_bits} if tag_bits else fields)


def output_layout(tag_bits: int = 0) -> data.StructLayout:
    """The two output words, then the request's tag if any."""
    fields = {"x0": 32, "x1": 32}
    return data.StructLayout({**fields, "tag": tag_bits} if tag_bits else fields)


#: Payload of the input stream without a tag.
INPUT_LAYOUT = input_layout()
#: Payload of the output stream without a tag.
OUTPUT_LAYOUT = output_layout()
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
#: `Threefry2x32Pipeline.latency` of the 13-round unit (its initiation interval is 1).
PIPELINE_LATENCY = len(threefry_schedule(ROUNDS))


def _check_rounds(rounds) -> None:
    if not isinstance(rounds, int) or isinstance(rounds, bool):
        raise TypeError(f"rounds must be an integer, not {rounds!r}")
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds!r}")


def _check_tag_bits(tag_bits) -> None:
    if not isinstance(tag_bits, int) or isinstance(tag_bits, bool) or tag_bits < 0:
        raise ValueError(f"tag_bits must be a non-negative integer, not {tag_bits!r}")


class _ThreefryUnit(wiring.Component):
    """What both Threefry units share: the round schedule and the request/result streams."""

    def __init__(self, rounds: int = ROUNDS, tag_bits: int = 0):
        _check_rounds(rounds)
        _check_tag_bits(tag_bits)
        self._rounds = rounds
        self._schedule = threefry_schedule(rounds)
        self.tag_bits = tag_bits
        super().__init__({"i": In(stream.Signature(input_layout(tag_bits))),
                          "o": Out(stream.Signature(output_layout(tag_bits)))})

    @property
    def rounds(self) -> int:
        return self._rounds


class Threefry2x32(_ThreefryUnit):
    """Threefry-2x32 with `rounds` rounds, one operation per clock cycle.

    Parameters
    ----------
    rounds : int
        Number of rounds (13 in memprop, 20 in Random123's default); at least 1.
    tag_bits : int
        Width of a tag carried from the request to its result (0: none).

    Members
    -------
    i : ``In(stream.Signature(input_layout(tag_bits)))``
        Counter and key. Accepted only while idle.
    o : ``Out(stream.Signature(output_layout(tag_bits)))``
        The two output words; held until transferred.
    """

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
            if self.tag_bits:
                m.d.sync += self.o.payload.tag.eq(p.tag)
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


class Threefry2x32Pipeline(_ThreefryUnit):
    """Threefry-2x32 with one register stage per operation: one result per clock cycle.

    Parameters
    ----------
    rounds : int
        Number of rounds; at least 1.
    tag_bits : int
        Width of a tag carried from the request to its result (0: none).
    static_key : bool
        If true, the key is not carried down the pipeline: every stage reads ``i.payload.k0``
        and ``k1`` directly, which must then stay constant while requests are in flight (a
        learning unit's seed does during LEARN). Saves 96 flip-flops per stage.

    Members
    -------
    i, o : streams as `Threefry2x32`. The pipeline stalls as a whole while a result waits
        (``o.valid & ~o.ready``); with ``o.ready`` high it accepts one request per cycle and
        delivers it `latency` edges later.
    """

    def __init__(self, rounds: int = ROUNDS, tag_bits: int = 0, static_key: bool = False):
        self.static_key = bool(static_key)
        super().__init__(rounds, tag_bits)

    @property
    def steps(self) -> int:
        """Pipeline stages: rounds plus key injections (17 for 13 rounds)."""
        return len(self._schedule)

    @property
    def latency(self) -> int:
        """Clock edges from the input transfer to the output transfer when ``o.ready`` is high
        (17 for 13 rounds). The initiation interval is 1."""
        return self.steps

    def elaborate(self, platform):
        m = Module()
        p = self.i.payload
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]

        def key_schedule(k0, k1):
            return [k0, k1, k0 ^ k1 ^ PARITY]

        # stage inputs: (valid, x0, x1, ks, tag) of the previous stage (or the request)
        valid, x0, x1, tag = self.i.valid, p.c0, p.c1, (p.tag if self.tag_bits else None)
        ks = key_schedule(p.k0, p.k1)
        static_ks = ks
        for n, (kind, idx) in enumerate(self._schedule):
            if kind == "inject":
                keys = static_ks if self.static_key else ks
                n0 = Value.cast(x0 + keys[idx % 3])[:32]
                n1 = Value.cast(x1 + keys[(idx + 1) % 3] + idx)[:32]
            else:
                n0 = Value.cast(x0 + x1)[:32]
                n1 = Value.cast(x1).rotate_left(ROTATIONS[idx % len(ROTATIONS)]) ^ n0
            # only the valid bits are reset: the data registers mean nothing until valid (a reset
            # net reaching every stage's 64 data bits was a ULX3S build's longest path, 15.8 ns)
            r_valid = Signal(name=f"s{n}_valid")
            r0, r1 = Signal(32, name=f"s{n}_x0", reset_less=True), Signal(32, name=f"s{n}_x1", reset_less=True)
            with m.If(advance):
                m.d.sync += [r_valid.eq(valid), r0.eq(n0), r1.eq(n1)]
            if tag is not None:
                r_tag = Signal(self.tag_bits, name=f"s{n}_tag", reset_less=True)
                with m.If(advance):
                    m.d.sync += r_tag.eq(tag)
                tag = r_tag
            if not self.static_key and any(k == "inject" for k, _ in self._schedule[n + 1:]):
                r_ks = [Signal(32, name=f"s{n}_ks{j}", reset_less=True) for j in range(3)]
                with m.If(advance):
                    m.d.sync += [r.eq(k) for r, k in zip(r_ks, ks)]
                ks = r_ks
            valid, x0, x1 = r_valid, r0, r1
        m.d.comb += [self.o.valid.eq(valid), self.o.payload.x0.eq(x0), self.o.payload.x1.eq(x1)]
        if tag is not None:
            m.d.comb += self.o.payload.tag.eq(tag)
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


def call_request(seed, t, s, k) -> Value:
    """The 128-bit input payload (no tag) of Threefry call k of synapse s in update t.

    docs/numerics.md section 5 (as `memprop.model.rng.rand`): counter ``(t, (s << 5) + k)`` and
    key ``(seed, 0x6D656D70)``, words truncated to 32 bits. The call's output words x0 and x1
    are the draws ``rand(t, s, 2k)`` and ``rand(t, s, 2k + 1)``. `k` < 32 is at most 5 bits
    wide, so ``(s << 5) + k`` is a plain concatenation (no adder).
    """
    if isinstance(k, int):
        if not 0 <= k < (1 << CALL_BITS):
            raise ValueError(f"call index k must be in [0, {1 << CALL_BITS}), not {k!r}")
    elif len(Value.cast(k)) > CALL_BITS:
        raise ValueError(f"call index k must be at most {CALL_BITS} bits wide, "
                         f"not {Value.cast(k).shape()!r}")
    c1 = Cat(_word(k, CALL_BITS, "k"), _word(s, 32 - CALL_BITS, "s"))
    payload = Cat(_word(t, 32, "t"), c1, _word(seed, 32, "seed"), Const(RAND_KEY1, 32))
    assert len(payload) == INPUT_LAYOUT.size
    return payload


def rand_request(seed, t, s, d) -> Value:
    """The 128-bit input payload of the call that holds the draw ``rand(seed, t, s, d)``.

    The draw is output word ``d & 1`` (x0 for even d, x1 for odd d) of that call. `d` is an
    int in [0, 64) or an unsigned value at most 6 bits wide.
    """
    if isinstance(d, int):
        if not 0 <= d < (1 << DRAW_BITS):
            raise ValueError(f"draw index d must be in [0, {1 << DRAW_BITS}), not {d!r}")
        return call_request(seed, t, s, d >> 1)
    if len(Value.cast(d)) > DRAW_BITS:
        raise ValueError(f"draw index d must be at most {DRAW_BITS} bits wide, "
                         f"not {Value.cast(d).shape()!r}")
    return call_request(seed, t, s, Value.cast(d)[1:DRAW_BITS])


def rand_request_ints(seed: int, t: int, s: int, d: int) -> dict[str, int]:
    """The input payload fields of the call holding ``rand(seed, t, s, d)`` as ints (for
    testbenches); the draw is output word ``d & 1``."""
    if not 0 <= d < (1 << DRAW_BITS):
        raise ValueError(f"draw index d must be in [0, {1 << DRAW_BITS}), not {d!r}")
    return {"c0": t & 0xFFFFFFFF, "c1": ((s << CALL_BITS) + (d >> 1)) & 0xFFFFFFFF,
            "k0": seed & 0xFFFFFFFF, "k1": RAND_KEY1}
