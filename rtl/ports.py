"""The signatures between the engine's components (docs/rtl.md, "Blocks").

Every signature is written from the side that *starts* a transaction (the initiator: the
relaxation datapath, the host bus, the controller or the learning unit); a memory or
generator component takes the flipped side (`In(...)`).

- `CodePort`: one word of P device entries of the code memory, one access per cycle.
  SPRAM (iCE40) is single-ported: a cycle either reads the word at `addr` or writes the
  entries whose bit of `w_en` is set (per-entry enables). `r_data` is the word read in the
  previous cycle; after a cycle with any `w_en` bit set it is undefined.
- `WordPort`: the same contract for one entry (biases).
- `StreamPort`: the synapse stream, word by word: `restart` presents word 0 in the next
  cycle, `advance` the word after the one presented; the entries are registered (one cycle
  after the request, like a block-RAM read).
- `ReadPort`: a synchronous memory read (data one cycle after the address).
- `StoreEvent`: what STORE writes into the fixed-point store, one state per cycle (so a
  learning unit may accumulate while the fixed points are stored).
- `LearnerPort`: everything the learning unit uses.
"""

from __future__ import annotations

from amaranth import signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

#: The fields of one stream entry (one lane of a word).
def stream_entry(n_bits: int) -> data.StructLayout:
    """valid: a real synapse (not padding); last: its row ends here; col: the presynaptic
    unit j; row: the postsynaptic unit i; above / diag: a valid entry with j > i / j = i
    (registered with the entry, so the learner's walk does not compare col with row)."""
    return data.StructLayout({"valid": 1, "last": 1, "col": n_bits, "row": n_bits, "above": 1, "diag": 1})


class CodePort(wiring.Signature):
    """Read a word of `lanes` entries, or write some of them (initiator's view)."""

    def __init__(self, addr_bits: int, lanes: int, entry_bits: int):
        self.addr_bits, self.lanes, self.entry_bits = addr_bits, lanes, entry_bits
        super().__init__({
            "addr": Out(addr_bits),
            "w_en": Out(lanes),                       # per-entry write enables; 0: read
            "w_data": Out(unsigned(lanes * entry_bits)),
            "r_data": In(unsigned(lanes * entry_bits)),
        })


class WordPort(wiring.Signature):
    """Read or write one word (initiator's view), same timing as `CodePort`."""

    def __init__(self, addr_bits: int, bits: int):
        super().__init__({"addr": Out(addr_bits), "w_en": Out(1), "w_data": Out(bits), "r_data": In(bits)})


class ReadPort(wiring.Signature):
    """A synchronous read (initiator's view): data one cycle after the address."""

    def __init__(self, addr_bits: int, shape):
        super().__init__({"addr": Out(addr_bits), "data": In(shape)})


class StreamPort(wiring.Signature):
    """Walk the synapse stream word by word (initiator's view)."""

    def __init__(self, lanes: int, n_bits: int):
        self.lanes, self.n_bits = lanes, n_bits
        super().__init__({
            "restart": Out(1),
            "advance": Out(1),
            "entries": In(data.ArrayLayout(stream_entry(n_bits), lanes)),
        })


class StoreEvent(wiring.Signature):
    """One state copied by STORE: fixed point `set`, minibatch `slot`, `unit`, `value`."""

    def __init__(self, slot_bits: int, n_bits: int, v_bits: int):
        super().__init__({"valid": Out(1), "set": Out(2), "slot": Out(slot_bits), "unit": Out(n_bits),
                          "value": Out(signed(v_bits))})


class CarryClear(wiring.Signature):
    """A host write of a code (`word`, `lane`) or of a bias (`bias`, `unit`) in weight bank `bank`:
    the learner zeroes that entry's carry (fixed.rounding "carry"), so loaded weights start from none."""

    def __init__(self, word_bits: int, lane_bits: int, n_bits: int):
        super().__init__({"valid": Out(1), "bias": Out(1), "word": Out(word_bits), "lane": Out(max(lane_bits, 1)),
                          "unit": Out(n_bits), "bank": Out(1)})


class LearnerPort(wiring.Signature):
    """The learning unit's side of the engine (the learner is the initiator of every port).

    start / done: LEARN begins / ends (done for one cycle); `active` while it owns the
    code, bias and stream ports. `seed` and `updates` are the random numbers' key and
    counter t. `fp_a`/`fp_b` read the fixed-point store (address = set, slot, unit as
    `Layout.fixpoint_offset`; only with `fixpoint_reads`: a learner that keeps its own copies
    of the rows' fixed points reads none). `stored` shows every STORE write as it happens.
    `decay` (only for a Config whose learning rate decays) is the host's decay steps e, at most 31.
    """

    def __init__(self, *, word_bits: int, lanes: int, entry_bits: int, n_bits: int, slot_bits: int,
                 v_bits: int, decay_bits: int = 0, carry: bool = False, fixpoint_reads: bool = True):
        fp_bits = 2 + slot_bits + n_bits
        members = {
            "start": In(1), "active": Out(1), "done": Out(1),
            "seed": In(32), "updates": In(32),
            "stream": Out(StreamPort(lanes, n_bits)),
            "codes": Out(CodePort(word_bits, lanes, entry_bits)),
            "bias": Out(WordPort(n_bits, entry_bits)),
            "stored": In(StoreEvent(slot_bits, n_bits, v_bits)),
        }
        if fixpoint_reads:
            members |= {"fp_a": Out(ReadPort(fp_bits, signed(v_bits))), "fp_b": Out(ReadPort(fp_bits, signed(v_bits)))}
        if decay_bits:
            members["decay"] = In(decay_bits)
        if carry:   # rounding "carry": the weight bank in use, and host writes that zero a carry
            from .schedule import ceil_log2

            members["bank"] = In(1)
            members["carry_clear"] = In(CarryClear(word_bits, ceil_log2(lanes), n_bits))
        super().__init__(members)

    @classmethod
    def for_layout(cls, layout, *, fixpoint_reads: bool = True) -> "LearnerPort":
        """The port of one configuration (`hostmap.Layout`)."""
        from .hostmap import DECAY_BITS
        from .schedule import ceil_log2

        return cls(word_bits=max(ceil_log2(layout.schedule.depth), 1), lanes=layout.lanes,
                   entry_bits=layout.entry_bits, n_bits=layout.n_bits, slot_bits=layout.slot_bits,
                   v_bits=layout.fmt.state_bits, decay_bits=DECAY_BITS if layout.fmt.decay_shift else 0,
                   carry=layout.fmt.cfg.fixed.rounding == "carry", fixpoint_reads=fixpoint_reads)
