"""Every slow register of a routed design, not only the one path nextpnr reports.

nextpnr's report names one critical path per clock, so the path that comes next is invisible
until the next (ten-minute) build. With `--detailed-timing-report` it also lists every net that
feeds a register input, with the latest arrival time of a signal at that input, routing
included: the period that register needs. This module reads that list, keeps the data inputs of
clocked cells (flip-flops, block RAMs, DSPs), groups them by register (the name without bit
indices) and names, from the synthesised netlist, the deepest logic path into the worst input
of each group (depth.py). The arrival is nextpnr's; the path named beside it is the deepest in
LUT levels, which on a long route need not be the latest one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from .depth import Paths, _group, module_of

#: ECP5 cells whose inputs end a path (clocked), by netlist type (nextpnr keeps the synthesised
#: names of flip-flops, RAMs and DSPs; cells it makes while packing are logic). iCE40 reports are
#: not read: nextpnr-ice40 packs a LUT and its flip-flop into one cell and times the LUT's inputs.
SEQUENTIAL_TYPES = {"TRELLIS_FF", "DP16KD", "PDPW16KD", "MULT18X18D", "ALU54B", "TRELLIS_DPR16X4",
                    "TRELLIS_IO", "EHXPLLL"}
#: Packed pins -> the synthesised cell's port (TRELLIS_FF's direct input, a LUT RAM's write data).
PORT_ALIASES = {"M": "DI", "WD": "DI"}
#: Pins that take a clock, not data.
CLOCK_PORTS = {"CLK", "CLKA", "CLKB", "WCK", "C", "CLKI", "RCLK", "WCLK", "CLOCK", "CLK0", "CLK1",
               "CLK2", "CLK3"}


class TimingReportError(ValueError):
    """The report cannot be read as a detailed nextpnr timing report."""


def slow_registers(report: str | Path | dict, target_mhz: float, netlist: str | Path | dict, *,
                   top: str = "memprop", worst: int = 20) -> dict:
    """Register groups whose inputs need more than 1 / target_mhz, slowest first.

    `report` is nextpnr's JSON report written with `--detailed-timing-report`, `netlist` the
    yosys JSON nextpnr read (it gives the cell types and the logic paths). Returns the target, the
    number of failing endpoints and groups, and up to `worst` groups, each with its endpoints
    over the period, its worst arrival (ns), the fmax that arrival allows, and the source
    group and LUT levels of the deepest path into the worst one."""
    if target_mhz <= 0:
        raise ValueError(f"target frequency must be positive, got {target_mhz} MHz")
    data = json.loads(Path(report).read_text()) if not isinstance(report, dict) else report
    nets = data.get("detailed_net_timings")
    if nets is None:
        raise TimingReportError("the report has no detailed_net_timings: run nextpnr with "
                                "--detailed-timing-report")
    module = module_of(netlist, top)
    cells = module["cells"]

    def resolve(cell: str, port: str) -> tuple[str | None, str | None]:
        """The netlist's cell and port behind a packed one: a flip-flop's direct input M is its
        DI, a distributed RAM's write slices ($DPRAM_COMBk: WADk, WD) are its WAD and DI."""
        base = cell if cell in cells else cell.split("$")[0]
        if base not in cells:
            return None, None
        ports = cells[base]["connections"]
        for name in (port, PORT_ALIASES.get(port), port.rstrip("0123456789")):
            if name in ports:
                return base, name
        return base, None

    def sequential(cell: str) -> bool:
        base, _ = resolve(cell, "")
        return base is not None and cells[base]["type"] in SEQUENTIAL_TYPES

    endpoints: list[tuple[float, str, str]] = []               # (arrival, cell, port)
    for net in nets:
        for sink in net.get("endpoints", []):
            delay = sink.get("delay")
            arrival = float(delay[-1] if isinstance(delay, list) else delay)
            cell, port = sink.get("cell"), sink.get("port")
            if cell and sequential(cell) and port not in CLOCK_PORTS:
                endpoints.append((arrival, cell, port))
    paths = Paths(module)

    def deepest(cell: str, port: str) -> tuple[str | None, int | None]:
        """The source group and LUT levels of the deepest path into this input."""
        base, name = resolve(cell, port)
        if name is None:
            return None, None
        levels, origin = max(paths.depth(bit) for bit in cells[base]["connections"][name])
        return _group(origin), levels

    period = 1000.0 / target_mhz
    groups: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for end in endpoints:
        if end[0] > period:
            groups[_group(resolve(end[1], "")[0])].append(end)
    ranked = sorted(groups.items(), key=lambda item: -max(e[0] for e in item[1]))
    out = []
    for name, ends in ranked[:worst]:
        arrival, cell, port = max(ends)
        source, levels = deepest(cell, port)
        out.append({"to": name, "endpoints": len(ends), "arrival_ns": round(arrival, 2),
                    "fmax_mhz": round(1000.0 / arrival, 2), "port": port, "from": source, "levels": levels})
    return {"target_mhz": target_mhz, "period_ns": round(period, 3),
            "endpoints_failing": sum(len(v) for v in groups.values()), "groups_failing": len(groups),
            "endpoints_timed": len(endpoints), "slowest": out}


def format_slow(summary: dict, limit: int | None = None) -> list[str]:
    """Lines for the build's console report: the count, then up to `limit` groups."""
    head = (f"{summary['endpoints_failing']} of {summary['endpoints_timed']} register inputs "
            f"({summary['groups_failing']} groups) miss {summary['target_mhz']:g} MHz")
    rows = [f"  {g['fmax_mhz']:7.2f} MHz  {g['to']} ({g['endpoints']})"
            + (f" <- {g['from']}, {g['levels']} LUT levels" if g["levels"] is not None else "")
            for g in summary["slowest"][:limit]]
    return [head, *rows]
