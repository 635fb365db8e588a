"""The learning unit: in-situ EqProp over W parallel lanes (docs/numerics.md section 5, docs/rtl.md).

LEARN walks the synapse stream group by group (learnplan.py): W lanes of a stream word, then
the biases W at a time. Four stages work on four consecutive groups in lock step; a *slot*
ends in the cycle after all four are done, and every group moves one stage on:

  A  walk and draw   walks the synapse stream, skips groups that hold only mirror copies (with
                     hw.learn_skip also the lanes, groups and whole LEARNs whose units' HI and
                     LO fixed points are equal: changed.py),
                     latches the next group (with each lane's learning rate: its weight layer's
                     entry of the rate table) and requests its Threefry calls (the rounding draw
                     and every pulse's noise), one per cycle, tagged with (buffer, lane, call)
  B  correlate       each lane multiplies its column's stored activation (its own copy of
                     the HI and LO fixed points, written at STORE) by the row's and sums over the
                     minibatch: B cycles, HI and LO together, the rows from the learner's own
                     copies (W >= PAIRED_READ_LANES), else 2B, the rows from the central
                     fixed-point memory
  C  program         quantises every lane at its rate, decayed by the `decay` steps (draws
                     from the tagged buffer), reads the device codes and applies the pulses,
                     all lanes in parallel, two cycles a round
  D  write           writes the programmed primary copies (one word write) and then each
                     copy's mirror, one per cycle (mirror base table + row)

Draws are requested two slots before they are used, so the Threefry latency is hidden; with
two or four Threefry pipelines ("dual", "quad") the slots are short, and an idle stage A2 between
A and B makes the lead three slots (LearnPlan.draw_lead). The
code and bias memories are single-ported (`LearnerPort`): a code word is read only in a slot's
first cycle and written only after it; bias entries are read in cycles 0 .. W-1 and written
from cycle W on. The cycle count is exactly `cycles.learn_cycles`.

(No ``from __future__ import annotations``: `wiring.Component` reads port annotations.)
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from memprop.model.config import Config
from memprop.model.numerics import CARRY_FRAC

from . import hostmap as hm
from .ports import LearnerPort
from .learnlane import (CORRELATOR_LATENCY, NOISE_BITS, CorrelatorLane, PulseLane, Quantiser, align_draw,
                        learn_shift, learn_widths, mul_const, shift_range)
from .changed import ChangedUnits
from .fanout import copy_of, lane_copies
from .lanepair import LanePairMemory
from .learnplan import LearnPlan
from .schedule import ceil_log2
from .threefry import Threefry2x32, Threefry2x32Pipeline, call_request

#: Cycles of LEARN outside the slots: the start cycle (the stream restarts), the loader filling the
#: walk's candidate register (with hw.learn_skip two cycles: `learn_init`), and the finish cycle.
LEARN_INIT = 2
LEARN_FINISH = 1
#: Cycles of a LEARN in which no unit changed (hw.learn_skip): the start cycle and the finish.
LEARN_UNCHANGED = 2
#: Cycles from the last stage's done flag to the slot's end (slot_end is a register).
SLOT_END_LATENCY = 1
#: A stream group rounds no earlier than this cycle of a slot: its code word, read in cycle 0,
#: is registered in cycle 1 and in the lanes from cycle 2 on, so its first pulse round (the cycle
#: after rounding) reads the loaded codes. With rounding "carry" the carries, which arrive with the
#: word in cycle 1 and are registered by the quantisers, are ready then too.
ROUND_EARLIEST = 2
#: Learners at least this wide read a sample's HI and LO fixed points in one cycle (stage B: B
#: reads, two multipliers a lane). Narrower ones read them in turn (2B reads, one multiplier), from
#: the central fixed-point memory: the iCE40 defaults have no block RAM to spare for the rows'
#: copies that the paired read needs.
PAIRED_READ_LANES = 8


def learn_init(skips: bool) -> int:
    """LEARN's cycles before the first slot: LEARN_INIT, one more with hw.learn_skip (the loader's
    register stage `pre`)."""
    return LEARN_INIT + int(skips)


def paired_reads(width: int) -> bool:
    """Whether a learner of `width` lanes reads HI and LO together (PAIRED_READ_LANES)."""
    return width >= PAIRED_READ_LANES


def stage_b_cycles(batch: int, width: int, hard: bool) -> int:
    """Stage B's done cycle of a valid group: its reads (B paired, 2B in turn), the read latency
    (1; 2 for tanh in turn: the row's activation lookup) and the correlator's pipeline."""
    if paired_reads(width):
        return batch - 1 + 1 + CORRELATOR_LATENCY
    return 2 * batch - 1 + (1 if hard else 2) + CORRELATOR_LATENCY


def round_earliest(carry: bool, bias: bool, width: int) -> int:
    """The first cycle of a slot in which stage C may round: a bias group waits for its W entries
    (read in cycles 0 .. W-1, registered once, in the lanes from cycle l + 2) and, with rounding
    "carry", for the carries (bias lane l's in cycle l + 1, registered by the quantiser); a stream
    group for its code word (ROUND_EARLIEST), with or without carries."""
    if bias:
        return width + 1
    return ROUND_EARLIEST


def _lowest_bit(mask, width: int):
    """The lowest set bit of `mask`, one-hot (0 if none): mask AND its two's complement."""
    return (mask & (~mask + 1))[:width]


def _select(hot, values):
    """values[l] for the one set bit l of `hot` (an AND-OR, no index decode)."""
    out = Const(0, 1)
    for lane, value in enumerate(values):
        out = out | Mux(hot[lane], value, 0)
    return out


def _unit_runs(m: Module, unit, table, name: str) -> Signal:
    """table[unit] for a table that is constant over runs of units: one comparison with a constant
    per run boundary, no memory (units past the table's end read its last value)."""
    out = Signal(range(max(int(max(table)) + 1, 2)), name=name)
    m.d.comb += out.eq(int(table[0]))
    for u in range(1, len(table)):
        if table[u] != table[u - 1]:
            with m.If(unit >= u):
                m.d.comb += out.eq(int(table[u]))
    return out


class _Group:
    """The registers that describe one group in one stage."""

    def __init__(self, plan: LearnPlan, name: str, word_bits: int):
        W, n_bits = plan.width, plan.n_bits
        rate_bits = ceil_log2(len(plan.rates))
        self.valid = Signal(name=f"{name}_valid")
        self.word = Signal(word_bits, name=f"{name}_word")
        self.part = Signal(range(max(plan.parts, 2)), name=f"{name}_part")
        self.bias = Signal(name=f"{name}_bias")
        self.buf = Signal(2, name=f"{name}_buf")
        self.r0 = Signal(n_bits + 1, name=f"{name}_r0")
        self.prim = Signal(W, name=f"{name}_prim")
        self.mir = Signal(W, name=f"{name}_mir")
        self.diag = Signal(W, name=f"{name}_diag")
        self.rsel = Signal(W, name=f"{name}_rsel")
        self.col = [Signal(n_bits + 1, name=f"{name}_col{lane}") for lane in range(W)]
        # per-layer rates: each lane's index into the rate table (none with one rate)
        self.rate = [Signal(rate_bits, name=f"{name}_rate{lane}") for lane in range(W)] if rate_bits else []

    def fields(self):
        return [self.valid, self.word, self.part, self.bias, self.buf, self.r0, self.prim, self.mir, self.diag,
                self.rsel, *self.col, *self.rate]

    def eq(self, other: "_Group"):
        return [a.eq(b) for a, b in zip(self.fields(), other.fields())]


class Learner(wiring.Component):
    """The learning unit of one Config, behind its `LearnerPort` (ports.py)."""

    def __init__(self, cfg: Config, layout: hm.Layout, *, banked: bool = False, dsp: str = "inferred"):
        if cfg.device.read_noise:
            self._MustUse__silence = True      # refused, never to be elaborated: no "unused" warning
            raise ValueError(f"device.read_noise={cfg.device.read_noise} is a model option the hardware leaves out "
                             "(docs/numerics.md, section 5): set it to 0 for the RTL")
        self.cfg = cfg
        self.layout = layout
        self.banked = banked            # the engine's code and bias memories hold two weight banks
        self.dsp = dsp                  # the correlators' multipliers (rtl/dsp.py back end)
        self.plan = plan = LearnPlan(cfg)
        self.word_bits = max(ceil_log2(layout.schedule.depth + 1), 1)    # walk position, up to D
        self.n_bits = layout.n_bits
        plan.mirror_base            # raises for a mask whose mirrors the learner cannot address
        # paired reads keep the rows' fixed points too: no reads of the central store (fp_a, fp_b)
        self.paired = paired_reads(plan.width)
        super().__init__(LearnerPort.for_layout(layout, fixpoint_reads=not self.paired))

    def elaborate(self, platform):
        m = Module()
        plan, lay, cfg = self.plan, self.layout, self.cfg
        f, sch = lay.fmt, lay.schedule
        P, W, E, N = cfg.hw.lanes, plan.width, lay.entry_bits, cfg.network.n
        parts, n_bits, slot_bits = plan.parts, self.n_bits, lay.slot_bits
        B = plan.batch
        wd = learn_widths(f)
        a_bits = wd["a_bits"]
        D = sch.depth
        first_row, end_row = plan.first_row, plan.first_row + plan.n_rows
        K, first_call = plan.calls, plan.first_call
        P_max = f.max_pulses
        noisy = plan.noisy
        word_bits = self.word_bits

        # -- activation tables (tanh) ---------------------------------------------------------
        def act_port(name):
            lut = [int(v) for v in f.act_lut]
            mem = memory.Memory(shape=signed(a_bits), depth=len(lut), init=lut)
            m.submodules[name] = mem
            return mem.read_port()

        # -- the lanes' fixed-point copies: written at STORE, read by stage B -------------------
        paired = self.paired
        # the copies' sets: paired, HI and LO each in a memory of its own (both read at one address
        # in one cycle); otherwise both in one memory ("pair"), the HI flag the address's top bit
        sets = {"hi": hm.SET_HI, "lo": hm.SET_LO} if paired else {"pair": None}
        stored = self.stored
        learned = stored.valid & ((stored.set == hm.SET_HI) | (stored.set == hm.SET_LO))
        hits = [learned if s is None else stored.valid & (stored.set == s) for s in sets.values()]
        st_en, st_addr, st_a = Signal(len(sets)), Signal(1 + slot_bits + n_bits), Signal(signed(a_bits))
        # the STORE event registered first: the value comes straight from the state memory's block
        # RAM, and its route to the lanes' copies (block RAMs across the die) was the ULX3S's
        # longest path; LEARN reads the copies long after STORE, so the cycle is invisible. The
        # set's compare lies before the register: each memory's write enable is a register bit.
        ev_en, ev_addr, ev_value = Signal(len(sets)), Signal(len(st_addr)), Signal.like(stored.value)
        m.d.sync += [ev_en.eq(Cat(*hits)), ev_addr.eq(Cat(stored.unit, stored.slot, stored.set == hm.SET_HI)),
                     ev_value.eq(stored.value)]
        if f.hard:
            m.d.comb += [st_en.eq(ev_en), st_addr.eq(ev_addr), st_a.eq(ev_value)]
        else:
            store_act = act_port("act_store")
            m.d.comb += [store_act.addr.eq(ev_value - f.lo), st_a.eq(store_act.data)]
            m.d.sync += [st_en.eq(ev_en), st_addr.eq(ev_addr)]
        fp_bits = n_bits + slot_bits + (0 if paired else 1)      # a copy's address: unit, slot (, HI)
        # hw.learn_skip: which units' HI and LO differ (changed.py), from the same events as the copies
        skips = plan.skips
        if skips:
            tracker = ChangedUnits(N, n_bits, slot_bits, a_bits)
            m.submodules.changed = tracker
            m.d.comb += [tracker.en.eq(st_en.any()), tracker.hi.eq(st_addr[-1]), tracker.unit.eq(st_addr[:n_bits]),
                         tracker.slot.eq(st_addr[n_bits:n_bits + slot_bits]), tracker.value.eq(st_a)]
            # events not yet at `any_changed`: LEARN's INIT waits for them (only after a host's own
            # fixed-point writes right before LEARN, docs/rtl.md)
            settling = learned | ev_en.any() | tracker.busy
            # changed[u] for any index the walk forms (ra + 1 may pass N): zeros above
            chg = Cat(tracker.changed, Const(0, (1 << (n_bits + 2)) - N))

        def copy_memory(name: str, k: int, lanes: int) -> LanePairMemory:
            """A copy of the k-th of `sets`, written from the STORE event."""
            mem = LanePairMemory(signed(a_bits), plan.store_depth // len(sets), fp_bits, lanes=lanes)
            m.submodules[name] = mem
            m.d.comb += [mem.w_en.eq(st_en[k]), mem.w_addr.eq(st_addr[:fp_bits]), mem.w_data.eq(st_a)]
            return mem

        # One memory per two lanes (lanepair.py: a read/write port and a transparent read port);
        # an odd last lane has a memory of its own. Paired, one such memory per set. (ULX3S
        # default: 2 x 8 x 128 x 10 bits per two lanes, two DP16KD, either as one 2048 x 10 memory
        # or as an HI and a LO 1024 x 10; the pairing halves the lanes' block RAMs.)
        lane_addr = [Signal(fp_bits, name=f"fp_addr{lane}") for lane in range(W)]   # driven by stage B
        lane_data = [[] for _ in sets]             # [set][lane]
        for first in range(0, W, 2):
            for k, name in enumerate(sets):
                pair = copy_memory(f"fp_{name}{first // 2}", k, min(2, W - first))
                m.d.comb += pair.a_addr.eq(lane_addr[first])
                lane_data[k].append(pair.a_data)
                if pair.lanes == 2:
                    m.d.comb += pair.b_addr.eq(lane_addr[first + 1])
                    lane_data[k].append(pair.b_data)

        # -- random numbers -------------------------------------------------------------------------
        tag_lane_bits = max(ceil_log2(W), 1)
        tag_call_bits = max(ceil_log2(max(K, 1)), 1)
        # per-layer rates or decay, stochastic rounding: the rounding call also carries its lane's
        # sh_top - sh, so that its draw is aligned once, where it arrives (learnlane.align_draw)
        sh_min, sh_top = shift_range(f)
        aligned_draws = plan.stochastic and not Quantiser.constant_for(f)
        tag_drop_bits = ceil_log2(sh_top - sh_min + 1) if aligned_draws else 0
        rngs = []                                  # "dual" / "quad": 2 / 4 pipelines, as many requests a cycle
        if K:
            tag_bits = 2 + tag_lane_bits + tag_call_bits + tag_drop_bits
            for unit in range(min(plan.rng_units, W)):       # pipelines past the W-th would have no lane
                if plan.rng == "iterative":
                    rng = Threefry2x32(tag_bits=tag_bits)
                else:
                    rng = Threefry2x32Pipeline(tag_bits=tag_bits, static_key=True)
                m.submodules[f"rng{unit}" if unit else "rng"] = rng
                m.d.comb += rng.o.ready.eq(1)
                rngs.append(rng)
            rng = rngs[0]
        # draws requested and received per buffer. Stage C waits until its buffer's are all in:
        # `c_ready` (below) is that compare as a register, from `recv` plus this cycle's arrivals,
        # so the counters' compare is not in front of the lanes' rounding enables (the ULX3S's
        # longest path). It leaves out what only stage A does to a buffer: `issued` may lag by two
        # cycles and the reset is not seen, but a buffer's requests are all issued (and its counts
        # reset) in its stage A slot, so from stage B on, when C reads it, neither moves.
        # Draws are requested `lead` slots before stage C uses them (learnplan.draw_lead): one buffer
        # per stage from A to C, with several pipelines an idle stage A2 between A and B.
        NB = plan.draw_lead + 1
        issued = [Signal(range(W * max(K, 1) + 1), name=f"issued{b}") for b in range(NB)]
        recv = [Signal(range(W * max(K, 1) + 1), name=f"recv{b}") for b in range(NB)]
        recv_inc = [Signal.like(recv[b], name=f"recv_inc{b}") for b in range(NB)]   # + this cycle's arrivals
        recv_nx = [Signal.like(recv[b], name=f"recv_nx{b}") for b in range(NB)]     # and stage A's reset
        for b in range(NB):
            m.d.comb += [recv_inc[b].eq(recv[b]), recv_nx[b].eq(recv_inc[b])]
            m.d.sync += recv[b].eq(recv_nx[b])
        # rounding draws by stage, not by buffer: rho[0] for stage A's group, rho[1] for the next
        # stage's, ..., rho[-1] for C's, moved on at the slot end. The quantisers read rho[-1]
        # straight from a register (a buffer select in front of their rounding adders was the
        # ULX3S's longest route).
        stage_names = ["a", "a2", "b", "c"] if NB == 4 else ["a", "b", "c"]
        rho = [[Signal(wd["rho_bits"], name=f"rho_{stage_names[k]}{lane}") for lane in range(W)] for k in range(NB)]
        if noisy:
            noise_mem = memory.Memory(shape=unsigned(W * 2 * NOISE_BITS), depth=NB * P_max, init=[])
            m.submodules.noise_mem = noise_mem
            noise_wr = noise_mem.write_port(granularity=2 * NOISE_BITS)
            noise_rd = noise_mem.read_port()

        # -- slot control ---------------------------------------------------------------------------
        cyc = Signal(range(plan.slot_bound + 1))   # cycle within the slot
        running = Signal()
        done_a, done_b, done_c, done_d = Signal(), Signal(), Signal(), Signal()
        # the slot ends one cycle after every stage is done: a register, so that the done flags (the
        # pulse rounds' compare, the mirror walk) and the fan-out of slot_end to every stage's
        # enables are two timing paths, not one (the ends of both were the iCE40's longest path)
        slot_end = Signal()
        m.d.sync += slot_end.eq(running & done_a & done_b & done_c & done_d & ~slot_end)
        cyc_nx = Signal.like(cyc)
        m.d.comb += cyc_nx.eq(Mux(slot_end, 0, Mux(running, cyc + 1, cyc)))
        m.d.sync += cyc.eq(cyc_nx)
        ga = _Group(plan, "ga", word_bits)         # stage A's group (latched this slot)
        ga2 = _Group(plan, "ga2", word_bits) if NB == 4 else None    # idle: its draws arrive
        pre_b = ga2 or ga                          # the stage that hands its group to B
        gb = _Group(plan, "gb", word_bits)
        gc = _Group(plan, "gc", word_bits)
        gd = _Group(plan, "gd", word_bits)
        # "cycle 0 of a valid group in stage B / C" as registers, from the next slot counter and
        # the groups the slot end moves on: they enable 16 correlators' clears and 16 quantisers'
        # products, and the counter's compare ahead of that fan-out was the ULX3S's longest path
        b_first, c_first = Signal(), Signal()
        m.d.sync += [b_first.eq(Mux(slot_end, pre_b.valid, gb.valid) & (cyc_nx == 0)),
                     c_first.eq(Mux(slot_end, gb.valid, gc.valid) & (cyc_nx == 0))]
        start_clear = [b_first, c_first]           # such registers, cleared with the groups in INIT
        buf_a = Signal(2)                          # buffer of the group A latches in this slot
        with m.If(slot_end):
            m.d.sync += [*gb.eq(pre_b), *gc.eq(gb), *gd.eq(gc), ga.valid.eq(0),
                         buf_a.eq(Mux(buf_a == NB - 1, 0, buf_a + 1))]
            if ga2 is not None:
                m.d.sync += ga2.eq(ga)

        # -- stage A: walk the stream, latch a group, request its draws ------------------------------
        cand_word = Signal(word_bits)
        cand_part = Signal(range(max(parts, 2)))
        s_bits = (N * N + N).bit_length()        # synapse indices s < N N + N
        in_bias, exhausted = Signal(), Signal()
        bias_next = Signal(range(end_row + W + 1))
        if skips:                                  # changed[bias_next + lane] at lane, shifted by W a bias group
            b_chg = Signal(N + W)
        bias_left = Signal(signed(ceil_log2(end_row + W + 1) + 2))   # end_row - bias_next
        last_part = cand_part == parts - 1
        next_word = Signal(word_bits)
        m.d.comb += next_word.eq(cand_word + last_part)
        # The row at the candidate the loader takes (ra), ra * N and (ra + 1) * N (a lane past a row
        # end selects the second, one adder behind the select) follow from the previous candidate's
        # (`prev_*`, with (ra + 2) * N) and whether it ended a row (`prev_ends`): the stream's row
        # ends only reach a flip-flop's data input, not the enables of the walk's row registers
        # (through the part select and a 16-lane OR, that was the ULX3S's longest path)
        ra, rowN, rowN1 = Signal(n_bits + 1), Signal(s_bits), Signal(s_bits)
        prev_ra, prev_rowN, prev_rowN1 = Signal.like(ra), Signal.like(rowN), Signal.like(rowN1)
        prev_rowN2, prev_ends = Signal(s_bits + 1), Signal()
        m.d.comb += [ra.eq(prev_ra + prev_ends), rowN.eq(Mux(prev_ends, prev_rowN1, prev_rowN)),
                     rowN1.eq(Mux(prev_ends, prev_rowN2, prev_rowN1))]

        # The walk takes its candidate from a register (`cand`), loaded from the stream one cycle
        # ahead: the stream's lanes, the part select and the row-end prefix OR are one path, the
        # synapse indices and the walk's decisions the next (both in one cycle, from 32 stream
        # lanes across the die, were the ULX3S's longest paths). Filling it costs one cycle (FILL)
        # at the start of a LEARN.
        l_valid, l_last, l_above, l_on_diag = Signal(W), Signal(W), Signal(W), Signal(W)
        l_col = [Signal(n_bits, name=f"lcol{lane}") for lane in range(W)]
        for part in range(parts):
            with m.If(cand_part == part):
                for lane in range(W):
                    q = part * W + lane
                    if q < P:
                        entry = self.stream.entries[q]
                        m.d.comb += [l_valid[lane].eq(entry.valid), l_last[lane].eq(entry.last),
                                     l_col[lane].eq(entry.col), l_above[lane].eq(entry.above),
                                     l_on_diag[lane].eq(entry.diag)]
        l_ends = l_last.any()
        d_valid, d_above, d_on_diag, d_rsel = Signal(W), Signal(W), Signal(W), Signal(W)
        d_col = [Signal(n_bits, name=f"dcol{lane}") for lane in range(W)]
        d_ends, r_full, r_final, loaded_all = Signal(), Signal(), Signal(), Signal()
        r_word, r_part = Signal(word_bits), Signal.like(cand_part)
        r_ra, r_rowN, r_rowN1 = Signal.like(ra), Signal.like(rowN), Signal.like(rowN1)
        a_fill = Signal()                          # the walk's loader may run (FILL and RUN): a register,
                                                   # not the state's decode ahead of the loader's enables
        consume = Signal()                         # the walk takes the candidate this cycle
        load = Signal()                            # a candidate register takes the next candidate
        fetch = Signal()                           # the next candidate is taken from the stream
        # the candidate register's fields and what the loader puts in them
        fields = [(d_valid, l_valid), (d_above, l_above), (d_on_diag, l_on_diag), (d_ends, l_ends),
                  (d_rsel, Cat(*[l_last[:lane].any() if lane else Const(0, 1) for lane in range(W)])),
                  *zip(d_col, l_col), (r_word, cand_word), (r_part, cand_part),
                  (r_final, last_part & (next_word == D)), (r_ra, ra), (r_rowN, rowN), (r_rowN1, rowN1)]
        if skips:
            # hw.learn_skip: the candidate also says whether each lane's column and its two rows (ra,
            # ra + 1) changed. Those lookups (a 100-way select a lane) come from a register stage
            # between the stream and the candidate registers (`pre`), not from the stream's lanes
            # through the part select (that path was the ULX3S's slowest, 60.9 MHz): one cycle
            # more to fill at the start of a LEARN, candidates still one a cycle.
            p_full = Signal()
            pre = [Signal.like(reg, name=f"pre_{reg.name}") for reg, _ in fields]
            p_ra1 = Signal.like(ra)
            with m.If(fetch):
                m.d.sync += [p.eq(value) for p, (_, value) in zip(pre, fields)]
                m.d.sync += [p_ra1.eq(ra + 1), p_full.eq(1)]
            with m.Elif(load):
                m.d.sync += p_full.eq(0)
            start_clear.append(p_full)
            at = {id(reg): k for k, (reg, _) in enumerate(fields)}
            p_col = [pre[at[id(col)]] for col in d_col]
            p_ra = pre[at[id(r_ra)]]
            d_chg, d_chg_r0, d_chg_r1 = Signal(W), Signal(), Signal()
            fields = [(reg, p) for (reg, _), p in zip(fields, pre)] + [
                (d_chg, Cat(*[chg.bit_select(col, 1) for col in p_col])),
                (d_chg_r0, chg.bit_select(p_ra, 1)), (d_chg_r1, chg.bit_select(p_ra1, 1))]
            # pre fills when empty or while it hands its candidate on; it hands it on when a
            # candidate register is free (both decisions from registers, as the loader's before)
            m.d.comb += fetch.eq(a_fill & ~loaded_all & (~p_full | load))
        else:
            m.d.comb += fetch.eq(load)
        # A wide learner has a second candidate register (`spare`): the loader then runs whenever
        # one of the two is free, from registers alone, so its stream advance (to 32 lanes' entry
        # registers) does not wait for the walk's decision (through the walk's state, that was the
        # ULX3S's longest path). Candidates still come one a cycle, and the cycles are the same.
        spare = W >= 8
        with m.If(fetch):
            m.d.sync += [cand_part.eq(Mux(last_part, 0, cand_part + 1)), cand_word.eq(next_word),
                         prev_ra.eq(ra), prev_rowN.eq(rowN), prev_rowN1.eq(rowN1),
                         prev_rowN2.eq(Mux(prev_ends, prev_rowN2 + N, prev_rowN2)), prev_ends.eq(l_ends)]
            with m.If(last_part & (next_word == D)):
                m.d.sync += loaded_all.eq(1)
        if spare:
            s_full = Signal()
            held = [Signal.like(reg, name=f"spare_{reg.name}") for reg, _ in fields]
            ready = p_full if skips else a_fill & ~loaded_all
            m.d.comb += [load.eq(ready & ~s_full), self.stream.advance.eq(fetch & last_part)]
            with m.If(consume):
                with m.If(s_full):
                    m.d.sync += [reg.eq(h) for (reg, _), h in zip(fields, held)]
                    m.d.sync += s_full.eq(0)
                with m.Elif(load):
                    m.d.sync += [reg.eq(value) for reg, value in fields]
                with m.Else():
                    m.d.sync += r_full.eq(0)
            with m.Elif(load):
                with m.If(~r_full):
                    m.d.sync += [reg.eq(value) for reg, value in fields]
                    m.d.sync += r_full.eq(1)
                with m.Else():
                    m.d.sync += [h.eq(value) for h, (_, value) in zip(held, fields)]
                    m.d.sync += s_full.eq(1)
            start_clear.append(s_full)
        else:
            ready = p_full if skips else a_fill & ~loaded_all
            m.d.comb += [load.eq(ready & (~r_full | consume)), self.stream.advance.eq(fetch & last_part)]
            with m.If(load):
                m.d.sync += [reg.eq(value) for reg, value in fields]
                m.d.sync += r_full.eq(1)
            with m.Elif(consume):
                m.d.sync += r_full.eq(0)

        # decode of the candidate's lanes; with hw.learn_skip a primary lane is programmed only when
        # its column or its row changed (d_prog), else its update is zero
        d_prim, d_mir, d_diag = Signal(W), Signal(W), Signal(W)
        d_prog, d_prog_mir = Signal(W), Signal(W)
        d_row = []
        for lane in range(W):
            row = Signal(n_bits + 1, name=f"drow{lane}")
            m.d.comb += row.eq(r_ra + d_rsel[lane])
            d_row.append(row)
            # the stream registers each valid entry's col > row and col = row with it: no compare
            # waits for a row end of the lanes before (that prefix OR through the compares was the
            # ECP5's longest path) or for the candidate's part select (the next one)
            m.d.comb += [
                d_prim[lane].eq(d_above[lane] | d_on_diag[lane] | (d_valid[lane] & (d_col[lane] < first_row))),
                d_mir[lane].eq(0 if sch.fold else d_above[lane]),      # fold: no twin is streamed
                d_diag[lane].eq(d_on_diag[lane]),
            ]
            if skips:
                nz = d_chg[lane] | Mux(d_rsel[lane], d_chg_r1, d_chg_r0)
                m.d.comb += [d_prog[lane].eq(d_prim[lane] & nz), d_prog_mir[lane].eq(d_mir[lane] & nz)]
            else:
                m.d.comb += [d_prog[lane].eq(d_prim[lane]), d_prog_mir[lane].eq(d_mir[lane])]
        # per-layer rates: a synapse learns at its lower unit's weight layer (the row for a primary
        # copy with col >= row, the clamped column otherwise), a bias at the layer below its unit
        rated = len(plan.rates) > 1
        if rated:
            table = plan.unit_rates["synapse"]
            d_rate = [Mux(d_col[lane] >= d_row[lane], _unit_runs(m, d_row[lane], table, f"drate_row{lane}"),
                          _unit_runs(m, d_col[lane], table, f"drate_col{lane}")) for lane in range(W)]
            b_rate = [_unit_runs(m, bias_next + lane, plan.unit_rates["bias"], f"brate{lane}") for lane in range(W)]

        # The request registers and the issue loop. With U pipelines ("dual", "quad": one call per
        # lane) pipeline u serves the lanes l = u mod U, the lowest of them with a call left each
        # cycle: a group's issue takes the largest share of one pipeline's lanes (learnplan.walk).
        # Each lane's draw thus comes from one pipeline: its rounding register has one writer.
        U = max(len(rngs), 1)
        lanes_of = [list(range(u, W, U)) for u in range(U)]    # pipeline u's lanes; its masks are compact
        req_valid = [Signal(name=f"req_valid{u}") for u in range(U)]
        req_s = [Signal(s_bits, name=f"req_s{u}") for u in range(U)]
        req_k = Signal(5)
        req_tag = [Signal(2 + tag_lane_bits + tag_call_bits + tag_drop_bits, name=f"req_tag{u}") for u in range(U)]
        accept = [Signal(name=f"accept{u}") for u in range(U)]
        for u, unit in enumerate(rngs):
            k_u = req_k if u == 0 else Const(plan.first_call, 5)     # only a lone pipeline makes noise calls
            m.d.comb += [unit.i.valid.eq(req_valid[u]), accept[u].eq(req_valid[u] & unit.i.ready),
                         unit.i.payload.as_value()[:128].eq(call_request(self.seed, self.updates, req_s[u], k_u)),
                         unit.i.payload.tag.eq(req_tag[u])]
            with m.If(accept[u]):
                m.d.sync += req_valid[u].eq(0)
        # each pipeline's lanes with calls left, and the lowest of them one-hot, a register beside
        # it (as the mirror walk's m_hot): the selects are AND-ORs, not a priority encoder and a
        # decode (found from `remaining` in front of its select, it was the ULX3S's longest path)
        remaining = [Signal(len(lanes_of[u]), name=f"remaining{u}") for u in range(U)]
        a_hot = [Signal(len(lanes_of[u]), name=f"a_hot{u}") for u in range(U)]
        kk = Signal(range(max(K, 2)))
        # each latched lane's synapse index s (numerics.md, section 5), computed when the group is
        # latched: the issue loop only selects one (its adders behind the lane select were the
        # ULX3S's longest path)
        a_s = [Signal(s_bits, name=f"a_s{lane}") for lane in range(W)] if K else []
        sel = [Signal(range(max(W, 2)), name=f"sel{u}") for u in range(U)]
        s_val = [Signal(s_bits, name=f"s_val{u}") for u in range(U)]
        for u in range(U):
            m.d.comb += [sel[u].eq(_select(a_hot[u], [Const(lane, len(sel[u])) for lane in lanes_of[u]])),
                         s_val[u].eq(_select(a_hot[u], [a_s[lane] for lane in lanes_of[u]] if a_s else []))]
        if aligned_draws:                          # the selected lane's shift, as its quantiser will have it
            sel_rate, sel_diag = Signal(range(len(plan.rates))), Signal()     # (one pipeline: all lanes)
            m.d.comb += sel_diag.eq(_select(a_hot[0], ga.diag))
            if rated:
                m.d.comb += sel_rate.eq(_select(a_hot[0], ga.rate))
            sel_sh = learn_shift(m, f, sel_rate, sel_diag, self.decay if f.decay_shift else None, "a_sh")
            sel_drop = Signal(tag_drop_bits)
            m.d.comb += sel_drop.eq(sh_top - sel_sh)
        can_load = Const(1, 1)
        for u in range(U):
            can_load = can_load & (~req_valid[u] | accept[u])

        def start_issue(lanes, prefix: bool):
            """Stage A latches a group whose lanes `lanes` make calls: each pipeline's share, and
            its lowest lane, from call 0 (of a prefix of the lanes, the share's first)."""
            out = [kk.eq(0)]
            for u in range(U):
                mine = Cat(*[lanes[lane] for lane in lanes_of[u]])
                first = Cat(mine[0], Const(0, len(mine) - 1)) if len(mine) > 1 else mine
                out += [remaining[u].eq(mine), a_hot[u].eq(first if prefix else _lowest_bit(mine, len(mine)))]
            return out

        # the issue counts follow a cycle after the requests (issue_q): the count of pipelines
        # issuing and the adder behind it were the ULX3S's longest path; stage C reads the counts
        # two slots later
        issue_q, issue_buf, issue_n = Signal(), Signal(2), Signal(range(U + 1))
        m.d.sync += issue_q.eq(0)
        for b in range(NB):
            with m.If(issue_q & (issue_buf == b)):
                m.d.sync += issued[b].eq(issued[b] + issue_n)
        d_s = []                                   # s of the candidate's lanes: i N + j, for j >= i
        for lane in range(W if K else 0):
            s_lane = Signal(s_bits, name=f"d_s{lane}")
            m.d.comb += s_lane.eq(Mux(d_rsel[lane], r_rowN1, r_rowN) + d_col[lane])
            if first_row:                          # a clamped (input) column j < i: s = j N + i
                with m.If(~(d_above[lane] | d_on_diag[lane])):
                    m.d.comb += s_lane.eq(mul_const(d_col[lane], N, s_bits) + d_row[lane])
            d_s.append(s_lane)
        with m.FSM(name="walk"):
            with m.State("SCAN"):
                with m.If(running):
                    with m.If(exhausted):
                        m.d.comb += done_a.eq(1)
                    with m.Elif(in_bias):
                        # with hw.learn_skip a bias group without a changed unit is passed over
                        b_go = (b_chg[:W] & Cat(*[bias_left > lane for lane in range(W)])).any() if skips else 1
                        if skips:
                            m.d.sync += b_chg.eq(b_chg >> W)
                        m.d.sync += [ga.valid.eq(b_go), ga.bias.eq(1), ga.buf.eq(buf_a), ga.prim.eq(0), ga.mir.eq(0),
                                     ga.diag.eq(0), ga.rsel.eq(0), ga.r0.eq(0), ga.word.eq(0), ga.part.eq(0)]
                        for lane in range(W):
                            unit = bias_next + lane
                            inside = bias_left > lane                # unit < end_row
                            m.d.sync += [ga.col[lane].eq(Mux(inside, unit, 0)), ga.prim[lane].eq(inside)]
                            if a_s:
                                m.d.sync += a_s[lane].eq(N * N + unit)
                            if rated:
                                m.d.sync += ga.rate[lane].eq(b_rate[lane])
                        m.d.sync += [bias_next.eq(bias_next + W), bias_left.eq(bias_left - W)]
                        with m.If(bias_left <= W):
                            m.d.sync += exhausted.eq(1)
                        for b in range(NB):
                            with m.If(buf_a == b):
                                m.d.sync += issued[b].eq(0)
                                m.d.comb += recv_nx[b].eq(0)
                        # lanes 0 ... bias_left - 1: a prefix, so pipeline u's lowest lane is lane u
                        b_rem = Cat(*[bias_left > lane for lane in range(W)])
                        m.d.sync += start_issue(b_rem, prefix=True)
                        with m.If(b_go):
                            m.next = "ISSUE" if K else "DONE"
                    with m.Elif(r_full):
                        # take the candidate (skipped or latched; the loader moves on)
                        m.d.comb += consume.eq(1)
                        with m.If(r_final):
                            m.d.sync += [in_bias.eq(1), bias_next.eq(first_row), bias_left.eq(end_row - first_row)]
                        # the candidate's fields are taken whether or not it is latched (a skipped
                        # candidate has no primary, mirror or diagonal lane, and ga is free while
                        # scanning): only the valid flag waits for the lanes' decode, not the
                        # enables of every field (that decode is the walk's longest path)
                        m.d.sync += [ga.valid.eq(d_prog.any()), ga.bias.eq(0), ga.buf.eq(buf_a),
                                     ga.word.eq(r_word), ga.part.eq(r_part), ga.r0.eq(r_ra), ga.prim.eq(d_prog),
                                     ga.mir.eq(d_prog_mir), ga.diag.eq(d_diag), ga.rsel.eq(d_rsel)]
                        m.d.sync += start_issue(d_prog, prefix=False)
                        m.d.sync += [ga.col[lane].eq(d_col[lane]) for lane in range(W)]
                        m.d.sync += [a.eq(d) for a, d in zip(a_s, d_s)]
                        if rated:
                            m.d.sync += [ga.rate[lane].eq(d_rate[lane]) for lane in range(W)]
                        # the buffer's counts are reset with every candidate taken, latched or
                        # not (nothing is in flight for buf_a in its stage A slot): not behind the
                        # lanes' decode, whose path to the counts across the die was the ULX3S's longest
                        for b in range(NB):
                            with m.If(buf_a == b):
                                m.d.sync += issued[b].eq(0)
                                m.d.comb += recv_nx[b].eq(0)
                        with m.If(d_prog.any()):
                            m.next = "ISSUE" if K else "DONE"
            if K:
                with m.State("ISSUE"):
                    with m.If(can_load):
                        m.d.sync += req_k.eq(first_call + kk)
                        for u in range(U):
                            m.d.sync += [req_valid[u].eq(a_hot[u].any()), req_s[u].eq(s_val[u]),
                                         req_tag[u].eq(Cat(ga.buf, sel[u][:tag_lane_bits] if W > 1 else Const(0, 1),
                                                           kk[:tag_call_bits] if K > 1 else Const(0, 1),
                                                           *([sel_drop] if aligned_draws else [])))]
                        m.d.sync += [issue_q.eq(1), issue_buf.eq(ga.buf),
                                     issue_n.eq(sum(a_hot[u].any() for u in range(U)))]
                        last_call = kk == K - 1
                        with m.If(last_call):
                            rest = [Signal(len(lanes_of[u]), name=f"rest{u}") for u in range(U)]
                            m.d.sync += kk.eq(0)
                            for u in range(U):
                                m.d.comb += rest[u].eq(remaining[u] & ~a_hot[u])
                                m.d.sync += [remaining[u].eq(rest[u]), a_hot[u].eq(_lowest_bit(rest[u], len(rest[u])))]
                            with m.If(Cat(*rest) == 0):
                                m.next = "DONE"
                        with m.Else():
                            m.d.sync += kk.eq(kk + 1)
            with m.State("DONE"):
                m.d.comb += done_a.eq(1)
                with m.If(slot_end):
                    m.next = "SCAN"

        # results: rounding draw (top LR_SHIFT + 1 bits of x0, or with per-layer rates or decay its top
        # sh bits, aligned) or a pulse's noise (bits 31..15 of x0, x1)
        if K:
            out = rng.o.payload
            t_buf = out.tag[:2]
            t_lane = out.tag[2:2 + tag_lane_bits]
            t_call = out.tag[2 + tag_lane_bits:2 + tag_lane_bits + tag_call_bits]
            t_drop = out.tag[2 + tag_lane_bits + tag_call_bits:] if aligned_draws else None
            if plan.stochastic:
                if aligned_draws:
                    rho_in = Signal(wd["rho_bits"])
                    m.d.comb += rho_in.eq(align_draw(f, out.x0, t_drop))
                else:
                    rho_in = out.x0 >> (32 - wd["rho_bits"])
            # draws arriving for buffer b this cycle (a buffer's count is reset when stage A latches
            # into it, never while its draws arrive: the If keeps that reset)
            arrived = [[r.o.valid & (r.o.payload.tag[:2] == b) for r in rngs] for b in range(NB)]
            for b in range(NB):
                with m.If(Cat(*arrived[b]).any()):
                    m.d.comb += recv_inc[b].eq(recv[b] + sum(arrived[b]))
            # rounding draws into their (buffer, lane): pipeline u's for the lanes l = u mod U (the
            # pipelines past the first carry rounding calls only)
            writes = [[(rng.o.valid & (t_call == 0), t_buf, t_lane, rho_in)] if plan.stochastic else []]
            for unit in rngs[1:]:
                out_u = unit.o.payload
                writes.append([(unit.o.valid, out_u.tag[:2], out_u.tag[2:2 + tag_lane_bits],
                                out_u.x0 >> (32 - wd["rho_bits"]))])
            # a draw for buffer b belongs to the stage holding it: A holds buf_a, the next stage the
            # one before (mod NB), and so on
            def stage_of(buf, k):
                return buf == Mux(buf_a >= k, buf_a - k, buf_a + NB - k)
            for lane in range(W):
                updated = []
                for k in range(NB):
                    value_k = rho[k][lane]
                    for valid, buf, lane_tag, value in writes[lane % U]:
                        value_k = Mux(valid & (lane_tag == lane) & stage_of(buf, k), value, value_k)
                    upd = Signal.like(rho[k][lane], name=f"rho_{stage_names[k]}{lane}_nx")
                    m.d.comb += upd.eq(value_k)
                    updated.append(upd)
                with m.If(slot_end):
                    m.d.sync += [rho[k + 1][lane].eq(updated[k]) for k in range(NB - 1)]
                with m.Else():
                    m.d.sync += [rho[k][lane].eq(updated[k]) for k in range(NB)]
            if noisy:
                pulse_index = t_call - int(plan.stochastic)
                m.d.comb += [noise_wr.addr.eq(t_buf * P_max + pulse_index),
                             noise_wr.data.eq(Cat(*[Cat(out.x0[15:], out.x1[15:])] * W))]
                is_noise = rng.o.valid & ((t_call != 0) if plan.stochastic else 1)
                for lane in range(W):
                    m.d.comb += noise_wr.en[lane].eq(is_noise & (t_lane == lane))

        # -- stage B: correlation over the minibatch --------------------------------------------------
        # Paired: sample b's HI and LO in cycle b, the rows' activations from the learner's own
        # copies (rows r0 and r0 + 1: a group spans at most two), as the lanes' come from theirs.
        # Otherwise slot it >> 1's HI in even cycles and LO in odd ones, the rows' fixed points from
        # the central memory (fp_a, fp_b), for tanh through an activation lookup (a cycle more).
        corr = []
        reads = B if paired else 2 * B
        read_lat = 1 if f.hard or paired else 2
        it = cyc[:ceil_log2(reads) + 1]
        b_slot = Signal(slot_bits)
        b_hi = Signal()
        m.d.comb += [b_slot.eq(it if paired else it >> 1), b_hi.eq(~it[0])]
        b_issue = gb.valid & (cyc < reads)
        valid_pipe, sub_pipe = [b_issue], [~b_hi]
        for d in range(read_lat):
            v, s_ = Signal(name=f"bv{d}"), Signal(name=f"bs{d}")
            m.d.sync += [v.eq(valid_pipe[-1]), s_.eq(sub_pipe[-1])]
            valid_pipe.append(v)
            sub_pipe.append(s_)
        if paired:
            rows = []
            for k, name in enumerate(sets):
                mem = copy_memory(f"row_{name}", k, 2)
                m.d.comb += [mem.a_addr.eq(Cat(gb.r0[:n_bits], b_slot)),
                             mem.b_addr.eq(Cat((gb.r0 + 1)[:n_bits], b_slot))]
                rows.append((mem.a_data, mem.b_data))
        else:
            b_set = Mux(b_hi, hm.SET_HI, hm.SET_LO)
            m.d.comb += [self.fp_a.addr.eq(Cat(gb.r0[:n_bits], b_slot, Const(0, 2) | b_set)),
                         self.fp_b.addr.eq(Cat((gb.r0 + 1)[:n_bits], b_slot, Const(0, 2) | b_set))]
            if f.hard:
                rows = [(self.fp_a.data, self.fp_b.data)]
            else:
                act_a, act_b = act_port("act_row_a"), act_port("act_row_b")
                m.d.comb += [act_a.addr.eq(self.fp_a.data - f.lo), act_b.addr.eq(self.fp_b.data - f.lo)]
                rows = [(act_a.data, act_b.data)]
        # the rows' operands (2^fa for biases), once for all lanes; the lanes subtract the LO set
        ops = []
        for k, (row_a, row_b) in enumerate(rows):
            op_a, op_b = Signal(signed(a_bits), name=f"op_a{k}"), Signal(signed(a_bits), name=f"op_b{k}")
            m.d.comb += [op_a.eq(CorrelatorLane.row_operand(f, row_a, gb.bias)),
                         op_b.eq(CorrelatorLane.row_operand(f, row_b, gb.bias))]
            ops.append((op_a, op_b))
        for lane in range(W):
            m.d.comb += lane_addr[lane].eq(Cat(gb.col[lane][:n_bits], b_slot, *([] if paired else [b_hi])))
            cl = CorrelatorLane(f, paired=paired, dsp=self.dsp)
            m.submodules[f"corr{lane}"] = cl
            operands = []
            for k, (op_a, op_b) in enumerate(ops):
                col_a = lane_data[k][lane]
                if read_lat == 2:                  # the column's activation waits for the row's lookup
                    delayed = Signal(signed(a_bits), name=f"col_d{lane}")
                    m.d.sync += delayed.eq(col_a)
                    col_a = delayed
                operands.append((Mux(gb.rsel[lane], op_b, op_a), col_a))
            (row_hi, col_hi), *lo = operands
            m.d.comb += [cl.clear.eq(b_first), cl.valid.eq(valid_pipe[-1]), cl.a_row.eq(row_hi), cl.a_col.eq(col_hi)]
            if paired:
                m.d.comb += [cl.a_row_lo.eq(lo[0][0]), cl.a_col_lo.eq(lo[0][1])]
            else:
                m.d.comb += cl.sub.eq(sub_pipe[-1])
            corr.append(cl.corr)
        b_cycles = reads - 1 + read_lat + CORRELATOR_LATENCY
        assert b_cycles == stage_b_cycles(B, W, f.hard)
        m.d.comb += done_b.eq(~gb.valid | (cyc >= b_cycles))

        # -- stage C: quantise and program ----------------------------------------------------------
        quant, pulse = [], []
        narrow = W <= 2            # few quantisers: x LR_MUL in DSP blocks, whose lanes are few too
        for lane in range(W):
            qz = Quantiser(f, dsp=narrow)
            pl = PulseLane(f)
            m.submodules[f"quant{lane}"] = qz
            m.submodules[f"pulse{lane}"] = pl
            quant.append(qz)
            pulse.append(pl)
        # UP / DOWN tables: one ROM copy per two lanes (a dual-port block RAM)
        image = PulseLane.table_image(f)
        for lane in range(W):
            if lane % 2 == 0:
                rom = memory.Memory(shape=unsigned(wd["code_bits"]), depth=len(image), init=image)
                m.submodules[f"pulse_rom{lane // 2}"] = rom
            port = rom.read_port()
            m.d.comb += [port.addr.eq(pulse[lane].table_addr), pulse[lane].table_data.eq(port.data)]
        # stage C's own "all draws in": the flag of the buffer it will hold next cycle, registered
        c_ready = Signal(init=1)
        next_c_buf = Mux(slot_end, gb.buf, gc.buf)
        for b in range(NB):
            with m.If(next_c_buf == b):
                m.d.sync += c_ready.eq(recv_inc[b] == issued[b])
        # a stream group's entries, registered per lane from the word read in cycle 0 (block RAM
        # output, a route across the die and the lanes' entry select in one cycle were the ULX3S's
        # longest path), in the lanes in cycle 2
        c_entry = [Signal(E, name=f"c_entry{lane}") for lane in range(W)]
        for part in range(parts):
            with m.If(gc.part == part):
                for lane in range(W):
                    q = part * W + lane
                    if q < P:
                        m.d.sync += c_entry[lane].eq(self.codes.r_data.word_select(q, E))
        bias_read_addr = Signal(n_bits)
        # the bias entry registered once beside its block RAM before it fans out to the lanes
        # (block RAM output, route across the die and the lanes' entry select in one cycle were
        # the ULX3S's longest path)
        bias_entry = Signal(E)
        m.d.sync += bias_entry.eq(self.bias.r_data)
        p_round = Signal(range(P_max + 1))
        # phase b (the state PULSE_B) as a register of its own, set and cleared with the moves: it
        # enables every lane's code registers, and the state's decode ahead of that fan-out was
        # the ULX3S's longest path
        c_phase_a, c_phase_b, c_round = Signal(), Signal(), Signal()
        # the round counter repeated per group of lanes (fanout.py): one register driving every
        # lane's compare was the ULX3S's longest route. A bit wider, so the copies' inits differ;
        # they are cleared at each group's rounding.
        p_copy = lane_copies("p_round", len(p_round) + ceil_log2(W + 1), W)
        # each lane's entry load as a register from the next counter and the group the slot end
        # moves on (the counter's compares fanned out to every lane's code registers were among
        # the ULX3S's longest paths; one lane keeps the compares, which take fewer logic cells)
        c_load = Signal(W)
        if W > 1:
            next_c_valid, next_c_bias = Mux(slot_end, gb.valid, gc.valid), Mux(slot_end, gb.bias, gc.bias)
            m.d.sync += c_load.eq(Cat(*[next_c_valid & Mux(next_c_bias, cyc_nx == lane + 2, cyc_nx == 2)
                                        for lane in range(W)]))
            start_clear.append(c_load)
        else:
            m.d.comb += c_load.eq(gc.valid & (cyc == 2))
        for lane in range(W):
            qz, pl = quant[lane], pulse[lane]
            # a lane without a primary copy quantises 0: no pulses, no extra rounds
            m.d.comb += [qz.load.eq(slot_end & gb.valid), qz.corr.eq(Mux(gb.prim[lane], corr[lane], 0)),
                         qz.diag.eq(gb.diag[lane]),
                         qz.scale.eq(c_first), qz.round.eq(c_round), qz.rho.eq(rho[-1][lane]),
                         pl.n_mag.eq(qz.n_mag), pl.neg.eq(qz.neg), pl.p.eq(p_copy[copy_of(lane)]),
                         pl.phase_a.eq(c_phase_a), pl.phase_b.eq(c_phase_b)]
            if rated:
                m.d.comb += qz.rate.eq(gb.rate[lane])          # latched with C at load
            if f.decay_shift:
                m.d.comb += qz.decay.eq(self.decay)
            if noisy:
                m.d.comb += pl.noise.eq(noise_rd.data.word_select(lane, 2 * NOISE_BITS))
            # entries: stream codes in cycle 2; bias lane l's code in cycle l + 2
            m.d.comb += [pl.load.eq(c_load[lane]), pl.entry.eq(Mux(gc.bias, bias_entry, c_entry[lane]))]
        # bias lane l's read in cycle l: a parallel multiplexer (a chain of W priority muxes here was
        # the ULX3S's longest path), selected by a one-hot register of "cycle l of a bias group"
        # (from the next counter: the counter's compares off the block RAM's address path)
        if W > 1:
            rd_hot = Signal(W)
            next_bias_c = Mux(slot_end, gb.valid & gb.bias, gc.valid & gc.bias)
            m.d.sync += rd_hot.eq(Mux(next_bias_c, Cat(*[cyc_nx == lane for lane in range(W)]), 0))
            m.d.comb += bias_read_addr.eq(_select(rd_hot, [gc.col[lane][:n_bits] for lane in range(W)]))
            start_clear.append(rd_hot)
        else:
            with m.If(gc.valid & gc.bias & (cyc == 0)):
                m.d.comb += bias_read_addr.eq(gc.col[0][:n_bits])
        if noisy:
            m.d.comb += noise_rd.addr.eq(gc.buf * P_max + p_round)
        more = Signal()
        m.d.comb += more.eq(Cat(*[quant[lane].n_mag > p_round for lane in range(W)]).any())
        carrying = cfg.fixed.rounding == "carry"
        # "the slot counter has reached this group's earliest rounding cycle", a register computed
        # from the next counter and the next group's kind, like b_first and c_first
        c_early = Signal()
        next_bias = Mux(slot_end, gb.bias, gc.bias)
        m.d.sync += c_early.eq(cyc_nx >= Mux(next_bias, round_earliest(carrying, True, W),
                                             round_earliest(carrying, False, W)))
        with m.FSM(name="program"):
            with m.State("WAIT"):
                with m.If(~gc.valid):
                    m.d.comb += done_c.eq(1)
                with m.Elif(c_early & c_ready):
                    m.d.comb += c_round.eq(1)
                    m.d.sync += [p_round.eq(0), *[p.eq(0) for p in p_copy]]
                    m.next = "PULSE_A"
            with m.State("PULSE_A"):
                with m.If(more):
                    m.d.comb += c_phase_a.eq(1)
                    m.d.sync += c_phase_b.eq(1)
                    m.next = "PULSE_B"
                with m.Else():
                    m.d.comb += done_c.eq(1)
                    with m.If(slot_end):
                        m.next = "WAIT"
            with m.State("PULSE_B"):
                m.d.sync += [c_phase_b.eq(0), p_round.eq(p_round + 1), *[p.eq(p + 1) for p in p_copy]]
                m.next = "PULSE_A"

        # -- stage D: write the programmed copies and their mirrors ---------------------------------
        d_entry = [Signal(E, name=f"d_entry{lane}") for lane in range(W)]
        d_nz = Signal(W)
        with m.If(slot_end):
            m.d.sync += [d_entry[lane].eq(pulse[lane].entry_out) for lane in range(W)]
            m.d.sync += d_nz.eq(Cat(*[quant[lane].n_mag != 0 for lane in range(W)]))
        own_en = gd.prim & d_nz
        # own write (cycle 1): the group's primary lanes at their stream lanes. When W divides P,
        # stream lane q always carries learning lane q mod W's entry: wiring, no multiplexer.
        own_data = Signal(P * E)
        own_mask = Signal(P)
        aligned = P % W == 0
        for part in range(parts):
            with m.If(gd.part == part):
                slices, mask = [], []
                for q in range(P):
                    lane = q - part * W
                    inside = 0 <= lane < W
                    slices.append(d_entry[q % W] if aligned else (d_entry[lane] if inside else Const(0, E)))
                    mask.append(own_en[lane] if inside else Const(0, 1))
                m.d.comb += own_mask.eq(Cat(*mask))
                if not aligned:
                    m.d.comb += own_data.eq(Cat(*slices))
        if aligned:
            m.d.comb += own_data.eq(Cat(*[d_entry[q % W] for q in range(P)]))
        # mirrors: lookup at cycle c, write at c + 2
        base = [int(v) for v in plan.mirror_base]
        mbits = plan.mirror_bits
        # a wide learner's mirror ROM is a block RAM, not LUTs: its read is then a register inside
        # the block, and only the lane select lies on the address path (with a LUT ROM behind the
        # select, the ULX3S's slowest path). The narrow learners of the small FPGAs keep it in LUTs.
        mrom = memory.Memory(shape=signed(mbits), depth=max(N, 1), init=base,
                             attrs={"ram_style": "block"} if W >= 8 else None)
        m.submodules.mirror_base = mrom
        mrd = mrom.read_port()
        # the lanes with a mirror left (m_rem) and the lowest of them, one-hot (m_hot): both are
        # registers, the next lowest found while this one is looked up, so the selects below are
        # AND-ORs from a register (a priority encoder ahead of them was the ULX3S's longest path)
        # `m_any` (m_hot.any()) and `past_0` (cyc >= 1) are registers of their own, kept with
        # m_hot and cyc: as an OR over the lanes and a compare they sat ahead of these registers'
        # enables (the unfolded ULX3S design's longest path with the MULT18X18D multipliers)
        m_rem, m_hot, m_new = Signal(W), Signal(W), Signal(W)
        m_any, past_0 = Signal(), Signal()
        m.d.sync += past_0.eq(cyc_nx != 0)
        start_clear.append(past_0)                 # with cyc, cleared in INIT
        m.d.comb += m_new.eq(gc.mir & Cat(*[quant[lane].n_mag != 0 for lane in range(W)]))
        with m.If(slot_end):
            m.d.sync += [m_rem.eq(m_new), m_hot.eq(_lowest_bit(m_new, W)), m_any.eq(m_new.any())]
        m_col, m_rsel = Signal(n_bits + 1), Signal()
        m.d.comb += [m_col.eq(_select(m_hot, gd.col)), m_rsel.eq(_select(m_hot, gd.rsel))]
        lookup = gd.valid & ~gd.bias & past_0 & m_any
        m.d.comb += mrd.addr.eq(m_col[:n_bits])
        with m.If(lookup):
            m_rest = m_rem & ~m_hot
            m.d.sync += [m_rem.eq(m_rest), m_hot.eq(_lowest_bit(m_rest, W)), m_any.eq(m_rest.any())]
        mw_valid, mw_row, mw_entry = Signal(), Signal(n_bits + 1), Signal(E)
        gd_r1 = Signal.like(gd.r0)                 # gd.r0 + 1, kept: no adder behind the lane select
        with m.If(slot_end):
            m.d.sync += gd_r1.eq(gc.r0 + 1)
        m.d.sync += [mw_valid.eq(lookup), mw_row.eq(Mux(m_rsel, gd_r1, gd.r0)), mw_entry.eq(_select(m_hot, d_entry))]
        pos = Signal(mbits)
        m.d.comb += pos.eq(mrd.data + mw_row)
        lane_bits = max(ceil_log2(P), 1)
        # the position is registered before it splits into word and lane: the mirror ROM's data
        # and the adder stay off the code memory's address (a path into every code block RAM)
        w_valid, w_pos, w_entry = Signal(), Signal(mbits), Signal(E)
        m.d.sync += [w_valid.eq(mw_valid), w_pos.eq(pos), w_entry.eq(mw_entry)]
        if plan.pow2_lanes:
            w_word, w_lane = (w_pos >> ceil_log2(P)) if P > 1 else w_pos, (w_pos[:ceil_log2(P)] if P > 1 else Const(0, 1))
        else:
            shift = mbits + ceil_log2(P) + 1
            recip = -(-(1 << shift) // P)
            for k in range(sch.length + 1):          # exact for every stream position
                assert (k * recip) >> shift == k // P
            w_word = Signal(word_bits)
            m.d.comb += w_word.eq(mul_const(w_pos[:mbits - 1], recip, shift + mbits) >> shift)
            w_lane = Signal(lane_bits)
            m.d.comb += w_lane.eq(w_pos - mul_const(w_word, P, mbits))
        pending = mw_valid
        # one port each: the code word of stage C is read in cycle 0, D writes from cycle 1 on
        m.d.comb += self.codes.addr.eq(gc.word)
        # the own write (a stream group's cycle 1) as a register, set in cycle 0 of a running slot:
        # it selects the code memory's address, and a compare of the slot counter ahead of that
        # select was the ULX3S's longest path
        own = Signal()
        m.d.sync += own.eq(running & ~slot_end & (cyc == 0) & gd.valid & ~gd.bias)
        if W == 1:                                # every write carries the one lane's entry
            m.d.comb += self.codes.w_data.eq(own_data)
        else:
            m.d.comb += self.codes.w_data.eq(Mux(own, own_data, Cat(*[w_entry] * P)))
        with m.If(own):
            m.d.comb += [self.codes.addr.eq(gd.word), self.codes.w_en.eq(own_mask)]
        with m.Elif(w_valid):
            m.d.comb += [self.codes.addr.eq(w_word), self.codes.w_en.eq(1 << w_lane)]
        # bias entries: C reads lane l in cycle l, D writes lane l in cycle W + l
        bias_count = Signal(range(W + 1))
        m.d.comb += [bias_count.eq(sum(gd.prim[lane] for lane in range(W))), self.bias.addr.eq(bias_read_addr)]
        # lane l's write (cycle W + l) is registered from cycle W + l - 1: one case per cycle, so
        # the entry select is a parallel multiplexer off the write port's path. One lane has no
        # select, and its registers would only cost logic cells (the iCEBreaker is 98 % full).
        b_w_en, b_w_addr, b_w_data = Signal(), Signal(n_bits), Signal(E)
        if W > 1:
            # which lane is written next, one-hot, registered from the next counter
            wr_hot = Signal(W)
            m.d.sync += wr_hot.eq(Cat(*[cyc_nx == W + lane - 1 for lane in range(W)]))
            start_clear.append(wr_hot)
            m.d.sync += b_w_en.eq(gd.valid & gd.bias & (wr_hot & gd.prim).any())
            with m.If(wr_hot.any()):
                m.d.sync += [b_w_addr.eq(_select(wr_hot, [gd.col[lane][:n_bits] for lane in range(W)])),
                             b_w_data.eq(_select(wr_hot, d_entry))]
        else:
            with m.If(cyc == W):
                m.d.comb += [b_w_en.eq(gd.valid & gd.bias & gd.prim[0]), b_w_addr.eq(gd.col[0][:n_bits]),
                             b_w_data.eq(d_entry[0])]
        with m.If(b_w_en):
            m.d.comb += [self.bias.w_en.eq(1), self.bias.addr.eq(b_w_addr), self.bias.w_data.eq(b_w_data)]
        if carrying:
            self._carries(m, gc, gd, cyc, quant, slot_end, bias_read_addr, own)
        with m.If(~gd.valid):
            m.d.comb += done_d.eq(1)
        with m.Elif(gd.bias):
            m.d.comb += done_d.eq(cyc >= W + bias_count - 1)
        with m.Else():
            m.d.comb += done_d.eq(past_0 & ~m_any & ~pending)

        # -- start and finish --------------------------------------------------------------------
        # `active` (not IDLE) is a register of its own, set and cleared with the state's moves: it
        # selects the code memory's address, and a decode of the state ahead of that select was
        # the ULX3S's longest path
        busy = Signal()
        m.d.comb += self.active.eq(busy)
        with m.FSM(name="learn"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += busy.eq(1)
                    m.next = "INIT"
            with m.State("INIT"):                 # the stream presents word 0 next
                # the walk's registers start over here, not on `start` (a decode of the controller's
                # state: its fan-out to them was the ULX3S's longest path)
                m.d.comb += self.stream.restart.eq(1)
                m.d.sync += [cand_word.eq(0), cand_part.eq(0), prev_ra.eq(first_row), prev_ends.eq(0),
                             prev_rowN.eq(first_row * N), prev_rowN1.eq((first_row + 1) * N),
                             prev_rowN2.eq((first_row + 2) * N),
                             r_full.eq(0), loaded_all.eq(0),
                             in_bias.eq(0), exhausted.eq(0), ga.valid.eq(0), *([ga2.valid.eq(0)] if ga2 else []),
                             gb.valid.eq(0), gc.valid.eq(0), gd.valid.eq(0), buf_a.eq(0), cyc.eq(0),
                             *[r.eq(0) for r in start_clear]]
                if skips:
                    m.d.sync += b_chg.eq(tracker.changed[first_row:])
                    with m.If(settling):           # a STORE event still on its way to `any_changed`
                        m.next = "INIT"
                    with m.Elif(tracker.any_changed):
                        m.d.sync += a_fill.eq(1)
                        m.next = "PREFILL"
                    with m.Else():                 # no unit changed: every update is zero
                        m.next = "FINISH"
                else:
                    m.d.sync += a_fill.eq(1)
                    m.next = "FILL"
            if skips:
                with m.State("PREFILL"):          # the first candidate into `pre`
                    m.next = "FILL"
            with m.State("FILL"):                 # the loader takes the first candidate
                m.d.sync += running.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                in_flight = [g.valid for g in (ga, ga2, gb, gc) if g is not None]   # ga2 is pre_b if there
                with m.If(slot_end & ~Cat(*in_flight).any()):
                    m.d.sync += [running.eq(0), a_fill.eq(0)]
                    m.next = "FINISH"
            with m.State("FINISH"):
                m.d.comb += self.done.eq(1)
                m.d.sync += busy.eq(0)
                m.next = "IDLE"
        return m

    def _carries(self, m, gc: _Group, gd: _Group, cyc, quant, slot_end, bias_read_addr, own):
        """Rounding "carry": every synapse's carry beside its primary code (one word of P carries per
        stream word) and every bias's. Stage C reads them with the codes, its quantisers take them
        before rounding; stage D writes the new ones with the primary codes. A host write of a code
        or bias zeroes its carry (`carry_clear`), in the bank written."""
        plan, lay, P, W = self.plan, self.layout, self.cfg.hw.lanes, self.plan.width
        Fb, n_bits, N = CARRY_FRAC + 1, self.n_bits, self.cfg.network.n
        word_bits = len(self.codes.addr)
        D = lay.schedule.depth

        def at(addr, width, bank=self.bank):
            return Cat(addr[:width], bank) if self.banked else addr[:width]

        words = memory.Memory(shape=unsigned(P * Fb), depth=(1 << word_bits) + D if self.banked else D, init=[])
        units = memory.Memory(shape=signed(Fb), depth=(1 << n_bits) + N if self.banked else N, init=[])
        m.submodules.carry_words, m.submodules.carry_biases = words, units
        self.carry_words, self.carry_biases = words, units      # for testbenches (tests/rtl/test_learner.py)
        w_wr, w_rd = words.write_port(granularity=Fb), words.read_port()
        b_wr, b_rd = units.write_port(), units.read_port()
        m.d.comb += [w_rd.addr.eq(at(gc.word, word_bits)), b_rd.addr.eq(at(bias_read_addr, n_bits))]
        # stage C: a stream group's carries in cycle 1 (the word read in cycle 0), bias lane l's in l + 1
        for lane, qz in enumerate(quant):
            c_carry = Signal(signed(Fb), name=f"c_carry{lane}")
            for part in range(plan.parts):
                q = part * W + lane
                if q < P:
                    with m.If(gc.part == part):
                        m.d.comb += c_carry.eq(w_rd.data.word_select(q, Fb))
            m.d.comb += [qz.carry_in.eq(Mux(gc.bias, b_rd.data, c_carry)),
                         qz.carry_load.eq(gc.valid & Mux(gc.bias, cyc == lane + 1, cyc == 1))]
        # stage D: the new carries, taken when the slot ends (as the programmed entries)
        d_carry = [Signal(signed(Fb), name=f"d_carry{lane}") for lane in range(W)]
        with m.If(slot_end):
            m.d.sync += [d_carry[lane].eq(quant[lane].carry_out) for lane in range(W)]
        with m.If(own):                                  # with the own write: every primary lane
            m.d.comb += [w_wr.addr.eq(at(gd.word, word_bits)),
                         w_wr.data.eq(Cat(*[d_carry[q % W] for q in range(P)]) if P % W == 0 else 0)]
            for part in range(plan.parts):
                with m.If(gd.part == part):
                    for q in range(P):
                        lane = q - part * W
                        if 0 <= lane < W:
                            m.d.comb += w_wr.en[q].eq(gd.prim[lane])
                            if P % W:
                                m.d.comb += w_wr.data.word_select(q, Fb).eq(d_carry[lane])
        for lane in range(W):                            # bias lane l: with its entry, cycle W + l
            with m.If(gd.valid & gd.bias & (cyc == W + lane) & gd.prim[lane]):
                m.d.comb += [b_wr.en.eq(1), b_wr.addr.eq(at(gd.col[lane], n_bits)), b_wr.data.eq(d_carry[lane])]
        clear = self.carry_clear
        with m.If(clear.valid & clear.bias):
            m.d.comb += [b_wr.en.eq(1), b_wr.addr.eq(at(clear.unit, n_bits, clear.bank)), b_wr.data.eq(0)]
        with m.If(clear.valid & ~clear.bias):
            m.d.comb += [w_wr.addr.eq(at(clear.word, word_bits, clear.bank)), w_wr.data.eq(0),
                         w_wr.en.eq(1 << clear.lane if P > 1 else 1)]
