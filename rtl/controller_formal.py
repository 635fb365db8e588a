"""Formal properties of the engine's controller (rtl/controller.py) and the harness.

The controller is proven on its own, with the datapath and the learning unit replaced by an
environment that keeps their documented contracts:

- a command arrives (`command_valid`) only while the controller is idle: the engine's bus
  decode gates it with `~busy` and turns a write while busy into `fault`;
- a relaxation step's datapath writes back each of the `n_rows` free rows once, in any order
  of cycles, the last one exactly when the cycle model puts it (the pipeline latency after the
  last issued word: READ_LATENCY + mac_latency(P) + FINAL_LATENCY), with any max|dv|;
- the learning unit answers `learn_done` once per `learn_start`, whenever;
- `invalidate` (hw.keep_sums: a host write of the state, inputs or codes) comes only while idle.

Every other input (host faults, the opcodes and fields of commands) is free. The commands are
those of the engine's version 1 (RELAX, STEP, STORE, RESTORE, LEARN) and every opcode that
hostmap does not define (which must be refused); opcodes added later need properties of
their own.
"""

from __future__ import annotations

from amaranth import Cat, Const, Elaboratable, Module, Mux, ResetSignal, Signal, Value
from amaranth.asserts import AnySeq
from amaranth.lib import wiring

from memprop.model.config import Config

from . import hostmap as hm
from .controller import Controller
from .cycles import relax_cycles, restore_cycles, step_cycles, store_cycles
from .engine import FINAL_LATENCY, READ_LATENCY
from .formal import Properties, attach, past
from .mac import mac_latency
from .schedule import formats

__all__ = ["ControllerProof", "engine_controller"]

#: the commands whose behaviour these properties specify
MODELLED = (hm.OP_RELAX, hm.OP_STEP, hm.OP_STORE, hm.OP_RESTORE, hm.OP_LEARN)
#: the controller states those commands use (a state for another command is never entered)
KNOWN_STATES = ("IDLE", "DISPATCH", "ISSUE", "DRAIN", "STEP_END", "COPY", "STORE_WRITE",
                "RESTORE_HALF0", "RESTORE_HALF1", "LEARN")


def engine_controller(cfg: Config, relax_store: bool | None = None) -> Controller:
    """The controller exactly as `Engine` builds it for `cfg`; `relax_store` overrides whether it
    honours the store bit (the proofs turn it on wherever every unit is relaxed, whatever the lanes,
    so the small proof configurations cover the store path too)."""
    lay = hm.Layout(formats(cfg))
    sch = lay.schedule
    return Controller(n=cfg.network.n, n_rows=len(sch.rows), words=sch.depth, v_bits=lay.fmt.state_bits,
                      n_bits=lay.n_bits, slot_bits=lay.slot_bits, tol=cfg.fixed.tol_lsb,
                      max_steps=cfg.network.max_steps, slots=lay.batch,
                      relax_store=lay.relax_store if relax_store is None else relax_store,
                      keep_sums=cfg.hw.keep_sums)


def _defined_opcodes() -> set[int]:
    return {v for k, v in vars(hm).items() if k.startswith("OP_") and isinstance(v, int)}


