"""Block RAM at gate level: memories shaped like the engine's, synthesized for an FPGA family
and simulated beside their own RTL, same inputs, every output compared every cycle.

    net, result = check_block_ram("ecp5", "icarus", build_root)
    result.assert_passed()          # AssertionError naming the first cycle and port that differ

This is the seconds-long check of what the engine's gate-level runs (minutes) rely on: that
the netlist's RAM cells, simulated with their cell models (ECP5: memprop's DP16KD model,
sim/cell_models/DP16KD.v), read and write like Amaranth's `lib.memory`. The probe's
memories cover the ways yosys maps the engine's memories onto DP16KD: two read ports on one
ROM (the conductance tables), a ROM read at a narrower port width (the pulse table), a RAM
with one write and two read ports (the fixed points), byte enables (the code memory's lanes,
forced into block RAM), a write-through port (a read port transparent for its write port),
and memories initialised only in part (a bitstream's first bank of codes). `LanePairProbe` is
two learning lanes' fixed-point copies (learn.py): one DP16KD read/write port and one read port.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from amaranth import Module, Signal, signed, unsigned
from amaranth.back import rtlil, verilog
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from memprop.rtl.lanepair import LanePairMemory
from memprop.rtl.statemem import StateMemory

from .netlist import Netlist, synthesize
from .runner import SimResult, run_cocotb

TEST_MODULE = "memprop.sim.tests.test_bram_tb"
TOP = "bram_pair"


class BlockRamProbe(wiring.Component):
    """Six memories with their ports brought out; addresses never exceed a memory's depth
    (`limits`), so both sides read defined words."""

    def __init__(self, seed: int = 5):
        self.seed = seed
        self.limits = {"fp_a": 48, "fp_b": 48, "fp_w": 48, "codes_addr": 30}
        super().__init__({
            # a 256-word signed table, two read ports (WeightLookup's GMAP copies)
            "table_a": In(8), "table_b": In(8), "table_da": Out(11), "table_db": Out(11),
            # a 1024-word 5-bit ROM (read at 9 bits by yosys: the halves of an 18-bit word)
            "narrow_a": In(10), "narrow_d": Out(5),
            # 48 fixed points: one write port, two non-transparent read ports (fp_mem)
            "fp_w": In(6), "fp_wd": In(signed(10)), "fp_we": In(1), "fp_a": In(6), "fp_b": In(6),
            "fp_da": Out(signed(10)), "fp_db": Out(signed(10)),
            # the code memory's shape: 30 words of four 16-bit lanes, lane enables, one address
            "codes_addr": In(5), "codes_wd": In(64), "codes_we": In(4), "codes_d": Out(64),
            # 512 words of two bytes: byte enables, one read port transparent for the write port
            "bytes_w": In(9), "bytes_wd": In(16), "bytes_we": In(2), "bytes_a": In(9), "bytes_b": In(9),
            "bytes_da": Out(16), "bytes_db": Out(16),
            # 1024 words of 9 bits, read and written at one address, write-through
            "through_addr": In(10), "through_wd": In(9), "through_we": In(1), "through_d": Out(9),
        })

    def elaborate(self, platform):
        m = Module()
        rnd = random.Random(self.seed)

        def mem(name, shape, depth, init=(), attrs=None):
            m.submodules[name] = mm = memory.Memory(shape=shape, depth=depth, init=list(init), attrs=attrs)
            return mm

        table = mem("table", signed(11), 256, [rnd.randrange(-1024, 1024) for _ in range(256)])
        for addr, data in ((self.table_a, self.table_da), (self.table_b, self.table_db)):
            port = table.read_port()
            m.d.comb += [port.addr.eq(addr), data.eq(port.data)]

        narrow = mem("narrow", unsigned(5), 1024, [rnd.randrange(32) for _ in range(1024)])
        port = narrow.read_port()
        m.d.comb += [port.addr.eq(self.narrow_a), self.narrow_d.eq(port.data)]

        fp = mem("fp", signed(10), 48)
        w = fp.write_port()
        m.d.comb += [w.addr.eq(self.fp_w), w.data.eq(self.fp_wd), w.en.eq(self.fp_we)]
        for addr, data in ((self.fp_a, self.fp_da), (self.fp_b, self.fp_db)):
            port = fp.read_port()
            m.d.comb += [port.addr.eq(addr), data.eq(port.data)]

        codes = mem("codes", unsigned(64), 30, [rnd.getrandbits(64) for _ in range(14)],
                    attrs={"ram_style": "block"})
        w, port = codes.write_port(granularity=16), codes.read_port()
        m.d.comb += [w.addr.eq(self.codes_addr), port.addr.eq(self.codes_addr), w.data.eq(self.codes_wd),
                     w.en.eq(self.codes_we), self.codes_d.eq(port.data)]

        two = mem("bytes", unsigned(16), 512, [rnd.getrandbits(16) for _ in range(100)])
        w = two.write_port(granularity=8)
        m.d.comb += [w.addr.eq(self.bytes_w), w.data.eq(self.bytes_wd), w.en.eq(self.bytes_we)]
        for addr, data, transparent in ((self.bytes_a, self.bytes_da, [w]), (self.bytes_b, self.bytes_db, [])):
            port = two.read_port(transparent_for=transparent)
            m.d.comb += [port.addr.eq(addr), data.eq(port.data)]

        through = mem("through", unsigned(9), 1024, [rnd.randrange(512) for _ in range(40)])
        w = through.write_port()
        port = through.read_port(transparent_for=[w])
        m.d.comb += [w.addr.eq(self.through_addr), port.addr.eq(self.through_addr), w.data.eq(self.through_wd),
                     w.en.eq(self.through_we), self.through_d.eq(port.data)]
        return m


class LanePairProbe(LanePairMemory):
    """The learner's lane-pair memory (rtl/lanepair.py), 2048 x 10: both sets at N = 100 and
    minibatch 8 (the ULX3S default's wide learner keeps each set in its own 1024 x 10 copy of
    this construct). Addresses stay below 40, so reads often meet the written word."""

    def __init__(self):
        self.limits = {"w_addr": 40, "a_addr": 40, "b_addr": 40}
        super().__init__(signed(10), 2048, 11)


class StateMemoryProbe(wiring.Component):
    """The engine's StateMemory (rtl/statemem.py; N = 100: 256 words, two MAC lanes) with flat
    ports: lane 0's activation copy in block RAM, lane 1's in distributed RAM (`lutram_lanes`),
    so both mappings of a copy are checked against the RTL, and the state memory beside them.

    The copies' reads that meet a write are undefined in the netlist (rtl/collision.py), so the
    probe keeps the engine's contract: a state write goes to the half the copies do not read
    (`w_half` is ~cur), and `cur` flips (`flip`) only when no state write's copy write is still
    on its way (`StateMemory.copy_latency` cycles). The state memory's own reads and writes stay
    free."""

    def __init__(self):
        from memprop.model.config import Config
        from memprop.rtl.schedule import formats

        cfg = Config.for_algorithm("eqprop", numerics="fixed", network={"n": 100})
        self.state = StateMemory(formats(cfg), 7, 2, lutram_lanes=1)
        v, a = self.state.v_bits, self.state.a_bits
        super().__init__({"flip": In(1), "w_en": In(1), "w_unit": In(7), "w_value": In(signed(v)),
                          "rd_unit": In(7), "rd_half": In(1), "rd_data": Out(signed(v)),
                          "col0": In(7), "col1": In(7), "act0": Out(signed(a)), "act1": Out(signed(a))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.state = st = self.state
        m.d.comb += [getattr(st, name).eq(getattr(self, name))
                     for name in ("w_en", "w_unit", "w_value", "rd_unit", "rd_half")]
        cur = Signal()
        recent = Signal(st.copy_latency)             # state writes of this cycle and the ones before
        m.d.comb += recent[0].eq(self.w_en)
        m.d.sync += recent[1:].eq(recent[:-1])
        with m.If(self.flip & ~recent.any()):
            m.d.sync += cur.eq(~cur)
        m.d.comb += [st.cur.eq(cur), st.w_half.eq(~cur)]
        m.d.comb += [self.rd_data.eq(st.rd_data), st.act_col[0].eq(self.col0), st.act_col[1].eq(self.col1),
                     self.act0.eq(st.act[0]), self.act1.eq(st.act[1])]
        return m


def ports(component: wiring.Component) -> tuple[list[tuple[str, int, int]], list[tuple[str, int]]]:
    """(inputs as (name, width, limit), outputs as (name, width)) of a flat component."""
    limits = getattr(component, "limits", {})
    ins, outs = [], []
    for name, member in component.signature.members.items():
        width = len(getattr(component, name))
        if member.flow == In:
            ins.append((name, width, limits.get(name, 1 << width)))
        else:
            outs.append((name, width))
    return ins, outs


def pair_verilog(rtl: str, net: str, ins, outs) -> str:
    """A top that feeds `rtl` and `net` the same inputs and brings out rtl_<out> and net_<out>."""
    def decl(kind, name, width):
        return f"  {kind} {f'[{width - 1}:0] ' if width > 1 else ''}{name};"

    lines = [f"module {TOP}(clk, {', '.join(n for n, _, _ in ins)}, "
             f"{', '.join(f'rtl_{n}, net_{n}' for n, _ in outs)});", "  input clk;"]
    lines += [decl("input", n, w) for n, w, _ in ins]
    for n, w in outs:
        lines += [decl("output", f"rtl_{n}", w), decl("output", f"net_{n}", w)]
    for module, side in ((rtl, "rtl"), (net, "net")):
        conns = [".clk(clk)", ".rst(1'b0)", *(f".{n}({n})" for n, _, _ in ins),
                 *(f".{n}({side}_{n})" for n, _ in outs)]
        lines.append(f"  {module} {side}({', '.join(conns)});")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def check_block_ram(arch: str, simulator: str, build_root: Path, *, cycles: int = 3000, seed: int = 1,
                    component: wiring.Component | None = None, via_rtlil: bool = False) -> tuple[Netlist, SimResult]:
    """Synthesize `component` (default `BlockRamProbe`) for `arch` and run it beside its RTL for
    `cycles` random cycles under `simulator` (the cocotb testbench sim/tests/test_bram_tb.py);
    the netlist (its cell counts) and the simulation's result. `via_rtlil`: yosys reads the
    design as RTLIL, as the board builds do, not as Verilog, as the gate-level engine runs do
    (the Verilog round trip splits a memory's write port per bit, so no port is shared)."""
    build_root = Path(build_root)
    src = build_root / "bram-src"
    src.mkdir(parents=True, exist_ok=True)
    component = component if component is not None else BlockRamProbe()
    ins, outs = ports(component)
    rtl_path, net_src = src / "bram_rtl.v", src / "bram_net.v"
    rtl_path.write_text(verilog.convert(component, name="bram_rtl", emit_src=False))
    if via_rtlil:
        net_src = src / "bram_net.il"
        net_src.write_text(rtlil.convert(component, name="bram_net", emit_src=False))
    else:
        net_src.write_text(verilog.convert(component, name="bram_net", emit_src=False))
    net = synthesize([net_src], "bram_net", arch, out_root=build_root)
    pair = src / f"{TOP}.v"
    pair.write_text(pair_verilog("bram_rtl", "bram_net", ins, outs))
    env = {"MEMPROP_BRAM_PORTS": json.dumps({"inputs": ins, "outputs": [n for n, _ in outs]}),
           "MEMPROP_BRAM_CYCLES": str(cycles), "MEMPROP_BRAM_SEED": str(seed)}
    return net, run_cocotb([pair, rtl_path, *net.sources(simulator)], TOP, TEST_MODULE, simulator,
                      build_root=build_root, defines=net.defines(simulator), includes=net.includes(simulator),
                      extra_env=env, public="top")
