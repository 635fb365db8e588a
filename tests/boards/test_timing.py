"""boards/timing.py: every register input slower than a goal, from nextpnr's detailed report."""

from __future__ import annotations

import json
import subprocess

import pytest
from amaranth import Module, Signal
from amaranth.back import rtlil
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from memprop.boards import build as bb
from memprop.boards.timing import TimingReportError, format_slow, slow_registers

from .test_depth import Netlist


def sink(cell, port, arrival):
    return {"cell": cell, "port": port, "delay": [arrival / 3, arrival], "event": "posedge clk"}


def net(name, driver, *sinks):
    return {"net": name, "driver": driver, "port": "Z", "event": "posedge clk", "endpoints": list(sinks),
            "sources": []}


def design():
    """src -> l1 -> l2 -> slow[0..2] (three LUT levels with l3); fast <- src directly; a RAM input."""
    n = Netlist()
    n.ff("src[0]", 1, 10)
    n.lut("l1", [10], 11)
    n.lut("l2", [11], 12)
    n.lut("l3", [12], 13)
    for k in range(3):
        n.ff(f"slow[{k}]", 13, 20 + k)
    n.ff("fast", 10, 30)
    n.cell("ram", "DP16KD", {"ADA0": 11, "CLKA": 1}, {"DOA0": 40})
    report = {"detailed_net_timings": [
        net("x13", "l3", sink("slow[0]_TRELLIS_FF_Q", "DI", 14.1), sink("slow[1]_TRELLIS_FF_Q", "DI", 13.9),
            sink("slow[2]_TRELLIS_FF_Q", "DI", 12.0)),
        net("x10", "src[0]_TRELLIS_FF_Q", sink("fast_TRELLIS_FF_Q", "DI", 2.0), sink("l1", "A", 0.9)),
        net("x11", "l1", sink("ram", "ADA0", 13.5)),
        net("clk", "pll", sink("ram", "CLKA", 20.0), sink("fast_TRELLIS_FF_Q", "CLK", 20.0)),
    ]}
    return report, n.json()


def test_groups_the_inputs_over_the_period_slowest_first():
    report, netlist = design()
    summary = slow_registers(report, 75, netlist, top="top")     # 13.33 ns
    assert summary["period_ns"] == pytest.approx(13.333, abs=1e-3)
    # timed: the three slow inputs, fast, the RAM's address; not the clocks, not the LUT's input
    assert summary["endpoints_timed"] == 5
    assert summary["endpoints_failing"] == 3 and summary["groups_failing"] == 2
    slow, ram = summary["slowest"]
    assert slow["to"] == "slow" and slow["endpoints"] == 2 and slow["arrival_ns"] == 14.1
    assert slow["fmax_mhz"] == pytest.approx(1000 / 14.1, abs=0.01)
    assert (slow["from"], slow["levels"]) == ("src", 3)                    # the netlist's deepest path
    assert ram["to"] == "ram" and ram["port"] == "ADA0" and (ram["from"], ram["levels"]) == ("src", 1)
    lines = format_slow(summary)
    assert lines[0] == "3 of 5 register inputs (2 groups) miss 75 MHz"
    assert "slow (2) <- src, 3 LUT levels" in lines[1]
    assert len(format_slow(summary, limit=1)) == 2


def test_a_goal_everything_meets_lists_nothing():
    report, netlist = design()
    assert slow_registers(report, 50, netlist, top="top")["endpoints_failing"] == 0   # 20 ns: all earlier
    summary = slow_registers(report, 100, netlist, top="top")
    assert [g["to"] for g in summary["slowest"]] == ["slow", "ram"]       # "fast" (2 ns) meets 10 ns


def test_bad_reports_and_goals_are_refused():
    report, netlist = design()
    with pytest.raises(TimingReportError, match="--detailed-timing-report"):
        slow_registers({"critical_paths": []}, 75, netlist, top="top")
    with pytest.raises(ValueError, match="positive"):
        slow_registers(report, 0, netlist, top="top")
    with pytest.raises(ValueError, match="no module 'memprop'"):
        slow_registers(report, 75, netlist)


def test_builds_ask_for_the_detailed_report_and_keep_only_its_summary(tmp_path):
    for name, board in bb.BOARDS.items():
        detailed = "--detailed-timing-report" in bb.toolchain_overrides(board, seed=1)["nextpnr_opts"]
        assert detailed == (board.family in bb.TIMED_FAMILIES), name
    assert bb.get_board("ulx3s").family in bb.TIMED_FAMILIES
    report, netlist = design()
    path, net_path = tmp_path / "memprop_report.json", tmp_path / "memprop.json"
    path.write_text(json.dumps({"fmax": {"clk": {"achieved": 60}}, **report}))
    net_path.write_text(json.dumps({"modules": {"memprop": netlist["modules"]["top"]}}))
    slow = bb._slow_registers_once(path, 75, net_path)
    assert slow == slow_registers(report, 75, netlist, top="top")
    assert json.loads(path.read_text()) == {"fmax": {"clk": {"achieved": 60}}}


class Tiny(wiring.Component):
    """Two registered 16-bit operands, a DSP product and an adder: a few paths of known order."""

    def __init__(self):
        super().__init__({"a": In(16), "b": In(16), "o": Out(16)})

    def elaborate(self, platform):
        m = Module()
        x, y = Signal(16), Signal(16)
        m.d.sync += [x.eq(self.a), y.eq(self.b), self.o.eq((x * 3 + y) ^ (x >> 2))]
        return m


def test_a_real_ecp5_report_gives_the_critical_path_as_the_slowest_register(tmp_path, yosys):
    """yosys and nextpnr-ecp5 on a small design: the latest arrival among the register inputs is
    the critical path nextpnr reports, and a goal above fmax lists that register first."""
    env = bb.toolchain_env({})
    (tmp_path / "t.il").write_text(rtlil.convert(Tiny(), name="top"))
    subprocess.run([yosys, "-q", "-p", "read_rtlil t.il; synth_ecp5 -top top; write_json t.json"], cwd=tmp_path,
                   check=True, timeout=300)
    subprocess.run([env["NEXTPNR_ECP5"], "--quiet", "--25k", "--package", "CABGA381", "--json", "t.json",
                    "--report", "r.json", "--detailed-timing-report", "--freq", "100", "--lpf-allow-unconstrained",
                    "--timing-allow-fail", "--seed", "1"], cwd=tmp_path, check=True, timeout=300, capture_output=True)
    report = json.loads((tmp_path / "r.json").read_text())
    fmax = min(clk["achieved"] for clk in report["fmax"].values())
    summary = slow_registers(report, fmax * 1.5, tmp_path / "t.json", top="top")
    assert summary["endpoints_timed"] >= 48                     # x, y, o: 48 data inputs at least
    assert 0 < summary["endpoints_failing"] <= summary["endpoints_timed"]
    assert summary["slowest"][0]["to"] == "o"                  # the product and the sum end in o
    assert summary["slowest"][0]["fmax_mhz"] == pytest.approx(fmax, rel=0.01)
    assert slow_registers(report, fmax * 0.9, tmp_path / "t.json", top="top")["endpoints_failing"] == 0
