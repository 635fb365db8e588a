"""The EqProp engine: relaxation, fixed-point storage and in-situ learning behind one bus.

Everything is generated from one `Config` (through `Formats`, `Schedule` and `Layout`), so
the hardware and the fixed-point model share every width, shift and table. The host writes
the initial state, inputs, targets and device codes over the bus, then issues commands:

  RELAX(sign)       relax until max|dv| <= tol_lsb or max_steps (sign: free, +beta, -beta)
  STEP(sign)        one relaxation step (the host compares every step with the model)
  STORE(set, slot)  keep the current state as a fixed point of the minibatch
  RESTORE(set,slot) bring a stored fixed point back as the current state
  LEARN             program every device from the stored fixed points (numerics.md, sec. 5), each
                    synapse at its weight layer's rate, decayed by the R_DECAY register's steps
  CHECKSUM(bank)    CRC-32 of a bank's codes, biases, t and seed (checksum.py) -> R_CHECKSUM
  BEGIN_LOAD        host writes of codes, biases, t and seed go to the shadow bank ...
  COMMIT            ... until COMMIT makes it the active one (a load takes effect whole)

`Engine` only wires components (docs/rtl.md, "Blocks"): the `Controller`, the synapse
`StreamGenerator`, the `CodeMemory` (block RAM or SPRAM), the `WeightLookup` conductance
maps, the `StateMemory`, the `MacArray`, the `NeuronUpdate` and the learning unit behind its
`LearnerPort`, the `WeightChecksum`, plus the host bus decode and the small memories
(inputs, targets, biases, fixed points).

Weight banks (docs/hostlink.md, "Weights on a board"): with `atomic_load` (the default) the
code and bias memories hold two banks (address bit above the word / unit address) and t and
the seed have shadow registers. Everything the engine computes with uses the active bank;
between BEGIN_LOAD and COMMIT the host's writes go to the other one, and COMMIT swaps them in
one cycle, so a host that stops half-way leaves the old weights in use.

Relaxation pipeline (one word of P synapses per clock): stream and code read (1) ->
conductance table and activation reads (1) -> MacArray (mac_latency(P)) -> operand reads (2) ->
NeuronUpdate (NEURON_LATENCY) -> write-back (1).
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from memprop.model.config import Config

from . import dsp
from . import hostmap as hm
from .checksum import WeightChecksum
from .codemem import CodeMemory, resolve_backend
from .conductance import WeightLookup
from .controller import STEP_OVERHEAD, Controller
from .learn import Learner
from .mac import MacArray, mac_latency
from .neuron import NEURON_LATENCY, NeuronUpdate
from .statemem import StateMemory
from .stream import StreamGenerator
from .schedule import Schedule, ceil_log2, formats

#: Cycles from a word address to its operands at the MAC inputs (stream/code read + table reads).
READ_LATENCY = 2
#: Cycles from a row sum to its new state in memory (operand reads, update, write-back).
FINAL_LATENCY = 2 + NEURON_LATENCY + 1
#: From this many lanes a host read of a device code answers in three cycles, not two (a register
#: stage behind the wide code word; iCE40 designs, P = 4, keep their logic cells).
WIDE_CODE_LANES = 8


class _UnitPort:
    """A port of a banked memory as its users see it: a unit address (the bank is set apart)."""

    def __init__(self, addr, data, en):
        self.addr, self.data, self.en = addr, data, en


def step_latency(lanes: int) -> int:
    """The constant pipeline latency of a relaxation step (the cycle model's L)."""
    return READ_LATENCY + mac_latency(lanes) + FINAL_LATENCY + STEP_OVERHEAD


class HostBus(wiring.Signature):
    """A word bus from the host's side: one read or write per request, reads answer later."""

    def __init__(self):
        super().__init__({
            "addr": Out(hm.ADDR_BITS), "wdata": Out(hm.DATA_BITS), "we": Out(1), "re": Out(1),
            "rdata": In(hm.DATA_BITS), "rvalid": In(1),
        })


class Engine(wiring.Component):
    """The engine of one Config. `primitives`: instantiate vendor cells (SB_SPRAM256KA) even
    without a platform, for Verilog that a simulator compiles with the cell models; without
    it (Amaranth's simulator) the cells' Amaranth models are used."""

    def __init__(self, cfg: Config, *, primitives: bool = False, atomic_load: bool = True, init=None):
        self.cfg = cfg
        self.atomic_load = atomic_load
        # weights baked into the bitstream (`memprop build --weights`): an object with `codes` (one
        # packed entry per stream position), `bias` (one per unit), `updates` and `seed`
        # (boards.image.Image); block-RAM code memory only
        self.init = init
        self.fmt = formats(cfg)
        self.layout = hm.Layout(self.fmt)
        self.schedule: Schedule = self.layout.schedule
        self.primitives = primitives
        rows = self.schedule.rows
        if len(rows) and not (rows == rows[0] + range(len(rows))).all():
            raise ValueError("the engine needs the free units to be contiguous (inputs first)")
        if self.layout.entry_bits > hm.DATA_BITS:
            raise ValueError(f"a device entry of {self.layout.entry_bits} bits does not fit the 32-bit bus")
        if not len(rows):
            raise ValueError("the network has no free units to relax")
        super().__init__({"bus": In(HostBus()), "busy": Out(1)})

    def code_memory_backend(self, platform=None) -> str:
        return resolve_backend(self.cfg.hw.code_memory, platform)

    def dsp_backend(self, platform=None) -> str:
        return dsp.resolve_backend(self.cfg.hw.dsp, platform)

    def elaborate(self, platform):
        m = Module()
        f, lay, sch, cfg = self.fmt, self.layout, self.schedule, self.cfg
        N, P, E = cfg.network.n, cfg.hw.lanes, lay.entry_bits
        nb, vb = lay.n_bits, f.state_bits

        m.submodules.ctrl = ctrl = Controller(
            n=N, n_rows=len(sch.rows), words=sch.depth, v_bits=vb, n_bits=nb, slot_bits=lay.slot_bits,
            tol=cfg.fixed.tol_lsb, max_steps=cfg.network.max_steps, slots=lay.batch, relax_store=lay.relax_store,
            keep_sums=cfg.hw.keep_sums)
        m.submodules.stream = stream = StreamGenerator(sch)
        word_bits = max(ceil_log2(sch.depth), 1)
        banked_depth = (1 << word_bits) + sch.depth if self.atomic_load else sch.depth
        code_init = None
        if self.init is not None:
            code_init = [sum(int(self.init.codes[w * P + lane]) << (lane * E) for lane in range(P))
                         for w in range(sch.depth)]
        m.submodules.codes = codes = CodeMemory(banked_depth, P, E, backend=self.code_memory_backend(platform),
                                                primitive=self.primitives, init=code_init)
        # the code memory's address: the word, and (atomic_load) the bank above it
        self._code_word, self._code_bank = Signal(word_bits), Signal()
        # who else addresses the code memory and reads the biases, (select, address), never two at
        # once: the host, the checksum walk, the learner (`_shared_ports` below)
        self._code_claims, self._bias_claims = [], []
        self._code_w_en = []                       # (lanes written), the host's or the learner's
        m.d.comb += codes.port.addr.eq(Cat(self._code_word, self._code_bank) if self.atomic_load
                                       else self._code_word)
        m.submodules.checksum = checksum = WeightChecksum(words=sch.depth, lanes=P, entry_bits=E, n=N,
                                                          word_bits=word_bits, n_bits=nb)
        self._checksum_result = checksum.result
        # weight banks: which one is in use, a load in progress, the shadow bank's t and seed
        self._active, self._loading = Signal(), Signal()
        self._shadow_updates = Signal(32)
        seed0 = (cfg.train.seed if self.init is None else int(self.init.seed)) & 0xFFFFFFFF
        self._shadow_seed = Signal(32, init=seed0)
        self._write_bank = Signal()
        m.submodules.lookup = lookup = WeightLookup(lay, P)
        m.submodules.state = state = StateMemory(f, nb, P, lutram_lanes=self.cfg.hw.lutram_act_lanes, fold=sch.fold)
        multipliers = self.dsp_backend(platform)
        m.submodules.mac = mac = MacArray(P, lookup.w_bits, state.a_bits, f.acc_bits, units=N if sch.fold else 0,
                                          first_unit=int(sch.rows[0]), dsp=multipliers)
        m.submodules.neuron = neuron = NeuronUpdate(f, nb)
        m.submodules.learner = learner = Learner(cfg, lay, banked=self.atomic_load, dsp=multipliers)
        m.submodules.bias_lookup = bias_lookup = WeightLookup(lay, 1)
        mems = self._memories(m, learner_reads=not learner.paired)
        # by default everything reads, learns and writes in the active bank (host writes and the
        # checksum override this below)
        m.d.comb += [self._write_bank.eq(self._active ^ self._loading), self._code_bank.eq(self._active),
                     mems["bias_bank"][0].eq(self._active), mems["bias_bank"][1].eq(self._active)]
        m.d.comb += [self.busy.eq(ctrl.busy), state.cur.eq(ctrl.cur)]

        self._relaxation(m, ctrl, stream, codes, lookup, state, mac, learner)
        self._finalizer(m, ctrl, state, neuron, bias_lookup, mems)
        self._host(m, ctrl, codes, state, mems)
        self._copies(m, ctrl, state, mems)
        self._learner(m, ctrl, learner, stream, codes, state, mems)
        self._banks(m, ctrl, checksum, codes, mems)
        self._shared_ports(m, ctrl, codes, mems)
        return m

    def _shared_ports(self, m: Module, ctrl, codes, mems):
        """The code memory's word address and write lanes, and the bias read address: AND-ORs of
        their owners', never two at once (the learner and the checksum walk run in different
        commands, the host only while the engine is idle), else the relaxation's. As priority
        chains behind the owners' selects they were the ULX3S's longest paths."""
        def owned(default, claims):
            value = Mux(Cat(*[sel for sel, _ in claims]).any(), 0, default)
            for sel, claim in claims:
                value = value | Mux(sel, claim, 0)
            return value

        w_en = Const(0, len(codes.port.w_en))
        for claim in self._code_w_en:
            w_en = w_en | claim
        bias_rd = mems["bias_mem"][0]
        m.d.comb += [self._code_word.eq(owned(ctrl.word, self._code_claims)), codes.port.w_en.eq(w_en),
                     bias_rd.addr.eq(owned(self._bias_row, self._bias_claims))]

    # -- the small memories --------------------------------------------------------------------
    def _memories(self, m: Module, learner_reads: bool) -> dict:
        f, lay, N = self.fmt, self.layout, self.cfg.network.n
        mems = {}

        def add(name, shape, depth, init=()):
            mem = memory.Memory(shape=shape, depth=depth, init=list(init))
            m.submodules[name] = mem
            mems[name] = (mem.read_port(), mem.write_port())

        # biases: two banks when atomic_load (bank bit above the unit); ports seen by unit
        bias = memory.Memory(shape=unsigned(lay.entry_bits), depth=(1 << lay.n_bits) + N if self.atomic_load else N,
                             init=[] if self.init is None else [int(w) for w in self.init.bias])
        m.submodules.bias_mem = bias
        rd, wr = bias.read_port(), bias.write_port()
        r_unit, w_unit, r_bank, w_bank = Signal(lay.n_bits), Signal(lay.n_bits), Signal(), Signal()
        m.d.comb += [rd.addr.eq(Cat(r_unit, r_bank) if self.atomic_load else r_unit),
                     wr.addr.eq(Cat(w_unit, w_bank) if self.atomic_load else w_unit)]
        mems["bias_mem"] = (_UnitPort(r_unit, rd.data, None), _UnitPort(w_unit, wr.data, wr.en))
        mems["bias_bank"] = (r_bank, w_bank)
        add("in_mem", signed(2), N)
        add("tgt_mem", signed(f.state_bits), N)
        fp = memory.Memory(shape=signed(f.state_bits), depth=3 << (lay.slot_bits + lay.n_bits), init=[])
        m.submodules.fp_mem = fp
        # ports a (the learner's rows, unless it keeps their copies: then one copy in block RAM, not
        # two), b (host reads, RESTORE), the write
        mems["fp"] = (fp.read_port() if learner_reads else None, fp.read_port(), fp.write_port())
        if not f.hard:
            table = [int(v) for v in f.der_lut]
            der = memory.Memory(shape=unsigned(max(f.d_max.bit_length(), 1)), depth=len(table), init=table)
            m.submodules.der_lut = der
            mems["der_lut"] = der.read_port()
        return mems

    # -- stream -> codes and activations -> weights -> MAC lanes -----------------------------------
    def _relaxation(self, m, ctrl, stream, codes, lookup, state, mac, learner):
        P, E = self.cfg.hw.lanes, self.layout.entry_bits
        # the controller's and the learner's stream controls are never both active (one command at
        # a time, each drives 0 when idle): an OR, not a multiplexer in front of every lane's entry
        # registers. The code memory reads the controller's issue word, a register, not the
        # stream's address (the same word, but a decode and two multiplexers ahead of 20 block RAMs)
        m.d.comb += [stream.port.restart.eq(ctrl.restart | learner.stream.restart),
                     stream.port.advance.eq(ctrl.advance | learner.stream.advance)]
        s1_valid, s2_valid = Signal(), Signal()
        s2_entry, s2_last = Signal(P), Signal(P)
        m.d.sync += [s1_valid.eq(ctrl.issuing), s2_valid.eq(s1_valid)]
        # hw.keep_sums: a step that reads the kept sums issues one row end a cycle and no synapse
        # (every product 0, every column accumulator stays 0): the MAC array's row-end flags drive
        # the finalizer and the column reads as in any step
        reuse = ctrl.reuse
        for lane in range(P):
            e = stream.port.entries[lane]
            m.d.comb += [state.act_col[lane].eq(e.col), lookup.entries[lane].eq(codes.port.r_data[lane * E:(lane + 1) * E])]
            if self.cfg.hw.keep_sums:
                m.d.sync += [s2_entry[lane].eq(e.valid & ~reuse),
                             s2_last[lane].eq(e.last | reuse if lane == 0 else e.last & ~reuse)]
            else:
                m.d.sync += [s2_entry[lane].eq(e.valid), s2_last[lane].eq(e.last)]
            m.d.comb += [mac.w[lane].eq(lookup.weights[lane]), mac.a[lane].eq(state.act[lane])]
        m.d.comb += [mac.start.eq(ctrl.step_start), mac.valid.eq(s2_valid), mac.entry.eq(s2_entry),
                     mac.last.eq(s2_last)]
        self._mac = mac
        if self.schedule.fold:
            self._fold(m, ctrl, stream, state, mac)

    def _fold(self, m, ctrl, stream, state, mac):
        """A folded stream's column inputs (mac.py): the rows' activations, which lanes hold twins
        and in which row, their columns' blocks."""
        P = self.cfg.hw.lanes
        entries = stream.port.entries
        row0 = entries[0].row
        m.d.comb += state.row_unit.eq(row0)
        s2_twin, s2_tail = Signal(P), Signal(P)
        s2_blk = [Signal(mac.blk_bits, name=f"s2_blk{lane}") for lane in range(P)]
        # a column's block j // P: a shift for a power-of-two P, else a small table of constants
        pow2 = P & (P - 1) == 0
        blocks = Array(Const(j // P, mac.blk_bits) for j in range(1 << len(entries[0].col)))
        for lane in range(P):
            e = entries[lane]
            blk = (e.col >> (P - 1).bit_length()) if pow2 else blocks[e.col]
            twin = e.above & ~ctrl.reuse if self.cfg.hw.keep_sums else e.above      # no twin in a kept-sums step
            m.d.sync += [s2_twin[lane].eq(twin), s2_tail[lane].eq(e.row != row0), s2_blk[lane].eq(blk)]
            m.d.comb += [mac.a_row[lane].eq(Mux(s2_tail[lane], state.act_rows[1], state.act_rows[0])),
                         mac.blk[lane].eq(s2_blk[lane])]
        m.d.comb += mac.twin.eq(s2_twin)

    # -- row sum -> operands -> NeuronUpdate -> write-back ----------------------------------------
    def _finalizer(self, m, ctrl, state, neuron, bias_lookup, mems):
        f, lay, sch = self.fmt, self.layout, self.schedule
        nb, vb = lay.n_bits, f.state_bits
        mac = self._mac
        first_row = int(sch.rows[0])
        first_out = int(sch.outputs.nonzero()[0][0])
        bias_rd, _ = mems["bias_mem"]
        in_rd, _ = mems["in_mem"]
        tgt_rd, _ = mems["tgt_mem"]

        row_count = Signal(range(len(sch.rows) + 1))
        row_i = Signal(nb)
        self._row_i = row_i
        m.d.comb += row_i.eq(first_row + row_count)
        with m.If(ctrl.step_start):
            m.d.sync += row_count.eq(0)
        with m.Elif(mac.row_valid):
            m.d.sync += row_count.eq(row_count + 1)
        # operand reads are issued with the row sum: default addresses of the shared ports. The
        # bias is read a cycle ahead, for the row whose sum leaves next (this row's if none leaves
        # now, else the one after it), so that its weight is a register when the field adds it (a
        # conductance block RAM's output straight into the field's adders was the ULX3S's slowest
        # path); biases do not change during a step.
        bias_row = Signal(nb)
        m.d.comb += bias_row.eq(Mux(mac.row_valid & (row_i != int(sch.rows[-1])), row_i + 1, row_i))
        m.d.comb += [state.rd_unit.eq(row_i), state.rd_half.eq(ctrl.cur), in_rd.addr.eq(row_i),
                     tgt_rd.addr.eq(row_i)]
        self._bias_row = bias_row
        f1_valid, f1_row, f1_acc = Signal(), Signal(nb), Signal(signed(f.acc_bits))
        m.d.sync += [f1_valid.eq(mac.row_valid), f1_row.eq(row_i)]
        f2_valid, f2_row, f2_acc = Signal(), Signal(nb), Signal(signed(f.acc_bits))
        if self.cfg.hw.keep_sums:
            # the kept sums (hw.keep_sums): every row's W·a is written as it goes to the update, and a
            # step that reuses them reads the row's in place of the MAC array's (read a cycle ahead,
            # with the bias, for the row whose sum leaves next). A block RAM: its read is a register
            # inside the block, as the bias's beside it
            sums = memory.Memory(shape=signed(f.acc_bits), depth=len(sch.rows), init=[],
                                 attrs={"ram_style": "block"})
            m.submodules.sums_mem = sums
            sums_rd, sums_wr = sums.read_port(), sums.write_port()
            m.d.comb += [sums_rd.addr.eq(bias_row - first_row), sums_wr.en.eq(f2_valid),
                         sums_wr.addr.eq(f2_row - first_row), sums_wr.data.eq(f2_acc)]
            m.d.sync += f1_acc.eq(Mux(ctrl.reuse, sums_rd.data, mac.row_sum))
        else:
            m.d.sync += f1_acc.eq(mac.row_sum)
        f2_v, f2_x, f2_t = Signal(signed(vb)), Signal(signed(2)), Signal(signed(vb))
        m.d.sync += [f2_valid.eq(f1_valid), f2_row.eq(f1_row), f2_acc.eq(f1_acc + mac.col_sum if sch.fold else f1_acc),
                     f2_v.eq(state.rd_data), f2_x.eq(in_rd.data), f2_t.eq(tgt_rd.data)]
        m.d.comb += bias_lookup.entries[0].eq(bias_rd.data)
        bias_w = Signal.like(bias_lookup.weights[0])
        m.d.sync += bias_w.eq(bias_lookup.weights[0])
        if not f.hard:
            m.d.comb += mems["der_lut"].addr.eq(state.rd_data - f.lo)
        m.d.comb += [
            neuron.valid.eq(f2_valid), neuron.row.eq(f2_row), neuron.acc.eq(f2_acc),
            neuron.bias.eq(bias_w), neuron.x.eq(f2_x), neuron.target.eq(f2_t), neuron.v.eq(f2_v),
            neuron.is_output.eq(f2_row >= first_out), neuron.sign.eq(ctrl.sign),
            neuron.deriv.eq(1 if f.hard else mems["der_lut"].data),
        ]
        # the new state goes to the other half now (its activation follows a cycle later);
        # the controller counts the row one cycle later, when the activation is written
        self._wb = (neuron.o_valid, neuron.o_row, neuron.v_new)
        wb_valid, wb_delta = Signal(), Signal(vb)
        m.d.sync += [wb_valid.eq(neuron.o_valid), wb_delta.eq(neuron.delta)]
        m.d.comb += [ctrl.row_written.eq(wb_valid), ctrl.row_delta.eq(wb_delta)]

    # -- the host bus: registers, memory writes and reads -------------------------------------------
    def _host(self, m, ctrl, codes, state, mems):
        f, lay, cfg = self.fmt, self.layout, self.cfg
        N, P, E, nb = cfg.network.n, cfg.hw.lanes, lay.entry_bits, lay.n_bits
        bus = self.bus
        region = bus.addr[hm.REGION_SHIFT:]
        offset = bus.addr[:hm.REGION_SHIFT]
        busy = ctrl.busy
        host_write = bus.we & ~busy
        init = self.init
        self._updates = updates = Signal(32, init=0 if init is None else int(init.updates) & 0xFFFFFFFF)
        self._seed = seed = Signal(32, init=(cfg.train.seed if init is None else int(init.seed)) & 0xFFFFFFFF)
        loading = self._loading

        m.d.comb += [ctrl.command.eq(bus.wdata[:len(ctrl.command.as_value())]),
                     ctrl.command_valid.eq(bus.we & (region == hm.REG) & (offset == hm.R_CMD) & ~busy)]
        for reg, live, shadow in ((hm.R_UPDATES, updates, self._shadow_updates), (hm.R_SEED, seed, self._shadow_seed)):
            with m.If(host_write & (region == hm.REG) & (offset == reg)):
                with m.If(loading):
                    m.d.sync += shadow.eq(bus.wdata)         # a load in progress: the shadow bank's
                with m.Else():
                    m.d.sync += live.eq(bus.wdata)
        with m.If(ctrl.learned):
            m.d.sync += updates.eq(updates + 1)
        # the learning-rate decay steps (a decaying Config only): saturated, so a host that counts
        # epochs past the point where every rate has stopped decaying still gets the model's rates
        self._decay = None
        if f.decay_shift:
            self._decay = decay = Signal(hm.DECAY_BITS)
            with m.If(host_write & (region == hm.REG) & (offset == hm.R_DECAY)):
                m.d.sync += decay.eq(Mux(bus.wdata > hm.DECAY_STEPS_MAX, hm.DECAY_STEPS_MAX, bus.wdata))

        # STATE writes land in both halves (two cycles): the host sets the initial state once
        pending, p_unit, p_value = Signal(), Signal(nb), Signal(signed(f.state_bits))
        state_write = host_write & (region == hm.STATE)
        m.d.comb += ctrl.fault.eq((bus.we & busy) | (state_write & pending))
        # hw.keep_sums: the kept sums no longer hold after a write of the state, the inputs or a code
        m.d.comb += ctrl.invalidate.eq(host_write & ((region == hm.STATE) | (region == hm.INPUT)
                                                     | (region == hm.CODES)))
        w_en, w_unit, w_half, w_value = state.w_en, state.w_unit, state.w_half, state.w_value
        wb_valid, wb_row, wb_v = self._wb
        with m.If(wb_valid):
            m.d.comb += [w_en.eq(1), w_unit.eq(wb_row), w_half.eq(~ctrl.cur), w_value.eq(wb_v)]
        with m.If(state_write & ~pending):
            m.d.comb += [w_en.eq(1), w_unit.eq(offset[:nb]), w_half.eq(0), w_value.eq(bus.wdata)]
            m.d.sync += [pending.eq(1), p_unit.eq(offset[:nb]), p_value.eq(bus.wdata)]
        with m.Elif(pending):
            m.d.comb += [w_en.eq(1), w_unit.eq(p_unit), w_half.eq(1), w_value.eq(p_value)]
            m.d.sync += pending.eq(0)
        in_rd, in_wr = mems["in_mem"]
        tgt_rd, tgt_wr = mems["tgt_mem"]
        bias_rd, bias_wr = mems["bias_mem"]
        fp_a, fp_b, fp_wr = mems["fp"]
        with m.If(host_write & (region == hm.INPUT)):
            m.d.comb += [in_wr.en.eq(1), in_wr.addr.eq(offset[:nb]), in_wr.data.eq(bus.wdata)]
        with m.If(host_write & (region == hm.TARGET)):
            m.d.comb += [tgt_wr.en.eq(1), tgt_wr.addr.eq(offset[:nb]), tgt_wr.data.eq(bus.wdata)]
        lane_sel = offset[:lay.lane_bits] if lay.lane_bits else Const(0, 1)
        code_write, code_word = host_write & (region == hm.CODES), offset[lay.lane_bits:]
        code_mask, code_data, code_bank = 1 << lane_sel, bus.wdata[:E], self._write_bank
        self._host_code_read = None
        if P >= WIDE_CODE_LANES:
            # a host access to the code memory is decoded, then registered, then applied: the bus
            # address's decode reaching every code block RAM's address and enables was the ULX3S
            # design's largest group of long paths (a write lands, a read answers, one cycle later)
            h_we, h_re = Signal(name="host_code_we"), Signal(name="host_code_re")
            h_word, h_mask = Signal.like(self._code_word, name="host_code_word"), Signal(P, name="host_code_mask")
            h_data, h_bank = Signal(E, name="host_code_data"), Signal(name="host_code_bank")
            h_lane = Signal(max(lay.lane_bits, 1), name="host_code_lane")
            m.d.sync += [h_we.eq(code_write), h_re.eq(bus.re & ~busy & (region == hm.CODES)), h_word.eq(code_word),
                         h_mask.eq(code_mask), h_data.eq(code_data), h_bank.eq(code_bank), h_lane.eq(lane_sel)]
            code_write, code_word, code_mask, code_data, code_bank = h_we, h_word, h_mask, h_data, h_bank
            self._host_code_read = (h_re, h_word, h_lane)
        with m.If(code_write):
            m.d.comb += [codes.port.w_data.eq(Cat(*[code_data] * P)), self._code_bank.eq(code_bank)]
        self._code_claims.append((code_write, code_word))
        self._code_w_en.append(Mux(code_write, code_mask, 0))
        with m.If(host_write & (region == hm.BIAS)):
            m.d.comb += [bias_wr.en.eq(1), bias_wr.addr.eq(offset[:nb]), bias_wr.data.eq(bus.wdata),
                         mems["bias_bank"][1].eq(self._write_bank)]
        with m.If(host_write & (region == hm.FIXPOINT)):
            m.d.comb += [fp_wr.en.eq(1), fp_wr.addr.eq(offset), fp_wr.data.eq(bus.wdata)]
        # the learning unit keeps its own copies of the fixed points: it sees host writes too
        self._host_fixpoint = (host_write & (region == hm.FIXPOINT), offset, bus.wdata)
        # ... and, with rounding "carry", zeroes the carry of every code or bias the host writes
        self._host_weight = (host_write & ((region == hm.CODES) | (region == hm.BIAS)), region == hm.BIAS, offset)

        # reads: answer two cycles after the request (synchronous memory read + register), three in
        # an engine of WIDE_CODE_LANES lanes or more (below); an entry of a code word there four
        # cycles after (the registered request, the read, the registered word, the entry's select)
        rd_region, rd_offset, rd_pending = Signal(4), Signal(hm.REGION_SHIFT), Signal()
        m.d.sync += [rd_pending.eq(bus.re), rd_region.eq(region), rd_offset.eq(offset)]
        wide_codes = self._host_code_read is not None
        if not wide_codes:
            self._code_claims.append((bus.re & ~busy, offset[lay.lane_bits:]))
        self._bias_claims.append((bus.re & ~busy & (region == hm.BIAS), offset[:nb]))
        with m.If(bus.re & ~busy):
            m.d.comb += [state.rd_unit.eq(offset[:nb]), fp_b.addr.eq(offset)]
            with m.If(region == hm.INPUT):
                m.d.comb += in_rd.addr.eq(offset[:nb])
            with m.If(region == hm.TARGET):
                m.d.comb += tgt_rd.addr.eq(offset[:nb])
        rdata = Signal(32)
        fingerprint = int(cfg.fingerprint, 16)
        registers = {
            hm.R_CMD: Cat(ctrl.busy, ctrl.converged, ctrl.error, self._loading), hm.R_STEPS: ctrl.steps,
            hm.R_CYCLES: ctrl.cycles,
            hm.R_UPDATES: updates, hm.R_SEED: seed, hm.R_FP_LO: Const(fingerprint & 0xFFFFFFFF, 32),
            hm.R_FP_HI: Const(fingerprint >> 32, 32), hm.R_INFO: Const(P | (N << 8) | (lay.batch << 20), 32),
            hm.R_DELTA: ctrl.last_delta,
            hm.R_VERSION: Const((hm.ENGINE_VERSION << 24) | hm.FEATURE_CHECKSUM
                                | (hm.FEATURE_ATOMIC_LOAD if self.atomic_load else 0)
                                | (hm.FEATURE_RELAX_STORE if lay.relax_store else 0), 32),
            hm.R_DESIGN_LO: Const(int(hm.design_id(cfg), 16) & 0xFFFFFFFF, 32),
            hm.R_DESIGN_HI: Const(int(hm.design_id(cfg), 16) >> 32, 32),
            hm.R_COMMANDS: ctrl.commands, hm.R_CHECKSUM: self._checksum_result,
        }
        if self._decay is not None:
            registers[hm.R_DECAY] = self._decay
        # a register is read in the request's cycle (not the next): the offset's compares and the
        # register select are one timing path, the region select into bus.rdata the next (as one
        # path they were the ULX3S's longest on the host side)
        reg_now, reg_q = Signal(32), Signal(32)
        with m.Switch(offset):
            for reg, value in registers.items():
                with m.Case(reg):
                    m.d.comb += reg_now.eq(value)
        m.d.sync += reg_q.eq(reg_now)
        # the region select as an AND-OR of a one-hot register, decoded with the request
        sources = {hm.REG: reg_q, hm.STATE: state.rd_data.as_signed(), hm.INPUT: in_rd.data.as_signed(),
                   hm.TARGET: tgt_rd.data.as_signed(), hm.BIAS: bias_rd.data, hm.FIXPOINT: fp_b.data.as_signed()}
        if not wide_codes:
            sources[hm.CODES] = codes.port.r_data.word_select(rd_offset[:lay.lane_bits] if lay.lane_bits else 0, E)
        # In a wide engine each source is registered beside its memory first, and the select is a
        # cycle later: block RAMs across the die, the route and the select in one cycle were the
        # ULX3S's longest host-side path (a read then answers in three cycles, not two). The small
        # FPGAs keep the two cycles: the registers would not fit.
        rd_hot = Signal(len(sources))
        m.d.sync += rd_hot.eq(Cat(*[region == r for r in sources]))
        hot_q, rd_pending_q = rd_hot, rd_pending
        if wide_codes:
            hot_q, rd_pending_q = Signal(len(sources)), Signal()
            m.d.sync += [hot_q.eq(rd_hot), rd_pending_q.eq(rd_pending)]
        selected = Const(0, 32)
        for k, value in enumerate(sources.values()):
            if wide_codes:
                value_q = Signal(32, name=f"rd_source{k}")
                m.d.sync += value_q.eq(value)                # signed values sign-extend
                value = value_q
            selected = selected | Mux(hot_q[k], value, 0)
        m.d.comb += rdata.eq(selected)
        if wide_codes:
            # a wide code word is registered whole before its entry is selected: from block RAMs
            # across the die, the route and a P-way select in one cycle were the ULX3S's longest path
            h_re, h_word, h_lane = self._host_code_read
            self._code_claims.append((h_re, h_word))
            read_lane, read_pending = Signal.like(h_lane), Signal()
            word_q, lane_q, code_pending = Signal(P * E), Signal.like(h_lane), Signal()
            m.d.sync += [read_lane.eq(h_lane), read_pending.eq(h_re),
                         word_q.eq(codes.port.r_data), lane_q.eq(read_lane), code_pending.eq(read_pending)]
            with m.If(code_pending):
                m.d.comb += rdata.eq(word_q.word_select(lane_q, E))
            region_q = Signal.like(rd_region)
            m.d.sync += region_q.eq(rd_region)
            m.d.sync += bus.rvalid.eq((rd_pending_q & (region_q != hm.CODES)) | code_pending)
        else:
            m.d.sync += bus.rvalid.eq(rd_pending_q)
        m.d.sync += bus.rdata.eq(rdata)

    # -- STORE and RESTORE ----------------------------------------------------------------------------
    def _copies(self, m, ctrl, state, mems):
        f, lay = self.fmt, self.layout
        nb = lay.n_bits
        fp_a, fp_b, fp_wr = mems["fp"]
        where = Cat(ctrl.item, ctrl.slot, ctrl.set)
        with m.If(ctrl.store_read):
            m.d.comb += [state.rd_unit.eq(ctrl.item), state.rd_half.eq(ctrl.cur)]
        with m.If(ctrl.store_write):               # the unit read in the cycle before
            m.d.comb += [fp_wr.en.eq(1), fp_wr.addr.eq(Cat(ctrl.write_item, ctrl.slot, ctrl.set)),
                         fp_wr.data.eq(state.rd_data)]
        # RELAX / STEP with the store bit: every write-back also lands in (set, slot); a STORE
        # would copy the last step's, which are the last ones written
        wb_valid, wb_row, wb_v = self._wb
        self._relax_stored = relax_stored = Signal()
        if lay.relax_store:
            m.d.comb += relax_stored.eq(ctrl.store & wb_valid)
            with m.If(relax_stored):
                m.d.comb += [fp_wr.en.eq(1), fp_wr.addr.eq(Cat(wb_row, ctrl.slot, ctrl.set)), fp_wr.data.eq(wb_v)]
        with m.If(ctrl.restore_read):
            m.d.comb += fp_b.addr.eq(where)
        held = Signal(signed(f.state_bits))
        with m.If(ctrl.restore_write):
            with m.If(ctrl.restore_half == 0):
                m.d.sync += held.eq(fp_b.data)
            m.d.comb += [state.w_en.eq(1), state.w_unit.eq(ctrl.item[:nb]), state.w_half.eq(ctrl.restore_half),
                         state.w_value.eq(Mux(ctrl.restore_half, held, fp_b.data))]

    # -- weight banks and the checksum ----------------------------------------------------------------
    def _banks(self, m, ctrl, checksum, codes, mems):
        """BEGIN_LOAD / COMMIT, and CHECKSUM(bank) walking the code and bias memories."""
        active, loading = self._active, self._loading
        r_bank, w_bank = mems["bias_bank"]
        bias_rd, _ = mems["bias_mem"]
        if self.atomic_load:
            with m.If(ctrl.begin_load):
                m.d.sync += [loading.eq(1), self._shadow_updates.eq(self._updates),
                             self._shadow_seed.eq(self._seed)]
            with m.If(ctrl.commit):
                m.d.sync += [active.eq(~active), loading.eq(0), self._updates.eq(self._shadow_updates),
                             self._seed.eq(self._shadow_seed)]
        m.d.comb += ctrl.loading.eq(loading)
        # CHECKSUM: the `set` field of the command picks the active (0) or the shadow (1) bank
        shadow = Signal()
        if self.atomic_load:
            with m.If(ctrl.checksum_start):
                m.d.sync += shadow.eq(ctrl.set[0])
        m.d.comb += [checksum.start.eq(ctrl.checksum_start), ctrl.checksum_done.eq(checksum.done),
                     checksum.code_data.eq(codes.port.r_data), checksum.bias_data.eq(bias_rd.data),
                     checksum.updates.eq(Mux(shadow, self._shadow_updates, self._updates)),
                     checksum.seed.eq(Mux(shadow, self._shadow_seed, self._seed))]
        self._code_claims.append((checksum.active, checksum.code_addr))
        self._bias_claims.append((checksum.active, checksum.bias_addr))
        with m.If(checksum.active):
            m.d.comb += [self._code_bank.eq(active ^ shadow), r_bank.eq(active ^ shadow)]

    # -- the learning unit's port -------------------------------------------------------------------
    def _learner(self, m, ctrl, learner, stream, codes, state, mems):
        bias_rd, bias_wr = mems["bias_mem"]
        fp_a, fp_b, fp_wr = mems["fp"]
        m.d.comb += [learner.start.eq(ctrl.learn_start), ctrl.learn_done.eq(learner.done),
                     learner.seed.eq(self._seed), learner.updates.eq(self._updates),
                     learner.codes.r_data.eq(codes.port.r_data), learner.bias.r_data.eq(bias_rd.data),
                     learner.stored.valid.eq(ctrl.store_write), learner.stored.set.eq(ctrl.set),
                     learner.stored.slot.eq(ctrl.slot), learner.stored.unit.eq(ctrl.write_item),
                     learner.stored.value.eq(state.rd_data)]
        if fp_a is not None:                       # the rows' fixed points, unless it keeps copies
            m.d.comb += [learner.fp_a.data.eq(fp_a.data), learner.fp_b.data.eq(fp_b.data)]
        _, wb_row, wb_v = self._wb
        with m.If(self._relax_stored):
            m.d.comb += [learner.stored.valid.eq(1), learner.stored.unit.eq(wb_row), learner.stored.value.eq(wb_v)]
        if self._decay is not None:
            m.d.comb += learner.decay.eq(self._decay)
        host_fp, offset, wdata = self._host_fixpoint
        nb, sb = self.layout.n_bits, self.layout.slot_bits
        if self.cfg.fixed.rounding == "carry":
            valid, bias, w_offset = self._host_weight
            lb = self.layout.lane_bits
            clear = learner.carry_clear
            m.d.comb += [learner.bank.eq(self._active), clear.valid.eq(valid), clear.bias.eq(bias),
                         clear.word.eq(w_offset[lb:]), clear.unit.eq(w_offset[:nb]), clear.bank.eq(self._write_bank)]
            if lb:
                m.d.comb += clear.lane.eq(w_offset[:lb])
        with m.If(host_fp):
            m.d.comb += [learner.stored.valid.eq(1), learner.stored.unit.eq(offset[:nb]),
                         learner.stored.slot.eq(offset[nb:nb + sb]), learner.stored.set.eq(offset[nb + sb:nb + sb + 2]),
                         learner.stored.value.eq(wdata)]
        self._code_claims.append((learner.active, learner.codes.addr))
        self._code_w_en.append(Mux(learner.active, learner.codes.w_en, 0))
        self._bias_claims.append((learner.active, learner.bias.addr))
        with m.If(learner.active):
            m.d.comb += [
                codes.port.w_data.eq(learner.codes.w_data),
                bias_wr.addr.eq(learner.bias.addr),
                bias_wr.en.eq(learner.bias.w_en), bias_wr.data.eq(learner.bias.w_data),
            ]
            if fp_a is not None:
                m.d.comb += [fp_a.addr.eq(learner.fp_a.addr), fp_b.addr.eq(learner.fp_b.addr)]
        m.d.comb += learner.stream.entries.eq(stream.port.entries)
