"""boards/depth.py: LUT levels from register to register on a netlist JSON."""

from __future__ import annotations

import json

import pytest

from memprop.boards.depth import logic_depth


class Netlist:
    """A yosys-style JSON netlist built cell by cell; bits are numbered nets."""

    def __init__(self):
        self.cells = {}

    def cell(self, name, kind, inputs=None, outputs=None):
        conn, dirs = {}, {}
        for port, bit in (inputs or {}).items():
            conn[port], dirs[port] = [bit], "input"
        for port, bit in (outputs or {}).items():
            conn[port], dirs[port] = [bit], "output"
        self.cells[name] = {"type": kind, "connections": conn, "port_directions": dirs}

    def ff(self, name, d, q):
        self.cell(f"{name}_TRELLIS_FF_Q", "TRELLIS_FF", {"CLK": 1, "DI": d}, {"Q": q})

    def lut(self, name, ins, out):
        self.cell(name, "LUT4", dict(zip("ABCD", ins)), {"Z": out})

    def json(self):
        return {"modules": {"top": {"cells": self.cells, "netnames": {}}}}


def chain_design():
    """a -> 3 LUTs -> b; a -> LUT -> carry chain of 4 CCU2C -> c; a LUT pair in a loop -> d."""
    n = Netlist()
    n.ff("a[0]", 50, 10)
    n.lut("l1", [10], 11)
    n.lut("l2", [11, 10], 12)
    n.lut("l3", [12, "0"], 13)                     # a constant input is no path
    n.ff("b[3]", 13, 14)
    n.lut("m", [10], 20)
    carry = 21
    n.cell("c0", "CCU2C", {"A0": 20, "CIN": 1}, {"S0": 30, "COUT": carry})
    for k in range(1, 4):
        n.cell(f"c{k}", "CCU2C", {"A0": 14, "CIN": carry}, {"S0": 30 + k, "COUT": carry + k})
        carry += k
    n.ff("c", 33, 40)
    n.lut("loop1", [41, 10], 42)
    n.lut("loop2", [42], 41)
    n.ff("d", 42, 43)
    return n


def test_levels_per_endpoint_and_groups():
    report = logic_depth(chain_design().json(), top="top", deep=2)
    # endpoints: a.DI (undriven: 0), b.DI (3), c.DI (m and the first carry cell's logic input: 2;
    # the chain adds nothing), d.DI (the loop is cut where it closes: loop1 from a, 1)
    assert report["histogram"] == {0: 1, 1: 1, 2: 1, 3: 1}
    assert report["max_levels"] == 3 and report["endpoints_deep"] == 2
    assert report["deepest"] == [{"levels": 3, "endpoints": 1, "from": "a", "to": "b"},
                                 {"levels": 2, "endpoints": 1, "from": "a", "to": "c"}]


def test_the_deepest_input_of_a_carry_chain_wins():
    """x (three LUTs) enters the chain at its second cell, y (one LUT) at its first: the sum's
    register is four levels from x."""
    n = Netlist()
    n.ff("x", 1, 10)
    n.ff("y", 1, 20)
    n.lut("x1", [10], 11)
    n.lut("x2", [11], 12)
    n.lut("x3", [12], 13)
    n.lut("y1", [20], 21)
    n.cell("c0", "CCU2C", {"A0": 21}, {"COUT": 30})
    n.cell("c1", "CCU2C", {"A0": 13, "CIN": 30}, {"COUT": 31})
    n.cell("c2", "CCU2C", {"CIN": 31}, {"S0": 32})
    n.ff("sum[5]", 32, 40)
    report = logic_depth(n.json(), top="top", deep=3)
    assert report["deepest"] == [{"levels": 4, "endpoints": 1, "from": "x", "to": "sum"}]


def test_distributed_ram_read_is_a_level_and_its_write_an_endpoint():
    n = Netlist()
    n.ff("addr", 1, 10)
    n.lut("decode", [10], 11)
    n.cell("ram", "TRELLIS_DPR16X4", {"RAD0": 11, "DI0": 11, "WCK": 1}, {"DO0": 12})
    n.ff("q", 12, 13)
    report = logic_depth(n.json(), top="top", deep=1)
    assert report["histogram"] == {0: 1, 1: 1, 2: 1}      # addr.DI, ram.DI0 (1), q.DI (decode + read: 2)


def test_a_deep_chain_needs_no_recursion():
    n = Netlist()
    n.ff("src", 1, 2)
    for k in range(5000):
        n.lut(f"l{k}", [2 + k], 3 + k)
    n.ff("dst", 5002, 9999)
    assert logic_depth(n.json(), top="top")["max_levels"] == 5000


def test_unknown_module_is_named(tmp_path):
    path = tmp_path / "netlist.json"
    path.write_text(json.dumps(chain_design().json()))
    with pytest.raises(ValueError, match="no module 'memprop'.*top"):
        logic_depth(path)
