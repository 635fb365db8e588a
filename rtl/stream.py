"""Synapse stream and address generation: which (row, column) each lane of a word holds.

The stream is `Schedule.stream` (schedule.py), one word of P entries per clock. Two back
ends produce the same entries, registered one cycle after the request like a block-RAM read:

- **counters** (dense, band and layered masks): each row's columns form one range
  [max(0, i - b), min(N - 1, i + b)] (b = N - 1 - K; dense: b = N - 1) without the diagonal
  unless self-connections are on; a layered row (a free unit of layer k) has two, the layer
  below and the layer above, so its column is the below layer's start + t, plus the own
  layer's size once t passes the layer below. Each lane's own (row, index) counter decodes
  its entry with a few comparators. No memory at all: for N = 100 dense at P = 4 the index
  table would take 22 iCE40 block RAMs, for the 64-100-10 digits classifier 17.
- **rom** (any mask, and the folded layout of `hw.fold`): the per-entry table of valid, last, column
  and the precomputed row-select and twin flags.

`addr` is the word index a memory must read in the same cycle so that its data lines up with
the entries (the ROM back end reads its table with it). The engine's code memory does not use
it: in a relaxation step the controller's issue counter is the same word, from a register.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .ports import StreamPort
from .schedule import Schedule, ceil_log2

BACKENDS = ("counters", "rom")


def default_backend(schedule: Schedule) -> str:
    """Counters: every mask memprop has is a band or adjacent layers (the ROM is the reference);
    a folded stream's aligned layout (schedule.py) is a table."""
    return "rom" if schedule.fold else "counters"


