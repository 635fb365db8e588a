"""The learning unit: in-situ EqProp, one synapse at a time (docs/numerics.md, section 5).

It walks the synapse stream in order. For every real entry (i, j) it computes the
correlation difference C over the minibatch's stored fixed points, quantises it into a
pulse count with the specified rounding (random bits from Threefry, keyed by the unordered
pair), and programs the device codes pulse by pulse through the UP/DOWN tables. Both
copies (i, j) and (j, i) of a symmetric weight are streamed; each is updated by this same
computation from the same inputs and the same random numbers, so the copies stay equal by
construction. Then every free unit's bias is updated the same way.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring

from memprop.model.config import Config
from memprop.model.numerics import bitlen_signed

from . import hostmap as hm
from .ports import LearnerPort
from .schedule import ceil_log2
from .threefry import RAND_KEY1, Threefry2x32


def _times(value, constant: int):
    """value * constant as shifts and adds (a constant multiply needs no DSP block)."""
    terms = [value << k for k in range(int(constant).bit_length()) if constant >> k & 1]
    return sum(terms[1:], terms[0]) if terms else value * 0


class Learner(wiring.Component):
    def __init__(self, cfg: Config, layout: hm.Layout):
        self.cfg = cfg
        self.layout = layout
        self.word_bits = max(ceil_log2(layout.schedule.depth), 1)
        self.n_bits = layout.n_bits
        super().__init__(LearnerPort.for_layout(layout))

    def elaborate(self, platform):
        m = Module()
        lay, cfg = self.layout, self.cfg
        f, sch, tables = lay.fmt, lay.schedule, lay.fmt.device
        P, E, N = cfg.hw.lanes, lay.entry_bits, cfg.network.n
        n_bits, lane_bits = self.n_bits, lay.lane_bits
        B = lay.batch
        a_bits = bitlen_signed(max(f.a_max, 1 << f.fa))
        mul, lr_shift = f.lr_fixed
        p_max = f.max_pulses
        top = tables.levels - 1
        rounding = cfg.fixed.rounding
        c2c = tables.c2c_threshold
        first_row, n_rows = int(sch.rows[0]), len(sch.rows)
        length = sch.length
        devices, code_bits, class_bits = lay.devices, lay.code_bits, lay.class_bits
        corr_bits = bitlen_signed(f.corr_bound)
        q_bits = corr_bits + 8

        m.submodules.rng = rng = Threefry2x32()

        # UP / DOWN tables, addressed by {class, code}
        size = 1 << (class_bits + code_bits)
        up_init, down_init = [0] * size, [0] * size
        for cls in range(tables.classes):
            for c in range(tables.levels):
                up_init[(cls << code_bits) | c] = int(tables.up[cls, c])
                down_init[(cls << code_bits) | c] = int(tables.down[cls, c])
        m.submodules.up_rom = up_rom = memory.Memory(shape=unsigned(code_bits), depth=size, init=up_init)
        m.submodules.down_rom = down_rom = memory.Memory(shape=unsigned(code_bits), depth=size, init=down_init)
        up_rd, down_rd = up_rom.read_port(), down_rom.read_port()
        if not f.hard:
            lut = [int(v) for v in f.act_lut]
            m.submodules.act_a = act_a = memory.Memory(shape=signed(a_bits), depth=len(lut), init=lut)
            m.submodules.act_b = act_b = memory.Memory(shape=signed(a_bits), depth=len(lut), init=lut)
            act_a_rd, act_b_rd = act_a.read_port(), act_b.read_port()

        # -- walk state --------------------------------------------------------------------
        k = Signal(range(length + 1))          # stream position
        word = Signal(self.word_bits)
        lane = Signal(max(lane_bits, 1))
        row = Signal(n_bits + 1)               # row of the stream position
        i_reg, j_reg = Signal(n_bits), Signal(n_bits)
        is_bias = Signal()
        s_reg = Signal(32)
        diag = Signal()
        bias_row = Signal(range(n_rows + 1))

        m.d.comb += [self.codes.addr.eq(word), self.bias.addr.eq(i_reg)]

        # entry fields of the current lane (the stream presents the word of position k)
        entry = self.stream.entries[lane if lane_bits else 0]
        e_valid, e_last, e_col = entry.valid, entry.last, entry.col

        # -- correlation ---------------------------------------------------------------------
        phase = Signal(range(2 * B + 1))       # issue counter: even = HI set, odd = LO set
        corr = Signal(signed(corr_bits))
        # pipeline: issue (addresses) -> data (state) [-> activation table] -> accumulate
        # (+1: the multiplier's operands are registered, so it sits wholly inside a DSP block)
        depth = (1 if f.hard else 2) + 1
        valid_pipe = [Signal(name=f"cv{d}") for d in range(depth)]
        neg_pipe = [Signal(name=f"cn{d}") for d in range(depth)]
        issuing = Signal()
        slot = phase[1:]
        set_bits = Mux(phase[0], hm.SET_LO, hm.SET_HI)
        m.d.comb += [self.fp_a.addr.eq(Cat(i_reg, slot[:lay.slot_bits], Const(0, 2) | set_bits)),
                     self.fp_b.addr.eq(Cat(j_reg, slot[:lay.slot_bits], Const(0, 2) | set_bits))]
        m.d.sync += [valid_pipe[0].eq(issuing), neg_pipe[0].eq(phase[0])]
        for d in range(1, depth):
            m.d.sync += [valid_pipe[d].eq(valid_pipe[d - 1]), neg_pipe[d].eq(neg_pipe[d - 1])]
        if f.hard:
            act_i, act_j = self.fp_a.data, self.fp_b.data
        else:
            m.d.comb += [act_a_rd.addr.eq(self.fp_a.data - f.lo), act_b_rd.addr.eq(self.fp_b.data - f.lo)]
            act_i, act_j = act_a_rd.data, act_b_rd.data
        op_i, op_j = Signal(signed(a_bits), name="op_i"), Signal(signed(a_bits), name="op_j")
        m.d.sync += [op_i.eq(act_i), op_j.eq(Mux(is_bias, 1 << f.fa, act_j))]
        product = Signal(signed(2 * a_bits + 1))
        m.d.comb += product.eq(op_i * op_j)
        clear_corr = Signal()
        with m.If(clear_corr):
            m.d.sync += corr.eq(0)
        with m.Elif(valid_pipe[-1]):
            m.d.sync += corr.eq(Mux(neg_pipe[-1], corr - product, corr + product))

        # -- random numbers --------------------------------------------------------------------
        draw = Signal(6)
        rand_word = Signal(32)
        m.d.comb += [rng.i.payload.c0.eq(self.updates), rng.i.payload.c1.eq((s_reg << 6) | draw),
                     rng.i.payload.k0.eq(self.seed), rng.i.payload.k1.eq(RAND_KEY1),
                     rng.o.ready.eq(1)]
        with m.If(rng.o.valid):
            m.d.sync += rand_word.eq(rng.o.payload.x0)
        rand_req = Signal()
        rand_busy = Signal()
        m.d.comb += rng.i.valid.eq(rand_req)
        with m.If(rand_req & rng.i.ready):
            m.d.sync += rand_busy.eq(1)
        with m.If(rng.o.valid):
            m.d.sync += rand_busy.eq(0)

        # -- quantisation (combinational from corr and the draw) --------------------------------
        # registered: the correlation is final one cycle before QUANT (the drain's last cycle)
        q = Signal(signed(q_bits))
        m.d.sync += q.eq(_times(corr, mul))
        mag = Signal(q_bits)
        m.d.comb += mag.eq(Mux(q < 0, -q, q))
        pulses_mag = Signal(max(q_bits, lr_shift + 2) + 2)
        for sh_extra in (0, 1):
            sh = lr_shift + sh_extra
            with m.If(diag == sh_extra):
                if rounding == "truncate":
                    m.d.comb += pulses_mag.eq(mag >> sh)
                elif rounding == "nearest":
                    m.d.comb += pulses_mag.eq((mag + (1 << (sh - 1))) >> sh)
                else:
                    m.d.comb += pulses_mag.eq((mag + (rand_word >> (32 - sh))) >> sh)
        n_mag = Signal(range(p_max + 1))
        n_neg = Signal()
        n_reg = Signal(range(p_max + 1))
        neg_reg = Signal()
        m.d.comb += [n_mag.eq(Mux(pulses_mag > p_max, p_max, pulses_mag)), n_neg.eq(q < 0)]

        # -- device state during pulse programming ----------------------------------------------
        codes = [Signal(code_bits, name=f"code{d}") for d in range(devices)]
        classes = [Signal(max(class_bits, 1), name=f"class{d}") for d in range(devices)]
        entry_in = Signal(E)
        m.d.comb += entry_in.eq(Mux(is_bias, self.bias.r_data,
                                    self.codes.r_data.word_select(lane if lane_bits else 0, E)))
        pulse = Signal(range(p_max + 1))
        dev = Signal()
        potentiate = Signal()
        if devices == 1:
            m.d.comb += [dev.eq(0), potentiate.eq(~neg_reg)]
        else:
            primary_code = Mux(neg_reg, codes[1], codes[0])
            saturated = primary_code >= top
            m.d.comb += [dev.eq(Mux(saturated, ~neg_reg, neg_reg)), potentiate.eq(~saturated)]
        dev_code = codes[0] if devices == 1 else Mux(dev, codes[1], codes[0])
        dev_class = classes[0] if devices == 1 else Mux(dev, classes[1], classes[0])
        table_addr = Cat(dev_code, dev_class[:class_bits]) if class_bits else dev_code
        m.d.comb += [up_rd.addr.eq(table_addr), down_rd.addr.eq(table_addr)]
        stepped = Signal(code_bits)
        dev_reg, pot_reg = Signal(), Signal()
        entry_out = Signal(E)
        parts = []
        for d in range(devices):
            parts += [codes[d]] + ([classes[d][:class_bits]] if class_bits else [])
        m.d.comb += entry_out.eq(Cat(*parts))
        m.d.comb += [self.codes.w_data.eq(Cat(*[entry_out] * P)), self.bias.w_data.eq(entry_out)]

        def set_code(d_sel, value):
            for d in range(devices):
                with m.If(d_sel == d):
                    m.d.sync += codes[d].eq(value)

        # -- the walk ------------------------------------------------------------------------------
        m.d.comb += self.active.eq(1)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.active.eq(0)
                with m.If(self.start):
                    m.d.sync += [k.eq(0), word.eq(0), lane.eq(0), row.eq(first_row), is_bias.eq(0),
                                 bias_row.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):            # the stream presents the word of position k next
                m.d.comb += [self.stream.restart.eq(k == 0), self.stream.advance.eq((k != 0) & (lane == 0))]
                m.next = "ENTRY"
            with m.State("ENTRY"):
                lo = Mux(row < e_col, row, e_col)
                hi = Mux(row < e_col, e_col, row)
                m.d.sync += [i_reg.eq(row), j_reg.eq(e_col), s_reg.eq(_times(lo, N) + hi), diag.eq(row == e_col),
                             draw.eq(0)]
                with m.If(e_last):
                    m.d.sync += row.eq(row + 1)
                with m.If(e_valid):
                    m.next = "SETUP"
                with m.Else():
                    m.next = "ADVANCE"
            with m.State("SETUP"):
                m.d.comb += clear_corr.eq(1)
                m.d.sync += phase.eq(0)
                if rounding == "stochastic":
                    m.d.comb += rand_req.eq(1)
                m.next = "CORR"
            with m.State("CORR"):
                m.d.comb += issuing.eq(1)
                m.d.sync += phase.eq(phase + 1)
                with m.If(phase == 2 * B - 1):
                    m.next = "CORR_DRAIN"
            with m.State("CORR_DRAIN"):
                drain = Signal(range(depth + 2))
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == depth):
                    m.d.sync += drain.eq(0)
                    m.next = "QUANT"
            with m.State("QUANT"):
                with m.If(~rand_busy):
                    m.d.sync += [n_reg.eq(n_mag), neg_reg.eq(n_neg), pulse.eq(0)]
                    with m.If(n_mag == 0):
                        m.next = "ADVANCE"
                    with m.Else():
                        m.next = "READ"
            with m.State("READ"):             # code word (or bias) being read
                m.next = "LATCH"
            with m.State("LATCH"):
                at = 0
                for d in range(devices):
                    m.d.sync += codes[d].eq(entry_in[at: at + code_bits])
                    at += code_bits
                    if class_bits:
                        m.d.sync += classes[d].eq(entry_in[at: at + class_bits])
                    at += class_bits
                m.next = "PULSE"
            with m.State("PULSE"):            # table read for the device that takes this pulse
                with m.If(pulse == n_reg):
                    m.next = "WRITE"
                with m.Else():
                    m.d.sync += [dev_reg.eq(dev), pot_reg.eq(potentiate), draw.eq(1 + 2 * pulse + dev)]
                    m.next = "STEP"
            with m.State("STEP"):
                m.d.comb += stepped.eq(Mux(pot_reg, up_rd.data, down_rd.data))
                m.d.sync += pulse.eq(pulse + 1)
                if c2c:
                    held = Signal(code_bits)
                    m.d.sync += held.eq(stepped)
                    m.d.comb += rand_req.eq(1)
                    m.next = "NOISE_WAIT"
                else:
                    set_code(dev_reg, stepped)
                    m.next = "PULSE"
            if c2c:
                with m.State("NOISE_WAIT"):
                    with m.If(~rand_busy & ~rand_req):
                        m.next = "NOISE"
                with m.State("NOISE"):
                    hit = (rand_word >> 16) < c2c
                    up_one = rand_word[15]
                    noisy = Signal(code_bits + 1)
                    with m.If(hit & up_one & (held < top)):
                        m.d.comb += noisy.eq(held + 1)
                    with m.Elif(hit & ~up_one & (held > 0)):
                        m.d.comb += noisy.eq(held - 1)
                    with m.Else():
                        m.d.comb += noisy.eq(held)
                    set_code(dev_reg, noisy)
                    m.next = "PULSE"
            with m.State("WRITE"):
                with m.If(is_bias):
                    m.d.comb += self.bias.w_en.eq(1)
                with m.Else():
                    m.d.comb += self.codes.w_en.eq(1 << lane if lane_bits else 1)
                m.next = "ADVANCE"
            with m.State("ADVANCE"):
                with m.If(is_bias):
                    m.d.sync += [bias_row.eq(bias_row + 1), i_reg.eq(i_reg + 1)]
                    with m.If(bias_row == n_rows - 1):
                        m.next = "FINISH"
                    with m.Else():
                        m.next = "BIAS_SETUP"
                with m.Else():
                    m.d.sync += k.eq(k + 1)
                    if lane_bits:
                        with m.If(lane == P - 1):
                            m.d.sync += [lane.eq(0), word.eq(word + 1)]
                        with m.Else():
                            m.d.sync += lane.eq(lane + 1)
                    else:
                        m.d.sync += word.eq(word + 1)
                    with m.If(k == length - 1):
                        m.d.sync += [is_bias.eq(1), i_reg.eq(first_row), j_reg.eq(0)]
                        m.next = "BIAS_SETUP"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("BIAS_SETUP"):
                m.d.sync += [s_reg.eq(N * N + i_reg), diag.eq(0), draw.eq(0)]
                m.next = "SETUP"
            with m.State("FINISH"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        return m
