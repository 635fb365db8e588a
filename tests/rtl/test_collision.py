# amaranth: UnusedElaboratable=no
"""The activation copies synthesise to bare block RAMs (rtl/collision.py): with the build's Yosys
preamble, yosys keeps no logic for a colliding read's old word, which without it costs LUTs and
flip-flops on every copy. A few seconds of `synth_ecp5` / `synth_ice40` on a small StateMemory."""

from __future__ import annotations

import contextlib
import subprocess

import pytest
from amaranth import Module
from amaranth.back import rtlil, verilog
from amaranth.lib import memory
from amaranth.sim import Simulator

from memprop.boards import build as bb
from memprop.model.config import Config
from memprop.rtl import collision
from memprop.rtl.codemem import CodeMemory
from memprop.rtl.engine import WIDE_CODE_LANES
from memprop.rtl.schedule import formats
from memprop.rtl.statemem import StateMemory
from memprop.rtl.verify import make_case, simulate_case

CFG = Config.for_algorithm("eqprop", numerics="fixed", network={"n": 100}, hw={"lanes": 4})


def _cells(tmp_path, yosys, front: str, preamble: str, synth: str, mark: bool = True) -> dict[str, int]:
    """Cell counts of a 4-lane StateMemory after `synth`, read as RTLIL or Verilog (without the
    mark: as the copies were before it, since Yosys's Verilog front end honours it by itself)."""
    dut = StateMemory(formats(CFG), 7, 4)
    text = rtlil.convert(dut, name="d") if front == "rtlil" else verilog.convert(dut, name="d")
    if not mark:
        text = text.replace(collision.ATTRIBUTE, "unmarked")
    source = "d.il" if front == "rtlil" else "d.v"
    (tmp_path / source).write_text(text)
    read = f"read_{front} {source}"
    script = f"{read}; {preamble}; {synth} -top d; tee -q -o stat.txt stat"
    run = subprocess.run([yosys, "-q", "-p", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    counts = {}
    for line in (tmp_path / "stat.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            counts[parts[1]] = int(parts[0])
    return counts


@pytest.mark.parametrize("front, synth, ram, logic", [
    ("rtlil", "synth_ecp5", "DP16KD", "LUT4"),          # memprop build (ULX3S)
    ("rtlil", "synth_ice40", "SB_RAM40_4K", "SB_LUT4"),    # memprop build (iCEBreaker)
    ("verilog", "synth_ecp5", "DP16KD", "LUT4"),         # the gate-level flow
])
def test_activation_copies_need_no_collision_logic(tmp_path, yosys, front, synth, ram, logic):
    marked = _cells(tmp_path, yosys, front, bb.YOSYS_PREAMBLE.replace("\n", "; "), synth)
    plain = _cells(tmp_path, yosys, front, "proc; splitnets", synth, mark=False)
    assert marked[ram] == plain[ram] >= 5                 # the state memory and four copies
    # the state memory itself keeps its (host-visible) old-word logic; the copies lose theirs
    assert marked.get(logic, 0) + 4 * 12 <= plain[logic], (marked, plain)


def test_a_marked_memory_has_one_read_and_one_write_port():
    mem = memory.Memory(shape=8, depth=16, init=[], attrs=collision.attrs())
    rd = mem.read_port()
    mem.read_port()
    wr = mem.write_port()
    with pytest.raises(ValueError, match="one read and one write port, not 2 and 1"):
        collision.check_ports(mem)
    with pytest.raises(ValueError, match="one read and one write port, not 2 and 1"):   # read_data checks too
        collision.read_data(Module(), rd, wr)


def test_a_poisoned_memory_answers_a_colliding_read_with_a_wrong_word():
    """The check below is only as good as the poison: a read that meets a write comes back
    inverted, any other read is the memory's word."""
    got = {}
    for poison in (False, True):
        with collision.poisoned() if poison else contextlib.nullcontext():
            dut = CodeMemory(8, 2, 4)
            sim = Simulator(dut)

        async def bench(ctx, poison=poison):
            port = dut.port
            ctx.set(port.addr, 3)
            ctx.set(port.w_en, 0b11)
            ctx.set(port.w_data, 0x5A)
            await ctx.tick()                      # word 3 := 0x5A, its old word (0) read
            got[poison, "collided"] = ctx.get(port.r_data)
            ctx.set(port.w_en, 0)
            await ctx.tick()                      # a read alone
            got[poison, "alone"] = ctx.get(port.r_data)

        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
    assert got[False, "collided"] == 0 and got[True, "collided"] == 0xFF
    assert got[False, "alone"] == got[True, "alone"] == 0x5A


#: Relaxation, STORE / RESTORE, LEARN with each learner kind, the folded stream, wide code words.
POISON_CONFIGS = [
    {"network": {"n": 10}, "hw": {"lanes": 4}},
    {"network": {"n": 10}, "hw": {"lanes": 4, "learn_lanes": 3, "threefry": "quad"}},
    {"network": {"n": 10}, "hw": {"lanes": 7, "learn_lanes": 6, "threefry": "dual", "fold": True}},
    {"network": {"n": 9}, "hw": {"lanes": WIDE_CODE_LANES, "learn_lanes": 3}},
    {"network": {"n": 10, "topology": "layered", "layers": (3, 4, 3)}, "hw": {"lanes": 4, "threefry": "iterative"}},
]


@pytest.mark.parametrize("sections, mode", [(c, "relax") for c in POISON_CONFIGS] + [(POISON_CONFIGS[2], "step")],
                         ids=["plain", "quad", "fold-dual", "wide-codes", "layered", "fold-dual-steps"])
def test_no_colliding_read_is_used(sections, mode):
    """The whole engine, bit-exact against the model (RELAX's fixed points and cycles, or every
    STEP's state, stored fixed points, every code after LEARN), with the marked memories (activation copies, device codes) poisoned:
    none of their reads that meets a write is used, so synthesis may leave them undefined."""
    cfg = Config.for_algorithm("eqprop", numerics="fixed", train={"batch_size": 2},
                               device={"preset": "linear-64"}, **sections)
    with collision.poisoned():
        report = simulate_case(make_case(cfg, 7), mode=mode)
    assert report["pulses"] > 0 and report["mode"] == mode
