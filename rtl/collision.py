"""Memories whose reads never use a word written in the same cycle.

An Amaranth read port returns the old word when a write to the same address lands in the same
cycle. iCE40 and ECP5 block RAMs leave such a collision between their two ports undefined, so
yosys builds the old word in logic for every such read port:
- it delays the write by a cycle;
- it compares the read address with the delayed write's;
- it puts a multiplexer behind the RAM's output.

On the ULX3S design that was about 30 LUTs and 30 flip-flops per activation copy, and a compare
on the stream ROM's route to the copies' read addresses.

Where the engine never uses a read that collides, that logic is waste. Such a memory carries
`ATTRIBUTE` (`attrs()`), and `YOSYS_COMMANDS`, run before synthesis by `memprop build` and by
the gate-level flow alike, marks its collisions undefined. The RTL simulators keep Amaranth's
old-word behaviour. The gate-level simulations run the netlist a board gets, so they would show
a collision that does matter; so would any bit-exact test run under `poisoned()`, where such a
memory answers a colliding read with every bit inverted.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

from amaranth import Mux, Signal
from amaranth.lib import memory

_poison = contextvars.ContextVar("memprop_collision_poison", default=False)

#: The Yosys attribute of a memory whose colliding reads are never used. Yosys's Verilog front end
#: honours it by itself; a design read as RTLIL (`memprop build`) needs `YOSYS_COMMANDS`.
ATTRIBUTE = "no_rw_check"

#: Yosys commands, after reading the design: fold the read registers into the read ports (the
#: Verilog front end keeps them apart), gather each memory into one cell, then mark the marked
#: memories' collisions undefined. Amaranth's RTLIL gives a marked memory one read and one write
#: port (`check_ports`), so a one-bit mask; the Verilog round trip splits a write port per
#: granule, and its front end has marked those already.
YOSYS_COMMANDS = ("proc", "memory_dff", "memory_collect",
                  f"setparam -set RD_COLLISION_X_MASK 1'1 a:{ATTRIBUTE} t:$mem_v2 %i r:RD_PORTS=1 %i r:WR_PORTS=1 %i")


def attrs(**more) -> dict:
    """Memory attributes that mark its collisions as never used (plus `more`)."""
    return {ATTRIBUTE: 1, **more}


def check_ports(mem: memory.Memory) -> None:
    """`YOSYS_COMMANDS` set a one-bit mask: a marked memory has one read and one write port."""
    if mem.attrs.get(ATTRIBUTE) and (len(mem.read_ports), len(mem.write_ports)) != (1, 1):
        raise ValueError(f"a memory marked {ATTRIBUTE} needs one read and one write port, not "
                         f"{len(mem.read_ports)} and {len(mem.write_ports)}")


@contextmanager
def poisoned():
    """Memories elaborated inside answer a read that meets a write with a wrong word (`read_data`):
    a bit-exact simulation that still passes has used no such read."""
    token = _poison.set(True)
    try:
        yield
    finally:
        _poison.reset(token)


def read_data(m, rd: memory.ReadPort, wr: memory.WritePort):
    """The marked memory's read data: `rd.data`, or under `poisoned()` every bit of it inverted
    in the cycle after the read met a write to its address. Checks the memory's ports
    (`check_ports`): call it once both ports exist."""
    check_ports(rd.memory)
    if not _poison.get():
        return rd.data
    met = Signal(name="collision_met")
    m.d.sync += met.eq(rd.en & wr.en.any() & (rd.addr == wr.addr))
    return Mux(met, ~rd.data, rd.data)
