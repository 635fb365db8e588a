"""The Yosys preamble of `memprop build` (boards/build.py YOSYS_PREAMBLE): Yosys 0.70's ABC9
reintegration asserts on some Amaranth netlists, and the stream generator alone is one of them
(a few seconds of `synth_ecp5`). The build scripts must carry the preamble, and with it the
design synthesises."""

from __future__ import annotations

import subprocess

import pytest
from amaranth.back import rtlil

from memprop.boards import build as bb
from memprop.model.config import Config
from memprop.rtl.schedule import Schedule
from memprop.rtl.stream import StreamGenerator

#: N = 24 dense at P = 8: its stream generator trips the assertion without the preamble.
TRIPS = Config.for_algorithm("eqprop", network={"n": 24}, numerics="fixed", hw={"lanes": 8})


@pytest.mark.parametrize("name", sorted(bb.BOARDS))
def test_every_board_build_runs_the_preamble(name):
    overrides = bb.toolchain_overrides(bb.get_board(name), seed=1)
    assert overrides["script_after_read"] == bb.YOSYS_PREAMBLE


def test_the_stream_generator_synthesises_with_the_preamble(tmp_path, yosys):
    (tmp_path / "stream.il").write_text(rtlil.convert(StreamGenerator(Schedule(TRIPS)), name="stream"))
    script = f"read_rtlil stream.il; {bb.YOSYS_PREAMBLE.replace(chr(10), '; ')}; synth_ecp5 -top stream; stat"
    run = subprocess.run([yosys, "-q", "-l", "synth.log", "-p", script], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    log = (tmp_path / "synth.log").read_text()
    assert run.returncode == 0 and "ERROR" not in log, log[-2000:]
    assert "LUT4" in log and "TRELLIS_FF" in log