class StreamGenerator(wiring.Component):
    """`port`: restart / advance in, entries out; `addr`: the word being read this cycle."""

    def __init__(self, schedule: Schedule, backend: str | None = None):
        backend = backend or default_backend(schedule)
        if backend not in BACKENDS:
            raise ValueError(f"stream backend must be one of {BACKENDS}, not {backend!r}")
        if backend == "counters" and schedule.fold:
            raise ValueError("the counters back end streams unfolded rows; a folded stream (hw.fold) needs 'rom'")
        self.schedule = schedule
        self.backend = backend
        self.lanes = schedule.lanes
        self.n_bits = max(ceil_log2(schedule.n), 1)
        self.word_bits = max(ceil_log2(schedule.depth), 1)
        super().__init__({"port": In(StreamPort(self.lanes, self.n_bits)), "addr": Out(self.word_bits)})

    def elaborate(self, platform):
        m = Module()
        port = self.port
        # the word address: 0 on restart, the next word on advance, else the presented one
        # (word + 1 is kept in a register: the incrementer's carry chain stays off the path from the
        # controls to the code memory's address, which is the iCE40's longest after the learner's)
        word, word_next = Signal(self.word_bits), Signal(self.word_bits, init=1)
        with m.If(port.restart):
            m.d.sync += [word.eq(0), word_next.eq(1)]
        with m.Elif(port.advance):
            m.d.sync += [word.eq(word_next), word_next.eq(word_next + 1)]
        m.d.comb += self.addr.eq(Mux(port.restart, 0, Mux(port.advance, word_next, word)))
        if self.backend == "rom":
            self._rom(m)
        else:
            self._counters(m)
        return m

    # -- a table of (valid, last, col, tail, above, diag) per entry; rows from a count of row ends --
    def _rom(self, m: Module) -> None:
        """The flags are precomputed (tail: the entry is in the row after lane 0's), so an entry
        is its table bits and one multiplexer: no prefix over the lanes or compare behind the
        block RAM's output (the folded ULX3S design streams from this table)."""
        sch, P, nb, port = self.schedule, self.lanes, self.n_bits, self.port
        st = sch.stream
        fields = nb + 5
        init = []
        for w in range(sch.depth):
            word = 0
            for lane in range(P):
                k = w * P + lane
                valid, row, c = bool(st["valid"][k]), int(st["row"][k]), int(st["col"][k])
                flags = (int(valid) | (int(st["last"][k]) << 1) | (int(row != st["row"][w * P]) << 2)
                         | (int(valid and c > row) << 3) | (int(valid and c == row) << 4))
                word |= (flags | (c << 5)) << (lane * fields)
            init.append(word)
        m.submodules.rom = rom = memory.Memory(shape=unsigned(P * fields), depth=max(len(init), 1),
                                               init=init or [0])
        rd = rom.read_port()
        m.d.comb += rd.addr.eq(self.addr)
        # row of lane 0 of the presented word (and the next row): the first row, plus one per row
        # end passed
        first_row = int(sch.rows[0])
        row0, row1 = Signal(nb, init=first_row), Signal(nb + 1, init=first_row + 1)
        ends = Signal()
        with m.If(port.restart):
            m.d.sync += [row0.eq(first_row), row1.eq(first_row + 1)]
        with m.Elif(port.advance & ends):
            m.d.sync += [row0.eq(row1), row1.eq(row1 + 1)]
        for lane in range(P):
            e = port.entries[lane]
            base = lane * fields
            bit = lambda k: rd.data[base + k]
            m.d.comb += [e.valid.eq(bit(0)), e.last.eq(bit(1)), e.row.eq(Mux(bit(2), row1, row0)),
                         e.above.eq(bit(3)), e.diag.eq(bit(4)), e.col.eq(rd.data[base + 5: base + fields])]
        m.d.comb += ends.eq(Cat(*(rd.data[k * fields + 1] for k in range(P))).any())

    # -- dense / band: a (row, offset) pointer and per-lane decoding ---------------------------------
    def _counters(self, m: Module) -> None:
        sch, P, nb, port = self.schedule, self.lanes, self.n_bits, self.port
        net = sch.cfg.network
        n = net.n
        layered = net.layered
        b = n - 1 - net.band                     # half-width of the band (dense: n - 1)
        no_self = 0 if net.self_connections or layered else 1
        count_bits = max((n + P).bit_length(), 1)
        first_row = int(sch.rows[0])             # layered: the first hidden unit (inputs are clamped)
        layer_rows = _layer_rows(net.layers, P) if layered else []

        def row_shape(r):
            """(lo, count, length, split, skip) of row r: first column, real entries, streamed
            entries; entry t >= split is at column lo + t + skip (layered: past the own layer)."""
            if layered:               # per layer constants, chosen by comparing r with the layer starts
                lo, cnt, length, split, skip = (Const(v, count_bits + 1) for v in layer_rows[0][1:])
                for start, *values in layer_rows[1:]:
                    above = r >= start
                    lo, cnt, length, split, skip = (Mux(above, v, old)
                                                    for v, old in zip(values, (lo, cnt, length, split, skip)))
                return lo, cnt, length, split, skip
            if b >= n - 1:            # dense: every row has the same range (short logic paths)
                cnt = n - no_self
                return Const(0, 1), Const(cnt, count_bits), Const(max(cnt, P), count_bits), None, None
            lo = Signal(nb + 1, name=None)
            hi = Signal(nb + 1, name=None)
            cnt = Signal(count_bits)
            length = Signal(count_bits)
            m.d.comb += [lo.eq(Mux(r > b, r - b, 0)), hi.eq(Mux(r + b < n - 1, r + b, n - 1)),
                         cnt.eq(hi - lo + 1 - no_self), length.eq(Mux(cnt < P, P, cnt))]
            return lo, cnt, length, None, None

        def shape_of(r: int):
            """row_shape's length in Python, for the constant start of the stream."""
            if layered:
                return next(v[3] for v in reversed(layer_rows) if r >= v[0])
            cnt = min(n - 1, r + b) - max(0, r - b) + 1 - no_self
            return max(cnt, P)

        # Every lane counts its own place in the stream: (row, t), the row its entry of the next
        # word falls in and the entry's index in that row. A word moves every lane P entries on,
        # into the next row at most (a row streams at least P entries). The entries are decoded
        # from these registers alone and restart / advance only pick between that decode and the
        # constant word 0 at the flip-flops: the lanes' adder chains start at a register, not at
        # the controller (at P = 32 that chain was the design's critical path).
        len_first = shape_of(first_row)
        for lane in range(P):
            e = port.entries[lane]
            start_row, start_t = ((first_row, lane + P) if lane + P < len_first
                                  else (first_row + 1, lane + P - len_first))
            row = Signal(nb + 1, name=f"row{lane}", init=start_row)
            t = Signal(count_bits, name=f"t{lane}", init=start_t)

            def decode(r, t_, tag):
                lo, cnt, length, split, skip = row_shape(r)
                col = Signal(nb + 2, name=f"{tag}_col{lane}")
                m.d.comb += col.eq(lo + t_ if split is None else lo + t_ + Mux(t_ >= split, skip, 0))
                # col > row and col = row from compares the decode has anyway: past the layer below
                # (layered), past the diagonal (skipped); with self-connections, two compares
                if split is not None:
                    above, diag = t_ >= split, Const(0, 1)
                elif no_self:           # skip the diagonal: col and col + 1 side by side, then choose
                    col_up = Signal(nb + 2, name=f"{tag}_col_up{lane}")
                    m.d.comb += col_up.eq(lo + t_ + 1)
                    above, diag = col >= r, Const(0, 1)
                    col = Mux(above, col_up, col)
                else:
                    above, diag = col > r, col == r
                past = r >= n                               # padding after the last row
                valid = ~past & (t_ < cnt)
                return (valid, ~past & (t_ == length - 1), Mux(valid, col, 0), Mux(past, n - 1, r),
                        valid & above, valid & diag, length)

            *now, length = decode(row, t, "go")
            *first, _ = decode(Const(first_row, nb + 1), Const(lane, count_bits), "first")
            # t + P passes the row's end when t >= length - P; the index in the next row, t + P -
            # length, is then t - (length - P): the compare and both sums side by side, from
            # registers and constants (t + P, then the compare, then the difference, in series,
            # were a path of five levels through every lane)
            rest = length - P                   # >= 0: a row streams at least P entries
            over = Signal(count_bits + 1, name=f"over{lane}")
            m.d.comb += over.eq(t - rest)
            wrap = t >= rest
            with m.If(port.restart):
                m.d.sync += [row.eq(start_row), t.eq(start_t)]
            with m.Elif(port.advance):
                m.d.sync += [row.eq(Mux(wrap, row + 1, row)), t.eq(Mux(wrap, over, t + P))]
            with m.If(port.restart | port.advance):
                for field, from_now, from_first in zip((e.valid, e.last, e.col, e.row, e.above, e.diag), now, first):
                    m.d.sync += field.eq(Mux(port.restart, from_first, from_now))


def _layer_rows(layers: tuple[int, ...], lanes: int) -> list[tuple[int, int, int, int, int, int]]:
    """Per free layer k >= 1: (first row, lo, count, length, split, skip) of its rows' columns:
    the layer below ([lo, lo + split)), then the layer above (after skipping the own layer)."""
    starts = [sum(layers[:k]) for k in range(len(layers) + 1)]
    out = []
    for k in range(1, len(layers)):
        below, above = layers[k - 1], layers[k + 1] if k + 1 < len(layers) else 0
        cnt = below + above
        out.append((starts[k], starts[k - 1], cnt, max(cnt, lanes), below, layers[k]))
    return out
