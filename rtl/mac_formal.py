"""Formal properties of the MAC array (rtl/mac.py) and the harnesses that prove them.

A shadow of the MAC's running row sum is kept at a width the sum can never reach (acc_bits +
SHADOW_EXTRA), fed from the same block stream. The harness streams any blocks the synapse
schedule (rtl/schedule.py) can produce: operands within the spec's ranges (|w| <= Wmax,
|a| <= Amax), at most one row end per block, at most `degree_max` real synapses per row, and
`start` (clear) only on an empty pipeline, as the controller does. Then the accumulator must
equal its shadow: the width of numerics.md section 6 is enough and nothing wraps.

`MacFoldProof` adds the fold's column path (`units` > 0): any twin flags, blocks and row
activations the folded schedule can produce, and per unit a shadow column sum (again wider) of
every twin product for it since `start`; the column sum read back after each row must equal
its unit's, and a unit's row part plus column part stays within degree_max Wmax Amax.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Array, Cat, Const, Elaboratable, Module, Mux, ResetSignal, Signal, signed
from amaranth.asserts import AnySeq

from memprop.model.config import Config
from memprop.model.numerics import bitlen_signed

from .formal import Properties, attach, past
from .mac import MacArray
from .schedule import Schedule, formats

__all__ = ["MacFoldProof", "MacProof", "SHADOW_EXTRA"]

#: Extra bits of the shadow sum over the accumulator: far more than any row can add.
SHADOW_EXTRA = 8


def _chain(m: Module, value, name: str, n: int) -> list[Signal]:
    """`value` delayed by 1 ... n cycles (element d - 1 is d cycles ago)."""
    out = []
    for d in range(n):
        value = past(m, value, f"{name}_d{d + 1}")
        out.append(value)
    return out


class MacProof(Elaboratable):
    """`MacArray(P, w_bits, a_bits, acc_bits)` as the engine instantiates it for `cfg`.

    `acc_bits` may be given to build a deliberately narrow accumulator (a broken design).
    """

    def __init__(self, props: Properties, cfg: Config, *, acc_bits: int | None = None):
        self.props, self.cfg = props, cfg
        self.fmt = formats(cfg)
        f = self.fmt
        self.lanes = cfg.hw.lanes
        self.w_bits = bitlen_signed(f.w_max)
        self.a_bits = bitlen_signed(f.a_max)
        self.acc_bits = f.acc_bits if acc_bits is None else acc_bits

    def _dut(self) -> MacArray:
        return MacArray(self.lanes, self.w_bits, self.a_bits, self.acc_bits)

    def elaborate(self, platform):
        m = Module()
        Properties.assume(m, ~ResetSignal())
        m.submodules.dut = dut = self._dut()
        lemmas = []              # property functions (mac's module, its internals), called by its hook
        row = self._rows(m, dut, lemmas)
        self._more(m, dut, row, lemmas)
        attach(dut, lambda m_mac, mac, internals: [fn(m_mac, internals) for fn in lemmas])
        return m

    def _more(self, m: Module, dut: MacArray, row: SimpleNamespace, lemmas: list) -> None:
        """A subclass's further inputs, properties and lemmas (`row`: the row path's shadow, `_rows`)."""

    def _rows(self, m: Module, dut: MacArray, lemmas: list) -> SimpleNamespace:
        """The row pipeline: free inputs, the shadow row sum, the row properties and covers."""
        props, f, P = self.props, self.fmt, self.lanes
        for port in (dut.start, dut.valid, dut.entry, dut.last):
            m.d.comb += port.eq(AnySeq(port.shape()))
        for lane in range(P):
            m.d.comb += [dut.w[lane].eq(AnySeq(signed(self.w_bits))), dut.a[lane].eq(AnySeq(signed(self.a_bits)))]
            for ok in (dut.w[lane] <= f.w_max, dut.w[lane] >= -f.w_max, dut.a[lane] <= f.a_max,
                       dut.a[lane] >= -f.a_max):
                props.assume(m, ok)

        # the schedule: at most one row end per block
        props.assume(m, sum(dut.last[i] for i in range(P)) <= 1)

        # each block split at its row end, exactly, at the input side ...
        wide = signed(f.acc_bits + SHADOW_EXTRA)
        pmax = f.w_max * f.a_max
        in_head = [Signal(name=f"ref_in_head{i}") for i in range(P)]
        for i in range(P):
            m.d.comb += in_head[i].eq(~dut.last[:i].any() if i else 1)
        prods = [Mux(dut.entry[i], dut.w[i] * dut.a[i], 0) for i in range(P)]
        block = {"head": Signal(wide, name="ref_head"), "tail": Signal(wide, name="ref_tail"),
                 "head_n": Signal(range(P + 1), name="ref_head_n"), "tail_n": Signal(range(P + 1), name="ref_tail_n"),
                 "ends": Signal(name="ref_ends"), "valid": Signal(name="ref_valid")}
        m.d.comb += [block["head"].eq(sum(Mux(in_head[i], prods[i], 0) for i in range(P))),
                     block["tail"].eq(sum(Mux(in_head[i], 0, prods[i]) for i in range(P))),
                     block["head_n"].eq(sum(Mux(in_head[i], dut.entry[i], 0) for i in range(P))),
                     block["tail_n"].eq(sum(Mux(in_head[i], 0, dut.entry[i]) for i in range(P))),
                     block["ends"].eq(dut.last.any()), block["valid"].eq(dut.valid)]
        # ... and summed, in the shadow, when the MAC's last stage sees the block
        for d in range(dut.latency - 1):
            block = {k: past(m, v, f"ref_{k}_d{d + 1}") for k, v in block.items()}
        running = Signal(wide, name="ref_running")                 # the open row's exact sum
        running_n = Signal(range(f.degree_max + 1), name="ref_running_n")   # and its synapses
        # a row has at most degree_max synapses (the premise of the accumulator bound)
        props.assume(m, ~block["valid"] | (running_n + block["head_n"] <= f.degree_max))
        props.assume(m, ~(block["valid"] & block["ends"]) | (block["tail_n"] <= f.degree_max))
        with m.If(dut.start):
            m.d.sync += [running.eq(0), running_n.eq(0)]
        with m.Elif(block["valid"]):
            with m.If(block["ends"]):
                m.d.sync += [running.eq(block["tail"]), running_n.eq(block["tail_n"])]
            with m.Else():
                m.d.sync += [running.eq(running + block["head"]), running_n.eq(running_n + block["head_n"])]
        row_valid = past(m, block["valid"] & block["ends"], "ref_row_valid")
        row_value = past(m, running + block["head"], "ref_row_value")
        props.check(m, "mac.row_sum_exact", (dut.row_valid == row_valid) & (~row_valid | (dut.row_sum == row_value)),
                    f"every row sum leaves the MAC mac_latency(P) cycles after its row's last word and equals a "
                    f"shadow sum {SHADOW_EXTRA} bits wider: the acc_bits accumulator never wraps")
        bound = f.degree_max * pmax
        props.check(m, "mac.row_sum_within_bound",
                    ~dut.row_valid | ((dut.row_sum <= bound) & (dut.row_sum >= -bound)),
                    "|row sum| <= degree_max Wmax Amax (numerics.md section 6)")

        def lemma(m_mac, internals):
            props.check(m_mac, "mac.running_matches_shadow",
                        (internals.running == running) & (running <= running_n * pmax)
                        & (running >= -(running_n * pmax)),
                        "lemma: the accumulator equals the shadow's open row, which its synapse count bounds",
                        lemma=True)

        lemmas.append(lemma)
        props.cover(m, "mac.row_at_bound", dut.row_valid & (dut.row_sum == bound), "a row sum at the positive bound")
        props.cover(m, "mac.row_at_negative_bound", dut.row_valid & (dut.row_sum == -bound),
                    "a row sum at the negative bound")
        if P > 1:
            props.cover(m, "mac.row_end_mid_block", dut.valid & dut.last.any() & ~dut.last[P - 1]
                        & dut.entry[P - 1], "a block that ends one row and starts the next")
        return SimpleNamespace(in_head=in_head, block=block, running=running, running_n=running_n)


class MacFoldProof(MacProof):
    """The folded `MacArray(P, ..., units=N, first_unit=rows[0])` as the engine instantiates it
    for `cfg` with `hw.fold` (N, P, the first row and the formats do not depend on the flag):
    the row pipeline's properties as in `MacProof`, and the column path's.

    The environment is what the folded schedule guarantees (schedule.py, `_aligned_stream`):
    the rows are units first_unit, first_unit + 1, ... (one ends per `last` flag, at most
    N - first_unit of them between two starts); an entry up to and including the lane with
    `last` belongs to the open row r, one after it to row r + 1; a twin is a real synapse
    (`entry`) whose column j = blk P + b (lane b) lies above its row and below N; a unit's row
    part and column part together have at most degree_max synapses; `start` comes first, and
    then only on an empty pipeline (no word in the last mac_latency(P) cycles). Blocks of
    lanes that hold no twin, and activations of the row unit, are free (within +-Amax).
    """

    def __init__(self, props: Properties, cfg: Config, *, acc_bits: int | None = None):
        super().__init__(props, cfg, acc_bits=acc_bits)
        self.units = cfg.network.n
        self.first_unit = int(Schedule(cfg).rows[0])

    def _dut(self) -> MacArray:
        return MacArray(self.lanes, self.w_bits, self.a_bits, self.acc_bits, units=self.units,
                        first_unit=self.first_unit)

    def _more(self, m: Module, dut: MacArray, row: SimpleNamespace, lemmas: list) -> None:
        props, f, P = self.props, self.fmt, self.lanes
        N, first, L = self.units, self.first_unit, dut.latency
        n_rows = N - first
        wide = signed(f.acc_bits + SHADOW_EXTRA)
        pmax = f.w_max * f.a_max
        bound = f.degree_max * pmax
        for b in range(P):
            m.d.comb += [dut.a_row[b].eq(AnySeq(signed(self.a_bits))), dut.blk[b].eq(AnySeq(dut.blk_bits))]
            props.assume(m, (dut.a_row[b] <= f.a_max) & (dut.a_row[b] >= -f.a_max))
        m.d.comb += dut.twin.eq(AnySeq(P))

        # start: first, and then only on an empty pipeline
        started = Signal(name="ref_started")
        m.d.sync += started.eq(started | dut.start)
        props.assume(m, started | dut.start)
        valid_d = _chain(m, dut.valid, "ref_in_valid", L)
        props.assume(m, ~dut.start | ~Cat(*valid_d).any())

        # the rows at the input: a word's head (lanes up to its row end) is row `head_row` since
        # start (unit first + head_row), its tail the next one
        ends = Signal(name="ref_in_ends")
        m.d.comb += ends.eq(dut.valid & dut.last.any())
        row_ends = Signal(range(n_rows + 1), name="ref_row_ends")      # rows ended by the words before
        head_row = Signal(range(n_rows + 1), name="ref_head_row")
        m.d.comb += head_row.eq(Mux(dut.start, 0, row_ends))
        m.d.sync += row_ends.eq(head_row + ends)
        props.assume(m, ~ends | (head_row < n_rows))                     # rows first_unit ... N - 1
        ends_d = _chain(m, ends, "ref_in_ends", L + 1)                  # the row ends along the pipeline
        head_d = _chain(m, head_row, "ref_head_row", L + 1)

        # each lane's twin: its column, and its column product (exact) at the input ...
        col_bits = (1 << dut.blk_bits) * P
        twin, col, cprod, row_of = [], [], [], []
        for b in range(P):
            t = Signal(name=f"ref_twin{b}")
            j = Signal(range(col_bits), name=f"ref_col{b}")
            p = Signal(signed(self.w_bits + self.a_bits), name=f"ref_cprod{b}")
            r = Signal(range(n_rows + 2), name=f"ref_twin_row{b}")       # the entry's row (since start)
            m.d.comb += [t.eq(dut.valid & dut.twin[b]), j.eq(dut.blk[b] * P + b), p.eq(dut.w[b] * dut.a_row[b]),
                         r.eq(head_row + ~row.in_head[b])]
            props.assume(m, ~t | dut.entry[b])                               # a twin is a real synapse
            props.assume(m, ~t | ((j < N) & (j > first + r)))                 # above its row, below N
            twin.append(t), col.append(j), cprod.append(p), row_of.append(r)
        # ... and summed per unit, in the shadow, when the accumulators see them (2 cycles later)
        twin2 = [_chain(m, t, f"ref_twin{b}", 2)[-1] for b, t in enumerate(twin)]
        col2 = [_chain(m, j, f"ref_col{b}", 2)[-1] for b, j in enumerate(col)]
        cprod2 = [_chain(m, p, f"ref_cprod{b}", 2)[-1] for b, p in enumerate(cprod)]
        col_sum = [Signal(wide, name=f"ref_col_sum{u}") for u in range(N)]          # unit u's column part
        col_n = [Signal(range(f.degree_max + 1), name=f"ref_col_n{u}") for u in range(N)]   # and its terms
        for u in range(N):
            hits = [Signal(name=f"ref_col_hit{u}_{b}") for b in range(P)]
            m.d.comb += [hits[b].eq(twin2[b] & (col2[b] == u)) for b in range(P)]
            add = sum(Mux(hits[b], cprod2[b], 0) for b in range(P))
            n = sum(hits)
            props.assume(m, col_n[u] + n <= f.degree_max)        # a unit has at most degree_max synapses
            with m.If(dut.start):
                m.d.sync += [col_sum[u].eq(0), col_n[u].eq(0)]
            with m.Else():
                m.d.sync += [col_sum[u].eq(col_sum[u] + add), col_n[u].eq(col_n[u] + n)]

        # a unit's row part and column part together: at most degree_max synapses, counted where
        # the MAC sums them (the row part at its last stage, the column part in the accumulators)
        block, col_n_of = row.block, Array([*col_n, *[Const(0, 1)] * 2])      # units N, N + 1: no column part
        last_row = first + head_d[L - 2]                                         # the block's there L - 1 cycles on
        props.assume(m, ~block["valid"] | (row.running_n + block["head_n"] + col_n_of[last_row] <= f.degree_max))
        props.assume(m, ~(block["valid"] & block["ends"]) | (block["tail_n"] + col_n_of[last_row + 1] <= f.degree_max))

        # the column sum leaves the cycle after its row's sum: the row whose last word came in L + 1
        # cycles ago, unit first + its head row
        read = ends_d[L]
        read_unit = Signal(range(N + 1), name="ref_read_unit")
        m.d.comb += read_unit.eq(first + head_d[L])
        expect = Signal(wide, name="ref_col_value")
        m.d.comb += expect.eq(Array(col_sum)[read_unit])
        props.check(m, "mac.col_sum_exact", ~read | (dut.col_sum == expect),
                    f"the cycle after each row sum, col_sum equals that row unit's column part: a shadow sum "
                    f"{SHADOW_EXTRA} bits wider of every twin product for the unit since start (all of them in "
                    f"by then; the read counts the rows itself): no column accumulator wraps")
        props.check(m, "mac.col_sum_within_bound", ~read | ((dut.col_sum <= bound) & (dut.col_sum >= -bound)),
                    "|column part| <= degree_max Wmax Amax")
        row_valid1 = past(m, dut.row_valid, "ref_dut_row_valid1")
        total = Signal(wide, name="ref_fold_total")
        m.d.comb += total.eq(past(m, dut.row_sum, "ref_dut_row_sum1") + dut.col_sum)
        props.check(m, "mac.fold_sum_within_bound", ~row_valid1 | ((total <= bound) & (total >= -bound)),
                    "|row part + column part| of a unit (the engine's sum of row_sum and the col_sum a cycle "
                    "later) <= degree_max Wmax Amax (numerics.md section 6): acc_bits holds it")

        # lemmas: the accumulators equal the shadow (bounded by their term counts); the read's
        # lane and block point at unit first + the rows whose ends its own pipeline has seen, that
        # is, the rows ended at the input minus the row ends still in the L - 2 stages before it
        pending = sum(ends_d[:L - 2])
        reading = Signal(range(N + 1), name="ref_reading_unit")
        m.d.comb += reading.eq(first + row_ends - pending)
        lane_of = Array(Const(u % P, range(P)) for u in range(N + 1))
        blk_of = Array(Const((u // P) % (1 << dut.blk_bits), dut.blk_bits) for u in range(N + 1))

        def lemma(m_mac, internals):
            acc = internals.col_acc
            props.check(m_mac, "mac.col_acc_matches_shadow",
                        Cat(*[(acc[u] == col_sum[u]) & (col_sum[u] <= col_n[u] * pmax)
                              & (col_sum[u] >= -(col_n[u] * pmax)) for u in range(N)]).all(),
                        "lemma: each column accumulator equals the shadow's column part of its unit (summed at "
                        "the same stage), which its term count bounds", lemma=True)
            props.check(m_mac, "mac.col_read_counts_rows",
                        ~started | ((row_ends <= n_rows) & (pending <= row_ends)
                                    & (internals.col_lane == lane_of[reading])
                                    & (internals.col_blk == blk_of[reading])),
                        "lemma: once started, the read's lane and block are unit first_unit + the row ends at the "
                        "input since start, less those still in the pipeline before the read's count", lemma=True)

        lemmas.append(lemma)

        # covers: a unit whose column part came from two rows; the column part at its bound;
        # the row and column parts together at the negative bound; a word with twins of two rows
        seen = [Signal(n_rows + 1, name=f"ref_col_rows{u}") for u in range(N)]   # the rows that gave terms
        for u in range(N):
            new = Cat(*[Cat(*[twin[b] & (col[b] == u) & (row_of[b] == r) for b in range(P)]).any()
                        for r in range(n_rows + 1)])
            m.d.sync += seen[u].eq(Mux(dut.start, new, seen[u] | new))
        rows_seen = Signal(n_rows + 1, name="ref_read_rows")
        m.d.comb += rows_seen.eq(Array(seen)[read_unit])
        props.cover(m, "mac.col_sum_from_two_rows",
                    read & (rows_seen & (rows_seen - 1)).any() & (dut.col_sum != 0),
                    "a column sum read for a unit whose terms came from two different rows")
        props.cover(m, "mac.col_sum_at_bound", read & (dut.col_sum == bound),
                    "a column sum at the positive bound degree_max Wmax Amax")
        props.cover(m, "mac.fold_sum_at_negative_bound",
                    row_valid1 & (total == -bound) & (dut.col_sum != 0) & (dut.col_sum != total),
                    "a row part and a column part, both nonzero, at the negative bound together")
        head_twin = Cat(*[twin[b] & row.in_head[b] for b in range(P)]).any()
        tail_twin = Cat(*[twin[b] & ~row.in_head[b] for b in range(P)]).any()
        props.cover(m, "mac.twins_of_two_rows", ends & head_twin & tail_twin,
                    "a word that ends a row with twins of both the ending row and the next")
