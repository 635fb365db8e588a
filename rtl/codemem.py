"""The weight-code memory: one word of P device entries per stream position word.

One `CodePort` (ports.py): a cycle reads a whole word or writes the entries whose enable is
set. Two back ends, chosen by `Config.hw.code_memory` (or the platform, for "auto"):

- **block**: Amaranth `lib.memory` (block RAM on iCE40 and ECP5), P x entry bits wide;
- **spram**: the iCE40 UltraPlus SPRAMs (spram.py). Entries are padded to whole nibbles
  (the SPRAM's write-mask granularity) and laid side by side across ceil(P x nibbles / 4)
  blocks of 16 bits, so every entry can be written alone. Four blocks hold 64 bits per
  word: four 16-bit entries (linear-256 pairs) or five 12-bit ones (64-level pairs), at
  most 16384 words. Codes in SPRAM are loaded over the host link (the bitstream cannot
  initialise it).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In

from . import collision
from . import spram as sp
from .ports import CodePort

BACKENDS = ("block", "spram")


def spram_layout(lanes: int, entry_bits: int) -> tuple[int, int]:
    """(bits per entry rounded to nibbles, SPRAM blocks) of a word of `lanes` entries."""
    padded = -(-entry_bits // 4) * 4
    return padded, -(-(lanes * padded) // sp.WIDTH)


def spram_fits(depth: int, lanes: int, entry_bits: int, blocks: int = sp.BLOCKS) -> str | None:
    """None when the code memory fits the SPRAMs, else the reason."""
    padded, need = spram_layout(lanes, entry_bits)
    if need > blocks:
        return (f"{lanes} lanes of {entry_bits}-bit entries need {need} SPRAM blocks of 16 bits, "
                f"the device has {blocks}")
    if depth > sp.DEPTH:
        return f"{depth} words exceed the SPRAM depth of {sp.DEPTH}"
    return None


def resolve_backend(choice: str, platform) -> str:
    """`Config.hw.code_memory` -> a back end; "auto" is SPRAM on an iCE40 UltraPlus platform."""
    if choice != "auto":
        return choice
    device = getattr(platform, "device", "") or ""
    return "spram" if device.startswith("iCE40UP") else "block"


class CodeMemory(wiring.Component):
    """`port`: the flipped `CodePort`; `primitive`: instantiate SB_SPRAM256KA (not the model)."""

    def __init__(self, depth: int, lanes: int, entry_bits: int, *, backend: str = "block",
                 primitive: bool = False, init=None):
        if backend not in BACKENDS:
            raise ValueError(f"code memory backend must be one of {BACKENDS}, not {backend!r}")
        if init is not None and backend == "spram":
            raise ValueError("the code memory is in SPRAM, which a bitstream cannot initialise: "
                             "load the weights over the link (memprop board load)")
        self.init = list(init) if init is not None else []    # words from address 0 (block RAM)
        if backend == "spram":
            reason = spram_fits(depth, lanes, entry_bits)
            if reason:
                raise ValueError(f"the code memory does not fit SPRAM: {reason}")
        self.depth, self.lanes, self.entry_bits = depth, lanes, entry_bits
        self.backend, self.primitive = backend, primitive
        self.addr_bits = max((depth - 1).bit_length(), 1)
        super().__init__({"port": In(CodePort(self.addr_bits, lanes, entry_bits))})

    def elaborate(self, platform):
        m = Module()
        if self.backend == "block":
            self._block(m)
        else:
            self._spram(m, self.primitive or platform is not None)
        return m

    def _block(self, m: Module) -> None:
        port, E = self.port, self.entry_bits
        # a write cycle's read (of the word written) is never used: no old-word logic (collision.py)
        m.submodules.mem = mem = memory.Memory(shape=self.lanes * E, depth=self.depth, init=self.init,
                                               attrs=collision.attrs())
        rd = mem.read_port()
        wr = mem.write_port(granularity=E)
        m.d.comb += [rd.addr.eq(port.addr), wr.addr.eq(port.addr), wr.data.eq(port.w_data),
                     wr.en.eq(port.w_en), port.r_data.eq(collision.read_data(m, rd, wr))]

    def _spram(self, m: Module, primitive: bool) -> None:
        port, P, E = self.port, self.lanes, self.entry_bits
        padded, blocks = spram_layout(P, E)
        pad = Const(0, padded - E) if padded > E else None
        # the word as the SPRAMs hold it: entries on nibble boundaries, zero-filled to 16 x blocks
        lanes_in = [port.w_data[k * E:(k + 1) * E] for k in range(P)]
        wide_in = Cat(*[Cat(x, pad) if pad is not None else x for x in lanes_in])
        nib_en = Cat(*[port.w_en[k].replicate(padded // 4) for k in range(P)])
        wide_out = Cat(*[self._block_of(m, b, primitive, wide_in, nib_en) for b in range(blocks)])
        m.d.comb += port.r_data.eq(Cat(*[wide_out[k * padded: k * padded + E] for k in range(P)]))

    def _block_of(self, m: Module, b: int, primitive: bool, wide_in, nib_en):
        cell = sp.SPRAM(primitive=primitive, depth=self.depth)
        m.submodules[f"spram{b}"] = cell
        lo = b * sp.WIDTH
        data = wide_in[lo: lo + sp.WIDTH]
        mask = nib_en[b * sp.NIBBLES:(b + 1) * sp.NIBBLES]
        m.d.comb += [cell.address.eq(self.port.addr), cell.data_in.eq(data), cell.mask_wren.eq(mask),
                     cell.wren.eq(mask.any())]
        return cell.data_out
