"""The engine's controller: one command at a time (RELAX, STEP, STORE, RESTORE, LEARN).

It owns the status the host reads (busy, converged, error, steps, cycles, max|dv|) and the
Jacobi half `cur`, and sequences the datapath:

- a relaxation step: D cycles of issue (`restart` then `advance` on the stream; `step_start`,
  which clears the MAC's running sum and the step's row count and max|dv|, in the first), drain
  until the cycle in which the last free row is written back, then STEP_END (flip `cur`,
  convergence and step limit) and straight into the next step's issue;
- RELAX / STEP with the store bit (when every unit is relaxed, `relax_store`): `store` is held
  through the command and every write-back also goes to fixed point (set, slot), so the last
  step's write-backs are what STORE would copy; the fields are checked as STORE's;
- STORE: read state[cur][0] (COPY), then per unit write fixed point (set, slot, i) while
  reading unit i + 1 (STORE_WRITE, `write_item` one behind `item`): N + 1 cycles;
- RESTORE: per unit, read the fixed point (COPY), write it to both state halves
  (RESTORE_HALF0/1): 3 cycles per unit;
- LEARN: start the learning unit and wait for its `done`;
- CHECKSUM: start the checksum walk (checksum.py) and wait for its `done`;
- BEGIN_LOAD, COMMIT: one cycle each (`begin_load` / `commit` pulse; a COMMIT without a
  BEGIN_LOAD before it is refused with the error bit).

`commands` counts the commands accepted since reset (mod 2^32): a host that lost the
response to a command write reads it to know whether the command ran.

Cycle counts are docs/rtl.md's cycle model (rtl/cycles.py).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from . import formal
from . import hostmap as hm

#: The command register's fields: opcode | sign << 4 | set << 6 | slot << 8 | store << 16.
COMMAND = data.StructLayout({"op": 4, "sign": 2, "set": 2, "slot": 8, "store": 1})

#: Controller cycles per relaxation step besides the stream and the pipeline: STEP_END. The
#: step's first issue cycle clears the step's counters (no STEP_START cycle), and DRAIN leaves in
#: the cycle the last row is written back (not the cycle after, when its count shows it).
STEP_OVERHEAD = 1


class Controller(wiring.Component):
    def __init__(self, *, n: int, n_rows: int, words: int, v_bits: int, n_bits: int, slot_bits: int,
                 tol: int, max_steps: int, slots: int | None = None, relax_store: bool = False,
                 keep_sums: bool = False):
        self.n, self.n_rows, self.words = n, n_rows, words
        self.keep_sums = keep_sums                # hw.keep_sums: a step may read the last step's sums
        self.relax_store = relax_store            # RELAX / STEP may store as they go (all units relaxed)
        self.n_bits, self.slot_bits = n_bits, slot_bits
        self.slots = (1 << slot_bits) if slots is None else slots    # fixed-point slots per set (the batch)
        self.tol, self.max_steps = tol, max_steps
        super().__init__({
            # host side
            "command": In(COMMAND), "command_valid": In(1),   # a write of R_CMD while idle
            "fault": In(1),                                   # a host write the engine refused
            "busy": Out(1), "converged": Out(1), "error": Out(1),
            "steps": Out(32), "cycles": Out(32), "last_delta": Out(v_bits),
            "learned": Out(1),                                # LEARN finished (t += 1)
            # relaxation
            "cur": Out(1), "sign": Out(signed(2)),
            "step_start": Out(1), "restart": Out(1), "advance": Out(1), "issuing": Out(1),
            "word": Out(max((words - 1).bit_length(), 1)),      # the word issued (code memory address)
            # hw.keep_sums: the step in flight reads the kept sums (n_rows row ends, no weights);
            # `invalidate`: a host write that changes what they were computed from
            "reuse": Out(1), "invalidate": In(1),
            "row_written": In(1), "row_delta": In(v_bits),    # write-back of one free row
            # STORE / RESTORE
            "store_read": Out(1), "store_write": Out(1),
            "restore_read": Out(1), "restore_write": Out(1), "restore_half": Out(1),
            "item": Out(n_bits), "write_item": Out(n_bits), "set": Out(2), "slot": Out(slot_bits),
            "store": Out(1),                                  # RELAX / STEP: write-backs also to (set, slot)
            # LEARN
            "learn_start": Out(1), "learn_done": In(1),
            # weights on a board (engine version 2): CHECKSUM, BEGIN_LOAD, COMMIT
            "checksum_start": Out(1), "checksum_done": In(1),
            "begin_load": Out(1), "commit": Out(1), "loading": In(1),
            "commands": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        n_rows, D = self.n_rows, self.words
        op = Signal(4)
        busy, converged, error = self.busy, self.converged, self.error
        item = Signal(self.n_bits + 1)
        w_item = Signal(self.n_bits)                # STORE: the unit written, one behind the unit read
        m.d.comb += [self.item.eq(item[:self.n_bits]), self.write_item.eq(w_item)]
        with m.If(busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(self.fault):
            m.d.sync += error.eq(1)

        cmd = self.command
        # STORE / RESTORE address fixed point (set, slot): only sets LO, HI, FREE and slots below
        # the batch exist (a larger set would address past the fixed-point memory, a larger slot
        # would be truncated onto another slot), so other fields are refused like an unknown opcode
        fields_ok = Signal()
        with m.If(self.command_valid & ~busy):
            m.d.sync += self.commands.eq(self.commands + 1)
        with m.If(self.command_valid):
            m.d.sync += [fields_ok.eq((cmd.set <= hm.SET_FREE) & (cmd.slot < self.slots)),
                         op.eq(cmd.op), self.set.eq(cmd.set), self.slot.eq(cmd.slot),
                         self.store.eq(cmd.store & ((cmd.op == hm.OP_RELAX) | (cmd.op == hm.OP_STEP))),
                         self.sign.eq(Mux(cmd.sign == hm.SIGN_PLUS, 1, Mux(cmd.sign == hm.SIGN_MINUS, -1, 0)))]

        # rows written back and max|dv| of the step in flight
        rows_done = Signal(range(n_rows + 1))
        delta_max = Signal.like(self.last_delta)
        # cleared in the step's first issue cycle, from a register of its own that is set on the way
        # in: the state decode fanned out to both counters' resets was a long path of the folded
        # ULX3S design
        at_step_start = Signal()
        m.d.sync += at_step_start.eq(0)
        with m.If(self.row_written):
            m.d.sync += [rows_done.eq(rows_done + 1),
                         delta_max.eq(Mux(self.row_delta > delta_max, self.row_delta, delta_max))]
        with m.If(at_step_start):
            m.d.sync += [rows_done.eq(0), delta_max.eq(0)]
        # the MAC's clears (every column accumulator of a folded design) from that register too, not
        # from the state's decode
        m.d.comb += self.step_start.eq(at_step_start)

        # the issue's stream controls and word are registers: they fan out to every lane's entry
        # registers and to the code memory's block RAMs (from the FSM's decode, that route across
        # the die was the ULX3S's longest path); restart in the first issue cycle, advance after it
        block = Signal(range(max(D, 2)))
        first, advance = Signal(), Signal()
        m.d.comb += [self.restart.eq(first), self.advance.eq(advance), self.word.eq(block)]
        # hw.keep_sums: the sums of the last step hold for the current state when that step left
        # it unchanged (max|dv| = 0) and nothing since changed the state, the inputs or the codes
        # (a host write the engine flags, RESTORE, LEARN, a weight load); then the next step
        # issues n_rows row ends instead of D words (`reuse`), and the engine reads the sums
        sums_valid = Signal()
        last_issue = Signal()                       # the issue cycle is the step's last
        m.d.comb += last_issue.eq(Mux(self.reuse, block == n_rows - 1, block == D - 1) if self.keep_sums
                                  else block == D - 1)
        if self.keep_sums:
            with m.If(self.invalidate):
                m.d.sync += sums_valid.eq(0)
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.command_valid):
                    m.d.sync += [busy.eq(1), self.cycles.eq(0), error.eq(0)]
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                with m.Switch(op):
                    with m.Case(hm.OP_RELAX, hm.OP_STEP):
                        # the store bit: refused without the feature or with STORE's fields out of range
                        with m.If(self.store & ~(fields_ok & self.relax_store)):
                            m.d.sync += [busy.eq(0), error.eq(1)]
                            m.next = "IDLE"
                        with m.Else():
                            m.d.sync += [self.steps.eq(0), converged.eq(0)]
                            self._start_step(m, block, first, at_step_start, sums_valid)
                    with m.Case(hm.OP_STORE, hm.OP_RESTORE):
                        with m.If(fields_ok):
                            m.d.sync += item.eq(0)
                            with m.If(op == hm.OP_RESTORE):
                                m.d.sync += sums_valid.eq(0)
                            m.next = "COPY"
                        with m.Else():
                            m.d.sync += [busy.eq(0), error.eq(1)]
                            m.next = "IDLE"
                    with m.Case(hm.OP_LEARN):
                        m.d.comb += self.learn_start.eq(1)
                        m.d.sync += sums_valid.eq(0)
                        m.next = "LEARN"
                    with m.Case(hm.OP_CHECKSUM):
                        m.d.comb += self.checksum_start.eq(1)
                        m.next = "CHECKSUM"
                    with m.Case(hm.OP_BEGIN_LOAD):
                        m.d.comb += self.begin_load.eq(1)
                        m.d.sync += sums_valid.eq(0)
                        m.d.sync += busy.eq(0)
                        m.next = "IDLE"
                    with m.Case(hm.OP_COMMIT):
                        m.d.comb += self.commit.eq(self.loading)
                        m.d.sync += sums_valid.eq(0)
                        m.d.sync += [busy.eq(0), error.eq(~self.loading)]
                        m.next = "IDLE"
                    with m.Default():
                        m.d.sync += [busy.eq(0), error.eq(1)]
                        m.next = "IDLE"
            with m.State("ISSUE"):
                m.d.sync += [block.eq(block + 1), first.eq(0), advance.eq(~last_issue)]
                with m.If(last_issue):
                    m.d.sync += self.issuing.eq(0)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                # the last row's write-back (its count and max|dv| are in by STEP_END)
                with m.If(self.row_written & (rows_done == n_rows - 1)):
                    m.next = "STEP_END"
            with m.State("STEP_END"):
                m.d.sync += [self.steps.eq(self.steps + 1), self.cur.eq(~self.cur), self.last_delta.eq(delta_max)]
                if self.keep_sums:
                    m.d.sync += sums_valid.eq(delta_max == 0)
                with m.If(delta_max <= self.tol):
                    m.d.sync += [converged.eq(1), busy.eq(0)]
                    m.next = "IDLE"
                # steps = max_steps - 1 (a constant compare, not an adder ahead of one: the carry
                # chain through the FSM to busy was the iCEBreaker's longest path)
                with m.Elif((self.steps == self.max_steps - 1) | (op == hm.OP_STEP)):
                    m.d.sync += busy.eq(0)
                    m.next = "IDLE"
                with m.Else():
                    # this step changed the state (max|dv| > tol >= 0): the next one streams
                    self._start_step(m, block, first, at_step_start, 0)
            with m.State("COPY"):
                # STORE: state[cur][i] -> fp[set][slot][i]; RESTORE: fp -> state, both halves
                with m.If(op == hm.OP_STORE):
                    m.d.comb += self.store_read.eq(1)
                    m.d.sync += [w_item.eq(item), item.eq(item + 1)]
                    m.next = "STORE_WRITE"
                with m.Else():
                    m.d.comb += self.restore_read.eq(1)
                    m.next = "RESTORE_HALF0"
            with m.State("STORE_WRITE"):
                # a unit a cycle: write the unit read last cycle, read the next one
                m.d.comb += self.store_write.eq(1)
                with m.If(w_item == self.n - 1):
                    m.d.sync += busy.eq(0)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.store_read.eq(1)
                    m.d.sync += [w_item.eq(item), item.eq(item + 1)]
            with m.State("RESTORE_HALF0"):
                m.d.comb += [self.restore_write.eq(1), self.restore_half.eq(0)]
                m.next = "RESTORE_HALF1"
            with m.State("RESTORE_HALF1"):
                m.d.comb += [self.restore_write.eq(1), self.restore_half.eq(1)]
                self._next_item(m, item)
            with m.State("LEARN"):
                with m.If(self.learn_done):
                    m.d.comb += self.learned.eq(1)
                    m.d.sync += busy.eq(0)
                    m.next = "IDLE"
            with m.State("CHECKSUM"):
                with m.If(self.checksum_done):
                    m.d.sync += busy.eq(0)
                    m.next = "IDLE"
        formal.hook(self, m, fsm=fsm, op=op, item=item, w_item=w_item, block=block, rows_done=rows_done,
                    delta_max=delta_max, first=first, fields_ok=fields_ok,
                    at_step_start=at_step_start, sums_valid=sums_valid)
        return m

    def _start_step(self, m: Module, block, first, at_step_start, reuse) -> None:
        """Into a step's first issue cycle: word 0 with `restart`, the step's counters cleared;
        with hw.keep_sums the step reads the kept sums when `reuse` (they hold)."""
        m.d.sync += [block.eq(0), self.issuing.eq(1), first.eq(1), at_step_start.eq(1)]
        if self.keep_sums:
            m.d.sync += self.reuse.eq(reuse)
        m.next = "ISSUE"

    def _next_item(self, m: Module, item) -> None:
        with m.If(item == self.n - 1):
            m.d.sync += self.busy.eq(0)
            m.next = "IDLE"
        with m.Else():
            m.d.sync += item.eq(item + 1)
            m.next = "COPY"
