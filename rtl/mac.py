"""Multiply-accumulate lanes with a segmented reduction over the synapse stream.

Each clock, P lanes multiply P (weight, activation) pairs of one word of the stream. A word
may hold the end of one row and the start of the next (never two row ends, see
schedule.py), so the lanes are summed as two segments: lanes up to the row end finish the
current row, the rest start the next. Integer addition is associative, so the tree shape
does not change the result: the model's row sums are matched exactly.

Pipeline (`mac_latency(P)` cycles from a word at the inputs to its row sum):

  1  input registers (a padding entry's activation is zeroed here)  -- the DSP's A/B registers
  2  products                                                       -- the DSP's output register
  3… two adder trees (head, tail), ADDS_PER_STAGE levels per register stage; the first stage,
     behind the head/tail select, takes the levels left over (`first_stage_adds`)
  last  the running sum of the open row; a row sum leaves when its row ends

Registering both sides of every multiplier (without a reset: DSP operand and output registers
have none) puts it wholly inside a DSP block with its clock, so the timing analysis sees (and
times) every multiplier path. On the ECP5 the product register is the MULT18X18D's own
(dsp.py, `hw.dsp`): yosys would leave it in the fabric, behind a combinational multiplier.

**Fold** (`units` > 0, schedule.py): each symmetric pair is streamed once, in row i, at a
lane b = j mod P, and its weight also multiplies the row unit's activation (`a_row`) for
column j's sum. Those column products run beside the row pipeline:

  1-2  beside the row products (a second multiplier per lane; non-twin lanes multiply 0)
  3    into the column accumulators: lane b holds units j = k P + b, and the entry's block
       k = j // P (`blk`) picks one. One entry per lane per word: one adder per accumulator,
       and no rotation (the stream's alignment did it)

`col_sum` is unit i's accumulator the cycle after row i's sum leaves (the engine adds the
two then). Unit i's column part comes from rows before i only, at least one word before row
i ends (one row end per word), so it is complete when the array reads it, counting the rows
from its own pipeline's row-end flags.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from . import formal
from .dsp import LATENCY as MULTIPLIER_LATENCY
from .dsp import Multiplier

#: Adder levels between two registers of the reduction tree.
ADDS_PER_STAGE = 2
#: Fold: lanes per group of the column sums' read (mac.py, `_columns`).
READ_GROUP = 8


def tree_levels(lanes: int) -> int:
    """Adder levels of a pairwise tree over `lanes` values."""
    return max((lanes - 1).bit_length(), 0)


def tree_stages(lanes: int) -> int:
    """Register stages of a pairwise adder tree over `lanes` values (at least one)."""
    return max(-(-tree_levels(lanes) // ADDS_PER_STAGE), 1)


def first_stage_adds(lanes: int) -> int:
    """Adder levels of the tree's first stage: what the later stages (ADDS_PER_STAGE each) leave.
    The first stage also holds the head/tail select behind the products, so at P = 32 (five
    levels, three stages) it adds once instead of twice: its path was among the ULX3S's
    longest, and the last stage had no adder at all."""
    return tree_levels(lanes) - ADDS_PER_STAGE * (tree_stages(lanes) - 1)


def mac_latency(lanes: int) -> int:
    """Cycles from a word at the MacArray's inputs to its row sum at the outputs: the
    multipliers (dsp.py), the adder tree, the running sum."""
    return MULTIPLIER_LATENCY + tree_stages(lanes) + 1


class MacArray(wiring.Component):
    def __init__(self, lanes: int, w_bits: int, a_bits: int, acc_bits: int, units: int = 0, first_unit: int = 0,
                 dsp: str = "inferred"):
        self.lanes = lanes
        self.dsp = dsp                                        # the multipliers' back end (dsp.py)
        self.acc_bits = acc_bits
        self.latency = mac_latency(lanes)
        self.units = units                                    # fold: the column accumulators' units N
        self.first_unit = first_unit                          # fold: the first row's unit
        fold = {}
        if units:
            self.blocks = -(-units // lanes)
            self.blk_bits = max((self.blocks - 1).bit_length(), 1)
            fold = {
                "a_row": In(data.ArrayLayout(signed(a_bits), lanes)),   # the lane's row unit's activation
                "twin": In(lanes),                                      # the entry feeds its column too
                "blk": In(data.ArrayLayout(self.blk_bits, lanes)),      # its column's block j // P
                "col_sum": Out(signed(acc_bits)),        # the column part of the row sum that left the cycle before
            }
        super().__init__({**fold,
            "start": In(1),                                   # clear the running sum (step start)
            "valid": In(1),                                   # a word is present
            "w": In(data.ArrayLayout(signed(w_bits), lanes)),
            "a": In(data.ArrayLayout(signed(a_bits), lanes)),
            "entry": In(lanes),                               # entry holds a real synapse
            "last": In(lanes),                                # a row ends at this entry
            "row_valid": Out(1),
            "row_sum": Out(signed(acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        P = self.lanes
        valid, last = self.valid, self.last

        def delay(name, value):
            reg = Signal.like(value, name=name)
            m.d.sync += reg.eq(value)
            return reg

        # 1-2: the multipliers (dsp.py): registered operands (a padding entry's activation is zeroed
        # ahead of its register), registered products
        prod = []
        for i in range(P):
            m.submodules[f"prod{i}"] = mul = Multiplier(len(self.w[i]), len(self.a[i]), backend=self.dsp,
                                                        name=f"prod{i}")
            m.d.comb += [mul.a.eq(self.w[i]), mul.b.eq(Mux(self.entry[i], self.a[i], 0))]
            prod.append(mul.p)
        # the head mask's prefix OR, in two halves: within groups of four lanes and over the groups
        # (one 32-lane prefix chain after last1 was a nine-LUT path on the ULX3S)
        group = 4
        first_in_group = [~last[i - i % group:i].any() if i % group else Const(1, 1) for i in range(P)]
        pre = delay("pre1", Cat(*first_in_group))
        groups = delay("groups1", Cat(*[last[g:g + group].any() for g in range(0, P, group)]))
        valid, last = delay("valid1", valid), delay("last1", last)
        # which lanes are the head (up to and including the row end), registered beside the products:
        # the prefix OR of the row ends over P lanes is a chain of its own, kept off the adders'
        # path (at P = 32 the two together were the ULX3S design's longest path, 48 MHz); its
        # halves were registered with the operands
        in_head = delay("in_head2", Cat(*[pre[i] & (~groups[:i // group].any() if i >= group else Const(1, 1))
                                          for i in range(P)]))
        valid, last = delay("valid2", valid), delay("last2", last)
        # 3...: head (lanes up to and including the row end) and tail (the next row's start)
        head, tail = [], []
        for i in range(P):
            head.append(Mux(in_head[i], prod[i], 0))
            tail.append(Mux(in_head[i], 0, prod[i]))
        ends = last.any()
        for k in range(tree_stages(P)):
            for _ in range(first_stage_adds(P) if k == 0 else ADDS_PER_STAGE):
                head = [sum(head[j:j + 2]) for j in range(0, len(head), 2)]
                tail = [sum(tail[j:j + 2]) for j in range(0, len(tail), 2)]
            head = [self._reg(m, x, f"head{k}_{j}") for j, x in enumerate(head)]
            tail = [self._reg(m, x, f"tail{k}_{j}") for j, x in enumerate(tail)]
            valid, ends = delay(f"valid_t{k}", valid), delay(f"ends_t{k}", ends & valid if k == 0 else ends)
        head_sum, tail_sum = head[0], tail[0]
        # last: running sum of the open row; emit when the row ends
        running = Signal(signed(self.acc_bits))
        with m.If(self.start):
            m.d.sync += running.eq(0)
        with m.Elif(valid):
            with m.If(ends):
                m.d.sync += running.eq(tail_sum)
            with m.Else():
                m.d.sync += running.eq(running + head_sum)
        m.d.sync += [self.row_valid.eq(valid & ends), self.row_sum.eq(running + head_sum)]
        columns = self._columns(m) if self.units else {}
        formal.hook(self, m, running=running, **columns)
        return m

    def _columns(self, m: Module) -> dict:
        """The fold's column path (module docstring): products, then the column accumulators.
        Returns its state for the formal hook: the accumulators by unit, the read's lane and block."""
        P = self.lanes
        # 1-2: the weight times the row unit's activation (0 where the entry is no twin or no word is
        # present), a multiplier as the row's
        cprod = []
        for i in range(P):
            m.submodules[f"cprod{i}"] = mul = Multiplier(len(self.w[i]), len(self.a_row[i]), backend=self.dsp,
                                                         name=f"cprod{i}")
            m.d.comb += [mul.a.eq(self.w[i]), mul.b.eq(Mux(self.valid & self.twin[i], self.a_row[i], 0))]
            cprod.append(mul.p)
        blk1 = [self._sig(m, self.blk[i], self.blk_bits, f"cblk1_{i}") for i in range(P)]
        blk2 = [self._sig(m, blk1[i], self.blk_bits, f"cblk2_{i}") for i in range(P)]
        # 3: the column accumulators: lane b holds the columns j = k P + b (the stream's alignment)
        acc = {}
        for k in range(self.blocks):
            for b in range(P):
                j = k * P + b
                if j >= self.units:
                    continue
                reg = acc[j] = Signal(signed(self.acc_bits), name=f"col_acc{j}")
                with m.If(self.start):
                    m.d.sync += reg.eq(0)
                with m.Elif(blk2[b] == k):
                    m.d.sync += reg.eq(reg + cprod[b])
        # the read, in three registered steps: each lane picks its block (beside its accumulators),
        # then each group of READ_GROUP lanes its lane, then one group. A 100-way select of 24-bit
        # sums in one place, and a 32-way one, left the ULX3S router with wires it could not share.
        # The rows' ends are counted from the word's own flag, mac_latency(P) - 2 cycles after the
        # word came in: the sum then leaves the cycle after the row's, and every term of unit i
        # (from rows before i, at least a word earlier, in its accumulator 3 cycles after its word)
        # is in by then, since mac_latency(P) >= 4
        ahead = self.latency - 2
        ends = self.valid & self.last.any()
        for d in range(ahead):
            ends = self._sig(m, ends, 1, f"col_ends{d + 1}")
        lane, blk = Signal(range(P), name="col_lane"), Signal(self.blk_bits, name="col_blk")
        first = self.first_unit
        with m.If(self.start):
            m.d.sync += [lane.eq(first % P), blk.eq(first // P)]
        with m.Elif(ends):
            last_lane = lane == P - 1
            m.d.sync += [lane.eq(Mux(last_lane, 0, lane + 1)), blk.eq(blk + last_lane)]
        picked = []
        for b in range(P):
            reg = Signal(signed(self.acc_bits), name=f"col_pick{b}")
            with m.Switch(blk):
                for k in range(self.blocks):
                    if k * P + b in acc:
                        with m.Case(k):
                            m.d.sync += reg.eq(acc[k * P + b])
            picked.append(reg)
        lane1 = self._sig(m, lane, range(P), "col_lane1")
        groups = []
        for g in range(0, P, READ_GROUP):
            reg = Signal(signed(self.acc_bits), name=f"col_group{g // READ_GROUP}")
            with m.Switch(lane1):
                for b in range(g, min(g + READ_GROUP, P)):
                    with m.Case(b):
                        m.d.sync += reg.eq(picked[b])
            groups.append(reg)
        lane2 = self._sig(m, lane1, range(P), "col_lane2")
        with m.Switch(lane2):
            for b in range(P):
                with m.Case(b):
                    m.d.sync += self.col_sum.eq(groups[b // READ_GROUP])
        return {"col_acc": acc, "col_lane": lane, "col_blk": blk}      # for formal.hook

    @staticmethod
    def _sig(m: Module, value, shape, name: str) -> Signal:
        reg = Signal(shape, name=name)
        m.d.sync += reg.eq(value)
        return reg

    def _reg(self, m: Module, value, name: str) -> Signal:
        return self._sig(m, value, signed(self.acc_bits), name)
