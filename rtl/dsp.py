"""A signed multiplier with registered operands and a registered product: p = a * b two cycles on.

Every multiplier of the engine (the MAC lanes, the fold's column products, the learner's
correlators) has this shape. Two back ends, chosen by `Config.hw.dsp` (or the platform, for
"auto"):

- **inferred**: `*` between two registers. yosys maps the product to the FPGA's multiplier
  (iCE40: SB_MAC16 with its registers; ECP5: a combinational MULT18X18D between fabric
  flip-flops) or to logic.
- **mult18x18d**: the ECP5 sysDSP MULT18X18D instantiated with its own output register
  (REG_OUTPUT_CLK = CLK0), the operands in fabric registers. yosys's ECP5 mapping never uses the
  cell's registers: its multipliers sit between fabric flip-flops, so every product crossed the
  fabric twice around the multiplier array, and those routes were the folded ULX3S design's
  longest paths. With the product registered inside, nextpnr times the multiplier array up to
  that register and the product's route starts a new path. (The cell's input registers too
  made the conductance tables' block RAMs, through the pair difference, to the DSP column one
  path: 67.4 MHz for the unfolded ULX3S design, session 14.)
  Gate-level and RTL simulations use memprop's model of the cell (sim/cell_models/MULT18X18D.v).
"""

from __future__ import annotations

from amaranth import ClockSignal, Const, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

BACKENDS = ("inferred", "mult18x18d")
#: Operand width of MULT18X18D (signed).
MULT18_BITS = 18
#: Cycles from the operands to the product.
LATENCY = 2


def resolve_backend(choice: str, platform) -> str:
    """`Config.hw.dsp` -> a back end; "auto" is MULT18X18D on an ECP5 build platform."""
    if choice != "auto":
        if choice not in BACKENDS:
            raise ValueError(f"hw.dsp must be 'auto' or one of {BACKENDS}, not {choice!r}")
        return choice
    return "mult18x18d" if getattr(platform, "family", None) == "ecp5" else "inferred"


class Multiplier(wiring.Component):
    """`p` = `a` * `b` (signed), LATENCY cycles after the operands; no reset (DSP registers have none)."""

    def __init__(self, a_bits: int, b_bits: int, *, backend: str = "inferred", name: str = "prod"):
        if backend not in BACKENDS:
            raise ValueError(f"multiplier back end must be one of {BACKENDS}, not {backend!r}")
        if backend == "mult18x18d" and max(a_bits, b_bits) > MULT18_BITS:
            raise ValueError(f"a MULT18X18D takes {MULT18_BITS}-bit operands, not {a_bits} x {b_bits}")
        self.a_bits, self.b_bits, self.backend, self.name = a_bits, b_bits, backend, name
        super().__init__({"a": In(signed(a_bits)), "b": In(signed(b_bits)), "p": Out(signed(a_bits + b_bits))})

    def elaborate(self, platform):
        m = Module()
        # the operands in fabric registers: on the ECP5 too (placed freely between their sources,
        # often block RAM reads and an adder, and the DSP column)
        a = Signal(signed(self.a_bits), name=f"{self.name}_a", reset_less=True)
        b = Signal(signed(self.b_bits), name=f"{self.name}_b", reset_less=True)
        m.d.sync += [a.eq(self.a), b.eq(self.b)]
        if self.backend == "inferred":
            p = Signal(signed(self.a_bits + self.b_bits), name=self.name, reset_less=True)
            m.d.sync += p.eq(a * b)
            m.d.comb += self.p.eq(p)
            return m
        # the product in the cell's output register; the operands sign-extended to its ports
        a18, b18, p36 = Signal(signed(MULT18_BITS)), Signal(signed(MULT18_BITS)), Signal(2 * MULT18_BITS)
        m.d.comb += [a18.eq(a), b18.eq(b), self.p.eq(p36[:self.a_bits + self.b_bits])]
        ports = {f"i_A{k}": a18[k] for k in range(MULT18_BITS)}
        ports |= {f"i_B{k}": b18[k] for k in range(MULT18_BITS)}
        ports |= {f"i_C{k}": Const(0, 1) for k in range(MULT18_BITS)}
        ports |= {f"o_P{k}": p36[k] for k in range(2 * MULT18_BITS)}
        zero, one = Const(0, 1), Const(1, 1)
        m.submodules.dsp = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="NONE", p_REG_INPUTB_CLK="NONE", p_REG_OUTPUT_CLK="CLK0",
            p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
            p_CLK0_DIV="ENABLED", p_GSR="ENABLED", p_RESETMODE="SYNC", p_SOURCEB_MODE="B_SHIFT",
            i_CLK0=ClockSignal(), i_CE0=one, i_RST0=zero,
            i_CLK1=zero, i_CLK2=zero, i_CLK3=zero, i_CE1=zero, i_CE2=zero, i_CE3=zero,
            i_RST1=zero, i_RST2=zero, i_RST3=zero,
            i_SIGNEDA=one, i_SIGNEDB=one, i_SOURCEA=zero, i_SOURCEB=zero,
            **ports)
        return m
