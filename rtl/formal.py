"""Formal properties next to the components: the registry, the component hook, small monitors.

A component exposes its internals to formal properties with one line at the end of its
`elaborate`:

    formal.hook(self, m, fsm=fsm, crc=crc, ...)

Outside a proof the hook does nothing (and adds no logic). A proof harness `attach`es a
property function to the component before elaboration; the hook then calls it with the
component's own `Module`, so properties and their monitors can read internal signals and
live in the component's scope. The property functions sit beside their components
(`rtl/link_formal.py`, `rtl/uart_formal.py`, ...); `memprop formal` (memprop/formal.py) runs
them with SymbiYosys.

Every assertion and cover is registered by name in a `Properties` object. Each one drives a
named wire (`assert__<name>`, `cover__<name>`) so the runner can tell from a trace (VCD)
which property failed or which cover was reached: Amaranth's `$check` cells carry no
stable names of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Literal

from amaranth import Module, Signal, Value
from amaranth.hdl import Assert, Assume, Cover

__all__ = ["Check", "Properties", "attach", "hook", "signal_name"]

Kind = Literal["assert", "cover"]


@dataclass(frozen=True)
class Check:
    """One declared property: `name` is `component.what`, `text` says what it guarantees."""

    name: str
    kind: Kind
    text: str
    lemma: bool = False          # an invariant that the induction needs (still proven)
    config: str = ""             # label of the configuration the proof was built for

    @property
    def component(self) -> str:
        return self.name.split(".", 1)[0]


def signal_name(kind: Kind, name: str) -> str:
    """The wire that carries a property's value: `assert__link__no_corrupt_write`."""
    return f"{kind}__" + name.replace(".", "__")


class Properties:
    """The named assertions, covers and assumptions of one proof."""

    def __init__(self, config: str = "", *, lemmas: bool = True):
        self.config = config
        self.lemmas = lemmas            # False: leave lemmas out (a bounded check needs none)
        self.checks: list[Check] = []

    def _add(self, check: Check) -> None:
        if any(c.name == check.name and c.kind == check.kind for c in self.checks):
            raise ValueError(f"property {check.name!r} is declared twice in one proof")
        self.checks.append(check)

    def check(self, m: Module, name: str, test, text: str, *, lemma: bool = False) -> None:
        """Assert `test` in every cycle."""
        if lemma and not self.lemmas:
            return
        self._add(Check(name, "assert", text, lemma, self.config))
        wire = Signal(name=signal_name("assert", name))
        m.d.comb += [wire.eq(test), Assert(wire, name)]

    def cover(self, m: Module, name: str, test, text: str) -> None:
        """`test` must be reachable (a proof is not vacuous)."""
        self._add(Check(name, "cover", text, False, self.config))
        wire = Signal(name=signal_name("cover", name))
        m.d.comb += [wire.eq(test), Cover(wire, name)]

    @staticmethod
    def assume(m: Module, test) -> None:
        """Constrain the environment (inputs), never the design under proof."""
        m.d.comb += Assume(test)

    @property
    def asserts(self) -> list[Check]:
        return [c for c in self.checks if c.kind == "assert"]

    @property
    def covers(self) -> list[Check]:
        return [c for c in self.checks if c.kind == "cover"]


# -- the hook --------------------------------------------------------------------------------

PropertyFn = Callable[[Module, object, SimpleNamespace], None]


def attach(component, fn: PropertyFn):
    """Make `component`'s `hook` call `fn(m, component, internals)`; returns the component."""
    component._formal_properties = fn
    return component


def hook(component, m: Module, **internals) -> None:
    """Called at the end of a component's `elaborate`; a no-op unless a proof `attach`ed properties."""
    fn = getattr(component, "_formal_properties", None)
    if fn is not None:
        fn(m, component, SimpleNamespace(**internals))


# -- small monitors -----------------------------------------------------------------------------

def past(m: Module, value, name: str, init: int = 0) -> Signal:
    """`value` one cycle ago (Amaranth 0.5 has no `Past`)."""
    reg = Signal.like(Value.cast(value), name=name, init=init)
    m.d.sync += reg.eq(value)
    return reg


def crc16_bitwise(m: Module, crc, byte, name: str) -> Signal:
    """CRC-16/CCITT-FALSE of one byte, bit by bit (MSB first): a second, independent form of
    the link's CRC step (`link.crc16_next` derives XOR taps instead). Each bit step is a named
    signal: nested expressions would repeat the whole tree at every step."""
    from amaranth import Cat, Const, Mux

    for bit in reversed(range(8)):
        nxt = Signal(16, name=f"{name}_bit{bit}")
        shifted = Cat(Const(0, 1), crc[:15])
        m.d.comb += nxt.eq(Mux(crc[15] ^ byte[bit], shifted ^ 0x1021, shifted))
        crc = nxt
    return crc
