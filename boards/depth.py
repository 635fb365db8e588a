"""Logic depth of a synthesised design: LUT levels from register to register, per endpoint.

nextpnr's report names one critical path per clock; which paths come next is invisible until the
next build. Counting LUT levels on yosys' netlist (the JSON that nextpnr reads, before
placement) shows every deep endpoint at once, grouped by the registers at both ends, so a timing
change can be judged on all of them and not only on the one route the placer happened to make
longest. Routing is not counted: on the ECP5 a long route costs as much as several LUTs, so the
depth says where logic is deep, not where a build will fail.

A level is one LUT (an ECP5 LUT4 with its slice multiplexers PFUMX / L6MUX21, an iCE40 SB_LUT4,
which also computes its SB_CARRY's sum), an ECP5 carry cell's logic input or a distributed-RAM
read; a carry chain itself adds none. Every other cell (flip-flops, block RAMs, DSPs, I/O, PLLs)
starts and ends paths, and so does a distributed RAM's write port.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

#: Combinational cells: type -> {input port (regex) -> levels added from it to the outputs}.
#: Inputs not listed are endpoints (a distributed RAM's write port).
COMBINATIONAL = {
    "LUT4": {r".*": 1},
    "PFUMX": {r".*": 0},
    "L6MUX21": {r".*": 0},
    "CCU2C": {r"CIN": 0, r".*": 1},
    "TRELLIS_DPR16X4": {r"RAD\d*": 1},
    "SB_LUT4": {r".*": 1},
    "SB_CARRY": {r".*": 0},
}

#: Clock inputs are not data endpoints.
CLOCK_PORTS = {"CLK", "CLKA", "CLKB", "WCK", "C", "CLKI", "RCLK", "WCLK", "CLOCK"}


def _group(cell_name: str | None) -> str:
    """A cell's register group: its name without bit indices and techmap suffixes."""
    if not cell_name:
        return "(constant)"
    name = re.split(r"_TRELLIS_FF|_SB_DFF|_LUT4", cell_name)[0]
    return re.sub(r"\[\d+\]", "", name)


def _weight(cell_type: str, port: str) -> int | None:
    for pattern, levels in COMBINATIONAL[cell_type].items():
        if re.fullmatch(pattern, port):
            return levels
    return None


def module_of(netlist: str | Path | dict, top: str) -> dict:
    """Module `top` of a yosys JSON netlist (a path or the loaded JSON)."""
    data = json.loads(Path(netlist).read_text()) if not isinstance(netlist, dict) else netlist
    try:
        return data["modules"][top]
    except KeyError:
        known = ", ".join(sorted(data.get("modules", {})))
        raise ValueError(f"netlist has no module {top!r} (modules: {known})") from None


class Paths:
    """LUT levels into any net bit of one module, and the cell its deepest path starts at."""

    def __init__(self, module: dict):
        self.cells = cells = module["cells"]
        driver: dict[int, tuple[str, str]] = {}
        for name, cell in cells.items():
            for port, bits in cell["connections"].items():
                if cell["port_directions"].get(port) == "output":
                    for bit in bits:
                        if isinstance(bit, int):
                            driver[bit] = (name, port)

        def inputs(cell) -> list[tuple[int, int]]:
            """(driven net bit, levels it adds) of a combinational cell's path inputs."""
            out = []
            for port, bits in cell["connections"].items():
                if cell["port_directions"].get(port) == "input":
                    w = _weight(cell["type"], port)
                    if w is not None:
                        out.extend((bit, w) for bit in bits if isinstance(bit, int) and bit in driver)
            return out

        in_progress = (-1, None)
        memo: dict[int, tuple[int, str | None]] = {}

        def depth(bit) -> tuple[int, str | None]:
            """(levels, source cell) of the deepest path into this net bit (an iterative post-order
            walk: a 32-bit carry chain or a long LUT cascade would exhaust Python's recursion)."""
            if not isinstance(bit, int) or bit not in driver:
                return 0, None
            stack = [(bit, False)]
            while stack:
                b, expanded = stack.pop()
                if memo.get(b, in_progress) is not in_progress:
                    continue
                name = driver[b][0]
                cell = cells[name]
                if cell["type"] not in COMBINATIONAL:
                    memo[b] = (0, name)
                    continue
                if not expanded:
                    memo[b] = in_progress
                    stack.append((b, True))
                    stack.extend((src, False) for src, _ in inputs(cell) if src not in memo)
                    continue
                best: tuple[int, str | None] = (0, None)
                for src, w in inputs(cell):
                    found = memo.get(src, in_progress)
                    if found is in_progress:             # a combinational loop: cut here
                        continue
                    if found[0] + w > best[0] or (found[0] + w == best[0] and best[1] is None):
                        best = (found[0] + w, found[1])
                memo[b] = best
            return memo[bit]
        self.depth = depth


def logic_depth(netlist: str | Path | dict, top: str = "memprop", deep: int = 6, worst: int = 20) -> dict:
    """LUT levels into every data input of a sequential cell of `top`.

    Returns `histogram` ({levels: endpoints}), `max_levels`, and `deepest`: up to `worst`
    (source group, endpoint group) pairs with `deep` or more levels, deepest first, each with
    its levels and endpoint count."""
    paths = Paths(module_of(netlist, top))
    cells, depth = paths.cells, paths.depth
    histogram: Counter[int] = Counter()
    pairs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for name, cell in cells.items():
        kind = cell["type"]
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) != "input" or port in CLOCK_PORTS:
                continue
            if kind in COMBINATIONAL and _weight(kind, port) is not None:
                continue                            # inside a path, not its end
            for bit in bits:
                levels, origin = depth(bit)
                histogram[levels] += 1
                if levels >= deep:
                    pairs[(_group(origin), _group(name))].append(levels)
    deepest = sorted(({"levels": max(v), "endpoints": len(v), "from": src, "to": dst}
                      for (src, dst), v in pairs.items()), key=lambda e: (-e["levels"], -e["endpoints"]))
    return {"histogram": dict(sorted(histogram.items())), "max_levels": max(histogram, default=0),
            "deep": deep, "endpoints_deep": sum(n for k, n in histogram.items() if k >= deep),
            "deepest": deepest[:worst]}
