"""The learning lanes' fixed-point copies on ECP5 block RAM: two lanes share one memory (one
read/write port and one read port of a DP16KD), an odd last lane has its own. Without the
sharing every lane's copy takes its own block RAMs (64 of the ULX3S default's 186, issue 9);
yosys keeps the pair in one DP16KD only while the second read port is transparent to the write
(a non-transparent port makes it duplicate the memory). A few seconds of `synth_ecp5` up to the
memory mapping."""

from __future__ import annotations

import subprocess

from amaranth.back import rtlil

from memprop.model.config import Config
from memprop.rtl import hostmap as hm
from memprop.rtl.learn import Learner
from memprop.rtl.schedule import formats

#: N = 64, minibatch 8: each copy is 2 x 8 x 64 = 1024 words of 10 bits, one DP16KD (1K x 18).
#: Three lanes: one pair and one lane alone.
CFG = Config.for_algorithm("eqprop", numerics="fixed", network={"n": 64}, device={"preset": "linear-256"},
                           train={"batch_size": 8}, hw={"lanes": 4, "learn_lanes": 3})


def _block_rams(learner, tmp_path, yosys) -> list[str]:
    """The learner's DP16KD cells after yosys' ECP5 memory mapping (the LUT mapping does not matter
    for counting block RAMs: synthesis stops after the memories are mapped)."""
    (tmp_path / "learner.il").write_text(rtlil.convert(learner, name="learner"))
    script = ("read_rtlil learner.il; synth_ecp5 -top learner -noabc9 -run begin:map_ffram; "
              "tee -q -o bram.txt select -list t:DP16KD")
    run = subprocess.run([yosys, "-q", "-p", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return (tmp_path / "bram.txt").read_text().split()


def test_two_lanes_share_one_fixed_point_block_ram(tmp_path, yosys):
    learner = Learner(CFG, hm.Layout(formats(CFG)))
    assert learner.plan.store_depth == 1024
    cells = _block_rams(learner, tmp_path, yosys)
    fixed_points = sorted(c for c in cells if c.startswith("learner/fp_"))
    # lanes 0 and 1 in fp_pair0, lane 2 in fp_pair1: one DP16KD each (three without the sharing)
    assert [c.split("/")[1].split(".")[0] for c in fixed_points] == ["fp_pair0", "fp_pair1"], cells


#: The ULX3S default's shapes (N = 100, minibatch 8) at W = 9: paired reads, four pairs and a lane alone.
WIDE = Config.for_algorithm("eqprop", numerics="fixed", network={"n": 100}, device={"preset": "linear-256"},
                            train={"batch_size": 8}, hw={"lanes": 9, "learn_lanes": 9})


def test_paired_copies_keep_the_block_ram_count(tmp_path, yosys):
    """A wide learner's HI and LO copies are separate memories (both read in one cycle), each
    1024 x 10 here: one DP16KD each, as many as one 2048 x 10 memory of both sets takes. The rows'
    copies (HI and LO, rows r0 and r0 + 1 through the two ports) are one DP16KD each."""
    learner = Learner(WIDE, hm.Layout(formats(WIDE)))
    assert learner.paired and learner.plan.store_depth == 2048
    cells = _block_rams(learner, tmp_path, yosys)
    copies = sorted(c.split("/")[1].split(".")[0] for c in cells if c.startswith(("learner/fp_", "learner/row_")))
    want = sorted([f"fp_{s}{k}" for s in ("hi", "lo") for k in range(5)] + ["row_hi", "row_lo"])
    assert copies == want, cells