class ControllerProof(Elaboratable):
    def __init__(self, props: Properties, cfg: Config):
        self.props, self.cfg = props, cfg
        self.lay = hm.Layout(formats(cfg))
        self.relax_store = len(self.lay.schedule.rows) == cfg.network.n     # the store path wherever it can be

    def elaborate(self, platform):
        m = Module()
        props, cfg, lay = self.props, self.cfg, self.lay
        sch = lay.schedule
        Properties.assume(m, ~ResetSignal())
        m.submodules.ctrl = ctrl = engine_controller(cfg, self.relax_store)
        N, n_rows, D = cfg.network.n, len(sch.rows), sch.depth
        max_steps, tol = cfg.network.max_steps, cfg.fixed.tol_lsb
        pipe = READ_LATENCY + mac_latency(cfg.hw.lanes) + FINAL_LATENCY
        step_len = step_cycles(sch)            # = D + pipe + 1, the cycle model
        # the words a step issues: D, or n_rows row ends when it reads the kept sums (hw.keep_sums)
        issued = Mux(ctrl.reuse, n_rows, D) if cfg.hw.keep_sums else Const(D)
        last_row_at = Signal(range(D + pipe), name="env_last_row_at")   # the step's cycle (its first issue = 0)
        m.d.comb += last_row_at.eq(issued - 1 + pipe)                  # of the last write-back

        # every input free, then the contracts of the engine around the controller
        for path, member, value in ctrl.signature.flatten(ctrl):
            if member.flow == wiring.In:
                value = Value.cast(value)
                m.d.comb += value.eq(AnySeq(len(value)))
        cmd = ctrl.command
        props.assume(m, ~ctrl.command_valid | ~ctrl.busy)
        props.assume(m, ~(ctrl.command_valid & ctrl.fault))          # one bus write per cycle
        props.assume(m, ~(ctrl.invalidate & ctrl.busy))               # host writes land only while idle
        invalid = ~Cat(*(cmd.op == op for op in _defined_opcodes())).any()
        props.assume(m, ~ctrl.command_valid | Cat(*(cmd.op == op for op in MODELLED)).any() | invalid)

        # the datapath: rows written back during a step
        since = Signal(range(step_len + 2), name="env_step_cycle")   # cycle of the step from 1 (0: step_start)
        started = Signal(name="env_started")
        written = Signal(range(n_rows + 1), name="env_rows_written")
        with m.If(ctrl.step_start):
            m.d.sync += [since.eq(1), started.eq(1), written.eq(0)]
        with m.Else():
            with m.If(since != step_len + 1):
                m.d.sync += since.eq(since + 1)
            with m.If(ctrl.row_written):
                m.d.sync += written.eq(written + 1)
        in_step = started & ~ctrl.step_start & (since <= last_row_at)
        props.assume(m, ~ctrl.row_written | (in_step & (written < n_rows)))
        props.assume(m, ~(in_step & (since == last_row_at)) | (ctrl.row_written & (written == n_rows - 1)))
        props.assume(m, ~(ctrl.row_written & (written == n_rows - 1)) | (since == last_row_at))
        # the learning unit: one done per start
        learning = Signal(name="env_learning")
        with m.If(ctrl.learn_start):
            m.d.sync += learning.eq(1)
        with m.Elif(ctrl.learn_done):
            m.d.sync += learning.eq(0)
        props.assume(m, ~ctrl.learn_done | (learning & ~ctrl.learn_start))

        attach(ctrl, self._properties(since, started, written, learning, step_len, last_row_at, issued, N, n_rows,
                                      D, max_steps, tol))
        return m

    def _properties(self, since, started, written, learning, step_len, last_row_at, issued, N, n_rows, D,
                    max_steps, tol):
        props, lay = self.props, self.lay
        sch = lay.schedule

        def attach_fn(m: Module, ctrl: Controller, i):
            st = {name: i.fsm.ongoing(name) for name in i.fsm.encoding}
            op = i.op
            busy = ctrl.busy
            was_busy = past(m, busy, "mon_was_busy")
            ended = was_busy & ~busy
            # hw.keep_sums: the command's first step read the kept sums (it then took D - n_rows
            # cycles fewer: cycles.reuse_step_cycles)
            first_reused = Signal(name="mon_first_reused")
            with m.If(ctrl.command_valid & ~busy):
                m.d.sync += first_reused.eq(0)
            with m.Elif(ctrl.step_start & ctrl.reuse):
                m.d.sync += first_reused.eq(1)
            saved = Mux(first_reused, D - n_rows, 0)
            # the cycle model (rtl/cycles.py) of the command that just ended
            expected = Signal(32, name="mon_expected_cycles")
            refused = Signal(name="mon_refused")       # an unknown opcode, or STORE / RESTORE fields out of range
            invalid = ~Cat(*(op == c for c in _defined_opcodes())).any()
            relaxing_op = (op == hm.OP_RELAX) | (op == hm.OP_STEP)
            # RELAX / STEP with the store bit: refused without the feature or with fields out of range
            store_refused = relaxing_op & ctrl.store & ~(i.fields_ok & self.relax_store)
            m.d.comb += refused.eq(invalid | (((op == hm.OP_STORE) | (op == hm.OP_RESTORE)) & ~i.fields_ok)
                                   | store_refused)
            with m.Switch(op):
                with m.Case(hm.OP_STORE):
                    m.d.comb += expected.eq(Mux(i.fields_ok, store_cycles(N), 1))
                with m.Case(hm.OP_RESTORE):
                    m.d.comb += expected.eq(Mux(i.fields_ok, restore_cycles(N), 1))
                with m.Case(hm.OP_STEP):
                    m.d.comb += expected.eq(Mux(store_refused, 1, relax_cycles(sch, 1) - saved))
                with m.Case(hm.OP_RELAX):
                    m.d.comb += expected.eq(Mux(store_refused, 1, 1 + ctrl.steps * step_len - saved))
                with m.Default():
                    m.d.comb += expected.eq(1)
            modelled_end = ended & (op != hm.OP_LEARN)
            props.check(m, "controller.command_cycles", ~modelled_end | (ctrl.cycles == expected),
                        "RELAX, STEP, STORE, RESTORE and a refused command end (busy falls) after exactly the "
                        "cycles of the cycle model (rtl/cycles.py: 1 + k (D + L), less D - n_rows when the first "
                        "step read the kept sums; 2 + N, 1 + 3N, 1)")
            if self.cfg.hw.keep_sums:
                # the specification of when the kept sums hold, apart from the controller's own flag:
                # the last step to end left every row unchanged (max|dv| = 0), and since then no
                # invalidating host write, LEARN or accepted RESTORE came
                held, last_zero = Signal(name="mon_sums_held"), Signal(name="mon_last_step_zero")
                with m.If(st["STEP_END"]):
                    m.d.sync += [held.eq(1), last_zero.eq(i.delta_max == 0)]
                with m.If(ctrl.invalidate | ctrl.learn_start
                          | (st["DISPATCH"] & (op == hm.OP_RESTORE) & i.fields_ok)):
                    m.d.sync += held.eq(0)
                props.check(m, "controller.reuse_only_where_sums_hold",
                            ~(ctrl.step_start & ctrl.reuse) | (held & last_zero & (ctrl.steps == 0)),
                            "hw.keep_sums: a step reads the kept sums only as its command's first step, when "
                            "the last step left the state unchanged and no host write of the state, inputs or "
                            "codes, no LEARN and no RESTORE came since")
                in_step = st["ISSUE"] | st["DRAIN"] | st["STEP_END"]
                props.check(m, "controller.keep", (~i.sums_valid | (held & last_zero))
                            & (~(in_step & ctrl.reuse) | (held & last_zero & (ctrl.steps == 0)))
                            & (~(in_step & (ctrl.steps == 0) & ~i.at_step_start) | (first_reused == ctrl.reuse))
                            & (~(in_step & (ctrl.steps != 0)) | ~ctrl.reuse),
                            "lemma: the kept sums' flag implies the specification's, a step that reads them is "
                            "its command's first, and the monitor knows it from the second step on", lemma=True)
                props.cover(m, "controller.relax_reused", ended & (op == hm.OP_RELAX) & first_reused,
                            "a RELAX whose first step read the kept sums ends")
            bound = Signal(32, name="mon_bound")
            with m.Switch(op):
                with m.Case(hm.OP_RELAX):
                    m.d.comb += bound.eq(relax_cycles(sch, max_steps))
                with m.Default():
                    m.d.comb += bound.eq(expected)
            was_done = past(m, ctrl.learn_done, "mon_was_learn_done")
            props.check(m, "controller.busy_ends_within_bound",
                        (~busy | (ctrl.cycles < bound) | (op == hm.OP_LEARN))
                        & (~(busy & (op == hm.OP_LEARN) & was_done) | st["IDLE"] | st["DISPATCH"])
                        & (~(ended & (op == hm.OP_LEARN)) | was_done),
                        "every command ends: RELAX within its cycle-model bound (max_steps steps), the others "
                        "when the model says; LEARN in the cycle after the learning unit's done")
            props.check(m, "controller.relax_stops_as_specified",
                        ~(ended & relaxing_op & ~store_refused)
                        | ((ctrl.converged == (ctrl.last_delta <= tol))
                           & (ctrl.converged | (op == hm.OP_STEP) | (ctrl.steps == max_steps))
                           & (ctrl.steps <= max_steps)),
                        "a relaxation stops when max|dv| <= tol_lsb (converged) or after max_steps steps (STEP: one)")
            stepping = st["ISSUE"] | st["DRAIN"] | st["STEP_END"]
            selected = ctrl.store_read | ctrl.store_write | ctrl.restore_read | ctrl.restore_write
            reads = ctrl.store_read | ctrl.restore_read | ctrl.restore_write
            props.check(m, "controller.addresses_in_range",
                        (~selected | ((ctrl.set <= hm.SET_FREE) & (ctrl.slot < lay.batch)))
                        & (~reads | (ctrl.item < N)) & (~ctrl.store_write | (ctrl.write_item < N))
                        & (~(ctrl.advance | ctrl.restart) | (i.block < D))
                        & (~(ctrl.store & stepping) | ((ctrl.set <= hm.SET_FREE) & (ctrl.slot < lay.batch))),
                        "STORE / RESTORE, and a RELAX / STEP that stores as it goes, address only units below N, "
                        "the three fixed-point sets and the batch's slots (nothing outside the fixed-point memory, "
                        "no slot aliased); a step issues only words below D")
            held = [past(m, x, f"mon_was_{name}") for name, x in (("set", ctrl.set), ("slot", ctrl.slot),
                                                                   ("sign", ctrl.sign), ("op", op),
                                                                   ("store", ctrl.store))]
            was_fault = past(m, ctrl.fault, "mon_was_fault")
            props.check(m, "controller.busy_refuses_commands",
                        (~(was_busy & busy) | ((ctrl.set == held[0]) & (ctrl.slot == held[1])
                                               & (ctrl.sign == held[2]) & (op == held[3])
                                               & (ctrl.store == held[4])))
                        & (~was_fault | ctrl.error) & (~(ended & refused) | ctrl.error),
                        "while a command runs its opcode and fields never change; a host write the engine "
                        "refused (while busy) sets the error bit; an unknown opcode, or a STORE / RESTORE of a "
                        "set or slot that does not exist, is refused with the error bit")

            # -- lemmas ---------------------------------------------------------------------------
            def lemma(name, test, text):
                props.check(m, f"controller.{name}", test, f"lemma: {text}", lemma=True)

            base = 1 + ctrl.steps * step_len - Mux(ctrl.steps == 0, 0, saved)
            now = Mux(ctrl.step_start, 0, since)          # the step's cycle, its first issue = 0
            known = Cat(*(st[name] for name in KNOWN_STATES if name in st)).any()
            lemma("state", known & (busy == ~st["IDLE"])
                  & (~st["DISPATCH"] | (ctrl.cycles == 0))
                  & (~(st["COPY"] | st["STORE_WRITE"] | st["RESTORE_HALF0"] | st["RESTORE_HALF1"])
                     | (((i.item < N) | st["STORE_WRITE"]) & i.fields_ok & (ctrl.set <= hm.SET_FREE)
                        & (ctrl.slot < lay.batch)))
                  & (~(st["COPY"] & (op == hm.OP_STORE)) | ((ctrl.cycles == 1) & (i.item == 0)))
                  & (~st["STORE_WRITE"] | ((op == hm.OP_STORE) & (ctrl.cycles == 2 + i.w_item)
                                           & (i.item == i.w_item + 1) & (i.w_item < N)))
                  & (~(st["COPY"] & (op != hm.OP_STORE)) | ((op == hm.OP_RESTORE) & (ctrl.cycles == 1 + 3 * i.item)))
                  & (~st["RESTORE_HALF0"] | ((op == hm.OP_RESTORE) & (ctrl.cycles == 2 + 3 * i.item)))
                  & (~st["RESTORE_HALF1"] | ((op == hm.OP_RESTORE) & (ctrl.cycles == 3 + 3 * i.item)))
                  & (~st["LEARN"] | ((op == hm.OP_LEARN) & learning)) & (learning == st["LEARN"]),
                  "state, item and cycle counter of STORE / RESTORE / LEARN")
            steps_ok = (op == hm.OP_RELAX) & (ctrl.steps < max_steps) | (op == hm.OP_STEP) & (ctrl.steps == 0)
            lemma("step",
                  (~st["ISSUE"] | (steps_ok & (ctrl.cycles == base + now) & (i.block == now)
                                   & (i.first == (now == 0)) & (i.at_step_start == (now == 0)) & (now <= issued - 1)
                                   & ctrl.issuing))
                  & (~st["DRAIN"] | (steps_ok & (ctrl.cycles == base + since) & (since >= issued)
                                     & (since <= last_row_at) & ~ctrl.issuing & ~i.at_step_start))
                  & (~st["STEP_END"] | (steps_ok & (ctrl.cycles == base + since) & (since == last_row_at + 1)))
                  & (i.rows_done == written)
                  & (~((st["ISSUE"] & (now != 0)) | st["DRAIN"] | st["STEP_END"]) | (started & (written <= n_rows)))
                  & (~((st["ISSUE"] & (now != 0)) | st["DRAIN"]) | (written < n_rows))
                  & (~(st["STEP_END"]) | (written == n_rows))
                  & (ctrl.issuing == st["ISSUE"]) & (~i.at_step_start | st["ISSUE"]) & (ctrl.steps <= max_steps)
                  & (~(stepping & ctrl.store) | (i.fields_ok & self.relax_store & (ctrl.set <= hm.SET_FREE)
                                                 & (ctrl.slot < lay.batch)))
                  & (~stepping | ~ctrl.converged),
                  "a step's cycle, block and row counters follow the step's clock")

            props.cover(m, "controller.relax_converged", ended & (op == hm.OP_RELAX) & ctrl.converged,
                        "a RELAX that converges")
            props.cover(m, "controller.relax_second_step", st["ISSUE"] & i.first & (op == hm.OP_RELAX) & (ctrl.steps == 1),
                        "a RELAX goes on to a second step")
            props.cover(m, "controller.store_done", ended & (op == hm.OP_STORE), "a STORE completes")
            if self.relax_store:
                props.cover(m, "controller.relax_store_done", ended & (op == hm.OP_RELAX) & ctrl.store & ~ctrl.error,
                            "a RELAX that stores its fixed point as it goes completes")
            props.cover(m, "controller.relax_store_refused", ended & store_refused & ctrl.error,
                        "a RELAX / STEP with the store bit it cannot honour is refused")
            props.cover(m, "controller.restore_done", ended & (op == hm.OP_RESTORE), "a RESTORE completes")
            props.cover(m, "controller.learn_done", ended & (op == hm.OP_LEARN), "a LEARN completes")
            props.cover(m, "controller.refused", ended & invalid & ctrl.error, "an unknown opcode is refused")
            props.cover(m, "controller.refused_fields", ended & refused & ~invalid & ctrl.error,
                        "a STORE / RESTORE of a set or slot that does not exist is refused")
            props.cover(m, "controller.fault_while_busy", was_busy & busy & was_fault & ctrl.error,
                        "a host write while busy raises the error bit")

        return attach_fn
