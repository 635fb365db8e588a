"""Which units' fixed points differ between the HI and LO sets (`hw.learn_skip`).

A synapse {i, j} learns C_ij = sum over slots of rho(HI_i) rho(HI_j) - rho(LO_i) rho(LO_j), a bias
C_i = sum of rho(HI_i) - rho(LO_i) (docs/numerics.md section 5). Where neither unit differs in any
slot, C = 0, so the update is zero under every rounding: no pulse, the carry kept. Once training
has converged most minibatches change no unit at all, so a learner that knows which units changed
can pass over the rest and end such a LEARN at once, with the same result.

This block keeps that knowledge up to date as the fixed points are written, never at LEARN:
- a copy of both sets (address: HI flag, slot, unit), written with every STORE event;
- the same cycle it reads the *other* set's word at the event's slot and unit (the two addresses
  differ in the set bit, so the read never meets the write);
- the next cycle it compares, and the cycle after sets the slot's flag of that unit to "the new
  word differs";
- `changed` (per unit, any slot) and `any_changed` are registers behind the flags.

The flags reset with the `sync` domain while the copies keep their words; a board resets it only
until its PLL locks, when every memory still holds its initial zeros, and a host writes every fixed
point of both sets (RELAX with the store bit, or STORE) before each LEARN anyway.

`busy` is high while an event is on its way to `changed` and `any_changed`; the learner waits for
it in INIT (learn.py). A training host sees RELAX or STORE finish before it writes LEARN, by which
time `busy` is low; only a host writing fixed points over the bus right before LEARN waits.
"""

from amaranth import Cat, Module, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from . import collision

#: Cycles from an event at the inputs to its effect on `any_changed` (copy read, compare, flag,
#: changed, any).
LATENCY = 5


class ChangedUnits(wiring.Component):
    """Per unit: do its HI and LO fixed points differ in some slot? From the STORE events."""

    def __init__(self, n: int, n_bits: int, slot_bits: int, value_bits: int):
        if n > 1 << n_bits:
            self._MustUse__silence = True      # refused, never to be elaborated: no "unused" warning
            raise ValueError(f"{n} units need more than {n_bits} unit bits")
        self.n, self.n_bits, self.slot_bits, self.value_bits = n, n_bits, slot_bits, value_bits
        super().__init__({
            "en": In(1),                          # a fixed point is written
            "hi": In(1),                          # ... to the HI set (else LO)
            "slot": In(unsigned(max(slot_bits, 1))),
            "unit": In(unsigned(n_bits)),
            "value": In(signed(value_bits)),      # the word the learner keeps (its activation)
            "changed": Out(n),                    # unit u differs in some slot (a register)
            "any_changed": Out(1),                # some unit does (a register)
            "busy": Out(1),                       # an event has not reached both yet
        })

    def elaborate(self, platform):
        m = Module()
        n, nb, sb = self.n, self.n_bits, self.slot_bits
        slot = self.slot[:sb]
        copy = memory.Memory(shape=signed(self.value_bits), depth=2 << (sb + nb), init=[], attrs=collision.attrs())
        m.submodules.copy = copy
        wr, rd = copy.write_port(), copy.read_port()
        m.d.comb += [wr.en.eq(self.en), wr.addr.eq(Cat(self.unit, slot, self.hi)), wr.data.eq(self.value),
                     rd.addr.eq(Cat(self.unit, slot, ~self.hi))]
        other = collision.read_data(m, rd, wr)
        slots = 1 << sb
        # the event, a cycle on, beside the other set's word
        q_en, q_unit, q_slot = Signal(), Signal(nb), Signal(max(sb, 1))
        q_value = Signal(signed(self.value_bits))
        m.d.sync += [q_en.eq(self.en), q_unit.eq(self.unit), q_slot.eq(slot), q_value.eq(self.value)]
        # the compare registered, one copy per slot, beside the slot and the unit one-hot: each flag's
        # enable is then an AND of registers, and no compare fans out to every flag (at N = 100, B = 8
        # the ULX3S's slowest path)
        w_en, w_differs = Signal(), Signal(slots)
        w_slot, w_unit = Signal(slots), Signal(n)
        m.d.sync += [w_en.eq(q_en), w_differs.eq(Cat(*[q_value != other] * slots)),
                     w_slot.eq(1 << q_slot[:sb] if sb else 1), w_unit.eq(Cat(*[q_unit == u for u in range(n)]))]
        flags = [[Signal(name=f"flag_{s}_{u}") for u in range(n)] for s in range(slots)]
        for s in range(slots):
            for u in range(n):
                with m.If(w_en & w_slot[s] & w_unit[u]):
                    m.d.sync += flags[s][u].eq(w_differs[s])
        per_unit = [Cat(*[flags[s][u] for s in range(slots)]).any() for u in range(n)]
        m.d.sync += [self.changed.eq(Cat(*per_unit)), self.any_changed.eq(self.changed.any())]
        # in flight: at the copy (en), the compare (q_en), the flags (w_en), `changed`, `any_changed`
        f_en, c_en = Signal(), Signal()
        m.d.sync += [f_en.eq(w_en), c_en.eq(f_en)]
        m.d.comb += self.busy.eq(self.en | q_en | w_en | f_en | c_en)
        return m
