"""The EqProp engine: relaxation, fixed-point storage and in-situ learning behind one bus.

Everything is generated from one `Config` (through `Formats`, `Schedule` and `Layout`), so
the hardware and the fixed-point model share every width, shift and table. The host writes
the initial state, inputs, targets and device codes over the bus, then issues commands:

  RELAX(sign)       relax until max|dv| <= tol_lsb or max_steps (sign: free, +beta, -beta)
  STEP(sign)        one relaxation step (the host compares every step with the model)
  STORE(set, slot)  keep the current state as a fixed point of the minibatch
  RESTORE(set,slot) bring a stored fixed point back as the current state
  LEARN             program every device from the stored fixed points (numerics.md, sec. 5)

Relaxation pipeline (one block of P synapses per clock): stream read (1) -> conductance
table and activation reads (1) -> MacArray (MAC_LATENCY) -> operand reads (2) ->
NeuronUpdate (NEURON_LATENCY) -> write-back (1).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from memprop.model.config import Config
from memprop.model.numerics import bitlen_signed

from . import hostmap as hm
from .learn import Learner
from .mac import MAC_LATENCY, MacArray
from .neuron import NEURON_LATENCY, NeuronUpdate
from .schedule import Schedule, ceil_log2, formats

#: Cycles from a block address to its operands at the MAC inputs (stream read + table reads).
READ_LATENCY = 2
#: Cycles from a row sum to its new state in memory (operand reads, update, write-back).
FINAL_LATENCY = 2 + NEURON_LATENCY + 1
#: Extra cycles per step for the controller (step start, the row count register, step end).
STEP_OVERHEAD = 3
#: Constant pipeline latency of a relaxation step (the cycle model's constant).
STEP_LATENCY = READ_LATENCY + MAC_LATENCY + FINAL_LATENCY + STEP_OVERHEAD


class HostBus(wiring.Signature):
    """A word bus from the host's side: one read or write per request, reads answer later."""

    def __init__(self):
        super().__init__({
            "addr": Out(hm.ADDR_BITS), "wdata": Out(hm.DATA_BITS), "we": Out(1), "re": Out(1),
            "rdata": In(hm.DATA_BITS), "rvalid": In(1),
        })


