"""Weights from device entries: the conductance maps GMAP[class][code] (numerics.md, sec. 3).

`WeightLookup` turns `lanes` packed device entries into their weights, one cycle later (the
table reads are synchronous): a single device reads w = GMAP[m][c], a differential pair
w = GMAP[m+][c+] - GMAP[m-][c-]. The tables are the model's (`Formats.device.gmap`), held
in ROM exactly as the model builds them, two read ports per copy.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from memprop.model.numerics import bitlen_signed


def entry_fields(layout, entry) -> list[tuple]:
    """(code, class) per device of a packed entry (`hostmap.Layout.pack_entry` order)."""
    out, at = [], 0
    for _ in range(layout.devices):
        code = entry[at: at + layout.code_bits]
        at += layout.code_bits
        cls = entry[at: at + layout.class_bits] if layout.class_bits else Const(0, 1)
        at += layout.class_bits
        out.append((code, cls))
    return out


def gmap_image(layout) -> list[int]:
    """GMAP flattened by the table address {class, code}."""
    tables = layout.fmt.device
    flat = [0] * (1 << (layout.class_bits + layout.code_bits))
    for cls in range(tables.classes):
        for c in range(tables.levels):
            flat[(cls << layout.code_bits) | c] = int(tables.gmap[cls, c])
    return flat


def g_bits(layout) -> int:
    """Width of one GMAP entry; a weight (a difference of two) takes one bit more."""
    return bitlen_signed(int(abs(layout.fmt.device.gmap).max()))


class WeightLookup(wiring.Component):
    """`entries` (packed, `lanes` of them) in; their weights out one cycle later."""

    def __init__(self, layout, lanes: int):
        self.layout = layout
        self.lanes = lanes
        self.w_bits = g_bits(layout) + 1
        super().__init__({
            "entries": In(data.ArrayLayout(unsigned(layout.entry_bits), lanes)),
            "weights": Out(data.ArrayLayout(signed(self.w_bits), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        lay = self.layout
        image = gmap_image(lay)
        ports = []
        for p in range(self.lanes * lay.devices):
            if p % 2 == 0:        # a copy of the table serves two read ports
                mem = memory.Memory(shape=signed(g_bits(lay)), depth=len(image), init=image)
                m.submodules[f"gmap{p // 2}"] = mem
            ports.append(mem.read_port())
        for lane in range(self.lanes):
            fields = entry_fields(lay, self.entries[lane])
            lane_ports = ports[lane * lay.devices:(lane + 1) * lay.devices]
            for port, (code, cls) in zip(lane_ports, fields):
                m.d.comb += port.addr.eq(Cat(code, cls) if lay.class_bits else code)
            w = lane_ports[0].data - lane_ports[1].data if lay.devices == 2 else lane_ports[0].data
            m.d.comb += self.weights[lane].eq(w)
        return m
