"""Registers repeated per group of lanes, so that no one flop drives every lane.

One register whose fan-out reaches every lane of a wide engine is a long route across the die;
at P = 32 such routes were the ULX3S's longest paths. The remedy is a copy of the register per
`LANES_PER_COPY` lanes, each placed near its lanes. Equal copies would be merged back into one
flop by yosys, so each copy gets its own init; the logic that uses them must never read the init.
"""

from __future__ import annotations

from amaranth import Shape, Signal

#: Lanes served by one copy.
LANES_PER_COPY = 4


def copy_of(lane: int) -> int:
    """The copy that serves `lane`."""
    return lane // LANES_PER_COPY


def lane_copies(name: str, shape, lanes: int, spread: bool = True) -> list[Signal]:
    """Copies `name0`, `name1`, ... of one register for `lanes` lanes (one copy if not `spread`),
    with distinct inits."""
    shape = Shape.cast(shape)
    count = -(-lanes // LANES_PER_COPY) if spread else 1
    values = 1 << (shape.width - shape.signed)          # non-negative inits the shape holds
    if count > values:
        raise ValueError(f"{count} copies of {name} need distinct inits: {shape} holds {values}")
    return [Signal(shape, name=f"{name}{g}", init=g) for g in range(count)]