class Engine(wiring.Component):

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.fmt = formats(cfg)
        self.layout = hm.Layout(self.fmt)
        self.schedule: Schedule = self.layout.schedule
        rows = self.schedule.rows
        if len(rows) and not (rows == rows[0] + range(len(rows))).all():
            raise ValueError("the engine needs the free units to be contiguous (inputs first)")
        if self.layout.entry_bits > hm.DATA_BITS:
            raise ValueError(f"a device entry of {self.layout.entry_bits} bits does not fit the 32-bit bus")
        if not len(rows):
            raise ValueError("the network has no free units to relax")
        super().__init__({"bus": In(HostBus()), "busy": Out(1)})

    # -- helpers ---------------------------------------------------------------------------------
    def _rom(self, m: Module, name: str, shape, values) -> memory.Memory:
        mem = memory.Memory(shape=shape, depth=max(len(values), 1), init=list(values) or [0])
        m.submodules[name] = mem
        return mem

    def elaborate(self, platform):
        m = Module()
        f, lay, sch = self.fmt, self.layout, self.schedule
        cfg = self.cfg
        N, P = cfg.network.n, cfg.hw.lanes
        n_bits = lay.n_bits
        v_bits = f.state_bits
        a_bits = bitlen_signed(f.a_max)
        w_bits = bitlen_signed(f.w_max)
        tables = f.device
        D = sch.depth
        word_bits = max(ceil_log2(D), 1)
        E = lay.entry_bits
        n_rows = len(sch.rows)
        first_row = int(sch.rows[0]) if n_rows else 0
        first_out = int(sch.outputs.nonzero()[0][0])
        tol = cfg.fixed.tol_lsb
        max_steps = cfg.network.max_steps

        # -- registers visible to the host ---------------------------------------------------
        busy = Signal()
        converged = Signal()
        error = Signal()
        steps = Signal(32)
        cycles = Signal(32)
        updates = Signal(32)
        seed = Signal(32, init=cfg.train.seed & 0xFFFFFFFF)
        last_delta = Signal(v_bits)
        cur = Signal()                        # which half of the state buffers is current
        m.d.comb += self.busy.eq(busy)
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)

        # -- memories ------------------------------------------------------------------------
        st = sch.stream
        idx_init = []
        for w in range(D):
            word = 0
            for lane in range(P):
                k = w * P + lane
                word |= (int(st["valid"][k]) | (int(st["last"][k]) << 1) | (int(st["col"][k]) << 2)) << (lane * (n_bits + 2))
            idx_init.append(word)
        idx_rom = self._rom(m, "idx_rom", unsigned(P * (n_bits + 2)), idx_init)
        idx_rd = idx_rom.read_port()

        code_mem = memory.Memory(shape=unsigned(P * E), depth=D, init=[])
        m.submodules.code_mem = code_mem
        code_rd = code_mem.read_port()
        code_wr = code_mem.write_port(granularity=E)

        bias_mem = memory.Memory(shape=unsigned(E), depth=N, init=[])
        m.submodules.bias_mem = bias_mem
        bias_rd = bias_mem.read_port()
        bias_wr = bias_mem.write_port()

        # state: finalizer/host copy (2 halves), activation copies per lane (2 halves)
        state_mem = memory.Memory(shape=signed(v_bits), depth=2 << n_bits, init=[])
        m.submodules.state_mem = state_mem
        state_rd = state_mem.read_port()          # finalizer: v_i of the current half
        state_rd2 = state_mem.read_port()         # host reads and STORE
        state_wr = state_mem.write_port()
        act_rd, act_wr = [], []
        for lane in range(P):
            mem = memory.Memory(shape=signed(a_bits), depth=2 << n_bits, init=[])
            m.submodules[f"act_mem{lane}"] = mem
            act_rd.append(mem.read_port())
            act_wr.append(mem.write_port())
        in_mem = memory.Memory(shape=signed(2), depth=N, init=[])
        m.submodules.in_mem = in_mem
        in_rd, in_wr = in_mem.read_port(), in_mem.write_port()
        tgt_mem = memory.Memory(shape=signed(v_bits), depth=N, init=[])
        m.submodules.tgt_mem = tgt_mem
        tgt_rd, tgt_wr = tgt_mem.read_port(), tgt_mem.write_port()
        fp_depth = 3 << (lay.slot_bits + n_bits)
        fp_mem = memory.Memory(shape=signed(v_bits), depth=fp_depth, init=[])
        m.submodules.fp_mem = fp_mem
        fp_rd_a, fp_rd_b = fp_mem.read_port(), fp_mem.read_port()
        fp_wr = fp_mem.write_port()

        # conductance tables: two ports per lane (differential pairs), two for biases
        g_bits = bitlen_signed(int(abs(tables.gmap).max()))
        gmap_init = [int(v) for v in tables.gmap.reshape(-1)]
        gmap_addr_bits = lay.class_bits + lay.code_bits
        gmap_flat = [0] * (1 << gmap_addr_bits)
        for cls in range(tables.classes):
            for c in range(tables.levels):
                gmap_flat[(cls << lay.code_bits) | c] = gmap_init[cls * tables.levels + c]

        def gmap_ports(name: str, count: int):
            """`count` read ports on copies of the table, two ports per copy (dual-port block RAM)."""
            ports = []
            for p in range(count):
                if p % 2 == 0:
                    mem = self._rom(m, f"{name}{p // 2}", signed(g_bits), gmap_flat)
                ports.append(mem.read_port())
            return ports

        lane_g = gmap_ports("gmap_lane", P * lay.devices)
        bias_g = gmap_ports("gmap_bias", lay.devices)

        def entry_fields(entry):
            """(codes, classes) per device of a packed entry."""
            out, at = [], 0
            for _ in range(lay.devices):
                code = entry[at: at + lay.code_bits]
                at += lay.code_bits
                cls = entry[at: at + lay.class_bits] if lay.class_bits else Const(0, 1)
                at += lay.class_bits
                out.append((code, cls))
            return out

        def weight_of(ports):
            w = Signal(signed(g_bits + 1))
            m.d.comb += w.eq(ports[0].data - ports[1].data if lay.devices == 2 else ports[0].data)
            return w

        # tanh tables (hard activations: identity, no table)
        if not f.hard:
            act_lut = self._rom(m, "act_lut", signed(a_bits), [int(v) for v in f.act_lut])
            der_lut = self._rom(m, "der_lut", unsigned(max(f.d_max.bit_length(), 1)), [int(v) for v in f.der_lut])
            act_lut_rd = act_lut.read_port()
            der_lut_rd = der_lut.read_port()

        # -- submodules ----------------------------------------------------------------------
        m.submodules.mac = mac = MacArray(P, g_bits + 1, a_bits, f.acc_bits)
        m.submodules.neuron = neuron = NeuronUpdate(f, n_bits)
        m.submodules.learner = learner = Learner(cfg, lay)

        # -- command decode ------------------------------------------------------------------
        bus = self.bus
        region = bus.addr[hm.REGION_SHIFT:]
        offset = bus.addr[:hm.REGION_SHIFT]
        op = Signal(4)
        sign = Signal(signed(2))
        fp_set = Signal(2)
        slot = Signal(lay.slot_bits)
        start = Signal()
        with m.If(bus.we & (region == hm.REG) & (offset == hm.R_CMD) & ~busy):
            m.d.sync += [op.eq(bus.wdata[:4]), fp_set.eq(bus.wdata[6:8]), slot.eq(bus.wdata[8:16]),
                         sign.eq(Mux(bus.wdata[4:6] == hm.SIGN_PLUS, 1, Mux(bus.wdata[4:6] == hm.SIGN_MINUS, -1, 0)))]
            m.d.comb += start.eq(1)
        with m.If(bus.we & busy):
            m.d.sync += error.eq(1)
        host_write = bus.we & ~busy
        with m.If(host_write & (region == hm.REG) & (offset == hm.R_UPDATES)):
            m.d.sync += updates.eq(bus.wdata)
        with m.If(host_write & (region == hm.REG) & (offset == hm.R_SEED)):
            m.d.sync += seed.eq(bus.wdata)

        # -- relaxation datapath -------------------------------------------------------------
        block = Signal(word_bits)
        issuing = Signal()
        rows_done = Signal(range(n_rows + 1))
        delta_max = Signal(v_bits)
        mac_start = Signal()
        # stage 0: block address
        m.d.comb += [idx_rd.addr.eq(block), code_rd.addr.eq(block)]
        s1_valid = Signal()
        m.d.sync += s1_valid.eq(issuing)
        # stage 1: stream entries -> activation and table reads
        idx_word = idx_rd.data
        s2_valid = Signal()
        s2_entry, s2_last = Signal(P), Signal(P)
        m.d.sync += s2_valid.eq(s1_valid)
        for lane in range(P):
            base = lane * (n_bits + 2)
            col = idx_word[base + 2: base + 2 + n_bits]
            m.d.comb += act_rd[lane].addr.eq(Cat(col, cur))
            m.d.sync += [s2_entry[lane].eq(idx_word[base]), s2_last[lane].eq(idx_word[base + 1])]
            fields = entry_fields(code_rd.data[lane * E:(lane + 1) * E])
            for dev in range(lay.devices):
                code, cls = fields[dev]
                m.d.comb += lane_g[lane * lay.devices + dev].addr.eq(Cat(code, cls) if lay.class_bits else code)
        # stage 2: MAC inputs
        m.d.comb += [mac.start.eq(mac_start), mac.valid.eq(s2_valid), mac.entry.eq(s2_entry), mac.last.eq(s2_last)]
        for lane in range(P):
            ports = lane_g[lane * lay.devices:(lane + 1) * lay.devices]
            m.d.comb += [mac.w[lane].eq(weight_of(ports)), mac.a[lane].eq(act_rd[lane].data)]

        # finalizer: row sum -> operands -> NeuronUpdate -> write-back
        row_count = Signal(range(n_rows + 1))
        row_i = Signal(n_bits)
        m.d.comb += row_i.eq(first_row + row_count)
        with m.If(mac_start):
            m.d.sync += row_count.eq(0)
        with m.Elif(mac.row_valid):
            m.d.sync += row_count.eq(row_count + 1)
        f1_valid, f1_row, f1_acc = Signal(), Signal(n_bits), Signal(signed(f.acc_bits))
        m.d.sync += [f1_valid.eq(mac.row_valid), f1_row.eq(row_i), f1_acc.eq(mac.row_sum)]
        # operand reads issued with the row sum (addresses valid in this cycle)
        f2_valid, f2_row, f2_acc = Signal(), Signal(n_bits), Signal(signed(f.acc_bits))
        f2_v, f2_x, f2_t = Signal(signed(v_bits)), Signal(signed(2)), Signal(signed(v_bits))
        m.d.sync += [f2_valid.eq(f1_valid), f2_row.eq(f1_row), f2_acc.eq(f1_acc),
                     f2_v.eq(state_rd.data), f2_x.eq(in_rd.data), f2_t.eq(tgt_rd.data)]
        bias_fields = entry_fields(bias_rd.data)
        for dev in range(lay.devices):
            code, cls = bias_fields[dev]
            m.d.comb += bias_g[dev].addr.eq(Cat(code, cls) if lay.class_bits else code)
        bias_w = weight_of(bias_g)
        if not f.hard:
            m.d.comb += der_lut_rd.addr.eq(state_rd.data - f.lo)
        m.d.comb += [
            neuron.valid.eq(f2_valid), neuron.row.eq(f2_row), neuron.acc.eq(f2_acc), neuron.bias.eq(bias_w),
            neuron.x.eq(f2_x), neuron.target.eq(f2_t), neuron.v.eq(f2_v),
            neuron.is_output.eq(f2_row >= first_out), neuron.sign.eq(sign),
            neuron.deriv.eq(1 if f.hard else der_lut_rd.data),
        ]
        # write-back (one cycle after the update: the tanh activation table is read meanwhile)
        wb_valid, wb_row, wb_v, wb_delta = Signal(), Signal(n_bits), Signal(signed(v_bits)), Signal(v_bits)
        m.d.sync += [wb_valid.eq(neuron.o_valid), wb_row.eq(neuron.o_row), wb_v.eq(neuron.v_new),
                     wb_delta.eq(neuron.delta)]
        if not f.hard:
            m.d.comb += act_lut_rd.addr.eq(neuron.v_new - f.lo)
        wb_act = wb_v if f.hard else act_lut_rd.data

        # -- shared memory port control ------------------------------------------------------
        # defaults: relaxation owns the read ports; writes come from write-back, host or commands
        m.d.comb += [state_rd.addr.eq(Cat(row_i, cur)), in_rd.addr.eq(row_i), tgt_rd.addr.eq(row_i),
                     bias_rd.addr.eq(row_i)]
        state_w_en, state_w_addr, state_w_data = Signal(), Signal(n_bits + 1), Signal(signed(v_bits))
        act_w_data = Signal(signed(a_bits))
        m.d.comb += [state_wr.en.eq(state_w_en), state_wr.addr.eq(state_w_addr), state_wr.data.eq(state_w_data)]
        for lane in range(P):
            m.d.comb += [act_wr[lane].en.eq(state_w_en), act_wr[lane].addr.eq(state_w_addr),
                         act_wr[lane].data.eq(act_w_data)]
        with m.If(wb_valid):
            m.d.comb += [state_w_en.eq(1), state_w_addr.eq(Cat(wb_row, ~cur)), state_w_data.eq(wb_v),
                         act_w_data.eq(wb_act)]
            m.d.sync += [rows_done.eq(rows_done + 1),
                         delta_max.eq(Mux(wb_delta > delta_max, wb_delta, delta_max))]

        # -- host access ---------------------------------------------------------------------
        # STATE writes land in both halves (two cycles): the host sets the initial state once.
        host_state_pending = Signal()
        host_state_addr = Signal(n_bits)
        host_state_data = Signal(signed(v_bits))
        if not f.hard:
            act_lut2 = self._rom(m, "act_lut_host", signed(a_bits), [int(v) for v in f.act_lut])
            act_lut2_rd = act_lut2.read_port(domain="comb")

        def act_of(v):
            if f.hard:
                return v
            m.d.comb += act_lut2_rd.addr.eq(v - f.lo)
            return act_lut2_rd.data

        with m.If(host_write & (region == hm.STATE) & host_state_pending):
            m.d.sync += error.eq(1)   # the second half of the previous STATE write needs this cycle
        with m.If(host_write & (region == hm.STATE) & ~host_state_pending):
            m.d.comb += [state_w_en.eq(1), state_w_addr.eq(Cat(offset[:n_bits], Const(0, 1))),
                         state_w_data.eq(bus.wdata), act_w_data.eq(act_of(bus.wdata[:v_bits].as_signed()))]
            m.d.sync += [host_state_pending.eq(1), host_state_addr.eq(offset[:n_bits]),
                         host_state_data.eq(bus.wdata)]
        with m.Elif(host_state_pending):
            m.d.comb += [state_w_en.eq(1), state_w_addr.eq(Cat(host_state_addr, Const(1, 1))),
                         state_w_data.eq(host_state_data), act_w_data.eq(act_of(host_state_data))]
            m.d.sync += host_state_pending.eq(0)
        with m.If(host_write & (region == hm.INPUT)):
            m.d.comb += [in_wr.en.eq(1), in_wr.addr.eq(offset[:n_bits]), in_wr.data.eq(bus.wdata)]
        with m.If(host_write & (region == hm.TARGET)):
            m.d.comb += [tgt_wr.en.eq(1), tgt_wr.addr.eq(offset[:n_bits]), tgt_wr.data.eq(bus.wdata)]

        # code and bias writes: host when idle, learner during LEARN
        lane_sel = offset[:lay.lane_bits] if lay.lane_bits else Const(0, 1)
        with m.If(host_write & (region == hm.CODES)):
            m.d.comb += [code_wr.addr.eq(offset[lay.lane_bits:]), code_wr.data.eq(Cat(*[bus.wdata[:E]] * P)),
                         code_wr.en.eq(1 << lane_sel)]
        with m.If(host_write & (region == hm.BIAS)):
            m.d.comb += [bias_wr.en.eq(1), bias_wr.addr.eq(offset[:n_bits]), bias_wr.data.eq(bus.wdata)]
        fp_w_en, fp_w_addr, fp_w_data = Signal(), Signal.like(fp_wr.addr), Signal(signed(v_bits))
        m.d.comb += [fp_wr.en.eq(fp_w_en), fp_wr.addr.eq(fp_w_addr), fp_wr.data.eq(fp_w_data)]
        with m.If(host_write & (region == hm.FIXPOINT)):
            m.d.comb += [fp_w_en.eq(1), fp_w_addr.eq(offset), fp_w_data.eq(bus.wdata)]

        # host reads: answer two cycles after the request (sync memory read + register)
        rd_region, rd_offset, rd_pending = Signal(4), Signal(hm.REGION_SHIFT), Signal()
        m.d.sync += [rd_pending.eq(bus.re), rd_region.eq(region), rd_offset.eq(offset)]
        with m.If(bus.re & ~busy):
            m.d.comb += [state_rd2.addr.eq(Cat(offset[:n_bits], cur)), fp_rd_b.addr.eq(offset),
                         code_rd.addr.eq(offset[lay.lane_bits:])]
            with m.If(region == hm.BIAS):
                m.d.comb += bias_rd.addr.eq(offset[:n_bits])
            with m.If(region == hm.INPUT):
                m.d.comb += in_rd.addr.eq(offset[:n_bits])
            with m.If(region == hm.TARGET):
                m.d.comb += tgt_rd.addr.eq(offset[:n_bits])
        rdata = Signal(32)
        fingerprint = int(cfg.fingerprint, 16)
        info = P | (N << 8) | (lay.batch << 20)
        with m.Switch(rd_region):
            with m.Case(hm.REG):
                with m.Switch(rd_offset):
                    with m.Case(hm.R_CMD):
                        m.d.comb += rdata.eq(Cat(busy, converged, error))
                    with m.Case(hm.R_STEPS):
                        m.d.comb += rdata.eq(steps)
                    with m.Case(hm.R_CYCLES):
                        m.d.comb += rdata.eq(cycles)
                    with m.Case(hm.R_UPDATES):
                        m.d.comb += rdata.eq(updates)
                    with m.Case(hm.R_SEED):
                        m.d.comb += rdata.eq(seed)
                    with m.Case(hm.R_FP_LO):
                        m.d.comb += rdata.eq(fingerprint & 0xFFFFFFFF)
                    with m.Case(hm.R_FP_HI):
                        m.d.comb += rdata.eq(fingerprint >> 32)
                    with m.Case(hm.R_INFO):
                        m.d.comb += rdata.eq(info)
                    with m.Case(hm.R_DELTA):
                        m.d.comb += rdata.eq(last_delta)
            with m.Case(hm.STATE):
                m.d.comb += rdata.eq(state_rd2.data.as_signed())
            with m.Case(hm.INPUT):
                m.d.comb += rdata.eq(in_rd.data.as_signed())
            with m.Case(hm.TARGET):
                m.d.comb += rdata.eq(tgt_rd.data.as_signed())
            with m.Case(hm.CODES):
                m.d.comb += rdata.eq(code_rd.data.word_select(rd_offset[:lay.lane_bits] if lay.lane_bits else 0, E))
            with m.Case(hm.BIAS):
                m.d.comb += rdata.eq(bias_rd.data)
            with m.Case(hm.FIXPOINT):
                m.d.comb += rdata.eq(fp_rd_b.data.as_signed())
        m.d.sync += [bus.rdata.eq(rdata), bus.rvalid.eq(rd_pending)]

        # -- learner wiring --------------------------------------------------------------------
        m.d.comb += [learner.seed.eq(seed), learner.updates.eq(updates)]
        with m.If(learner.active):
            m.d.comb += [
                idx_rd.addr.eq(learner.idx_addr), learner.idx_data.eq(idx_rd.data),
                code_rd.addr.eq(learner.code_rd_addr), learner.code_rd_data.eq(code_rd.data),
                code_wr.addr.eq(learner.code_wr_addr), code_wr.en.eq(learner.code_wr_en),
                code_wr.data.eq(learner.code_wr_data),
                bias_rd.addr.eq(learner.bias_rd_addr), learner.bias_rd_data.eq(bias_rd.data),
                bias_wr.addr.eq(learner.bias_wr_addr), bias_wr.en.eq(learner.bias_wr_en),
                bias_wr.data.eq(learner.bias_wr_data),
                fp_rd_a.addr.eq(learner.fp_addr_a), fp_rd_b.addr.eq(learner.fp_addr_b),
                learner.fp_data_a.eq(fp_rd_a.data), learner.fp_data_b.eq(fp_rd_b.data),
            ]

        # -- controller ------------------------------------------------------------------------
        item = Signal(n_bits + 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(start):
                    m.d.sync += [busy.eq(1), cycles.eq(0), error.eq(0)]
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                with m.Switch(op):
                    with m.Case(hm.OP_RELAX, hm.OP_STEP):
                        m.d.sync += [steps.eq(0), converged.eq(0)]
                        m.next = "STEP_START"
                    with m.Case(hm.OP_STORE, hm.OP_RESTORE):
                        m.d.sync += item.eq(0)
                        m.next = "COPY"
                    with m.Case(hm.OP_LEARN):
                        m.d.comb += learner.start.eq(1)
                        m.next = "LEARN"
                    with m.Default():
                        m.d.sync += [busy.eq(0), error.eq(1)]
                        m.next = "IDLE"
            with m.State("STEP_START"):
                m.d.comb += mac_start.eq(1)
                m.d.sync += [block.eq(0), rows_done.eq(0), delta_max.eq(0), issuing.eq(1)]
                m.next = "ISSUE"
            with m.State("ISSUE"):
                m.d.sync += block.eq(block + 1)
                with m.If(block == D - 1):
                    m.d.sync += issuing.eq(0)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(rows_done == n_rows):
                    m.next = "STEP_END"
            with m.State("STEP_END"):
                m.d.sync += [steps.eq(steps + 1), cur.eq(~cur), last_delta.eq(delta_max)]
                with m.If(delta_max <= tol):
                    m.d.sync += [converged.eq(1), busy.eq(0)]
                    m.next = "IDLE"
                with m.Elif((steps + 1 == max_steps) | (op == hm.OP_STEP)):
                    m.d.sync += busy.eq(0)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "STEP_START"
            with m.State("COPY"):
                # STORE: state[cur][i] -> fp[set][slot][i]; RESTORE: fp -> state, both halves
                with m.If(op == hm.OP_STORE):
                    m.d.comb += state_rd2.addr.eq(Cat(item[:n_bits], cur))
                    m.next = "STORE_WRITE"
                with m.Else():
                    m.d.comb += fp_rd_b.addr.eq(Cat(item[:n_bits], slot, fp_set))
                    m.next = "RESTORE_HALF0"
            with m.State("STORE_WRITE"):
                m.d.comb += [fp_w_en.eq(1), fp_w_addr.eq(Cat(item[:n_bits], slot, fp_set)),
                             fp_w_data.eq(state_rd2.data)]
                with m.If(item == N - 1):
                    m.d.sync += busy.eq(0)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += item.eq(item + 1)
                    m.next = "COPY"
            with m.State("RESTORE_HALF0"):
                held = Signal(signed(v_bits))
                m.d.sync += held.eq(fp_rd_b.data)
                m.d.comb += [state_w_en.eq(1), state_w_addr.eq(Cat(item[:n_bits], Const(0, 1))),
                             state_w_data.eq(fp_rd_b.data), act_w_data.eq(act_of(fp_rd_b.data))]
                m.next = "RESTORE_HALF1"
            with m.State("RESTORE_HALF1"):
                m.d.comb += [state_w_en.eq(1), state_w_addr.eq(Cat(item[:n_bits], Const(1, 1))),
                             state_w_data.eq(held), act_w_data.eq(act_of(held))]
                with m.If(item == N - 1):
                    m.d.sync += busy.eq(0)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += item.eq(item + 1)
                    m.next = "COPY"
            with m.State("LEARN"):
                with m.If(learner.done):
                    m.d.sync += [busy.eq(0), updates.eq(updates + 1)]
                    m.next = "IDLE"
        return m
