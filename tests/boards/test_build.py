# amaranth: UnusedElaboratable=no
"""Board tops and builds: elaboration for every board (fast), report parsing, and one real
iCE40 build with a tiny config (slow: it runs the YoWASP toolchain)."""

from __future__ import annotations

import json

import pytest
from amaranth.hdl import Fragment
from click.testing import CliRunner

from memprop.boards import build as bb
from memprop.boards.top import BoardTop
from memprop.cli import BOARD_NAMES, main
from memprop.model.config import Config

from .tiny import FITS_ICE40, TINY


def test_cli_lists_every_board():
    assert set(BOARD_NAMES) == set(bb.BOARDS)


@pytest.mark.parametrize("name", sorted(bb.BOARDS))
def test_board_top_elaborates(name):
    board = bb.get_board(name)
    cfg = board.default_config()              # the documented default is a valid config
    assert cfg.numerics == "fixed" and cfg.network.n == 100
    Fragment.get(BoardTop(TINY, max_burst=board.max_burst, fifo_depth=board.fifo_depth), board.make_platform())


def test_board_top_checks_the_fifo_against_the_baud():
    top = BoardTop(TINY, baud=3_000_000, fifo_depth=4)
    with pytest.raises(ValueError, match="FIFO of 4 bytes can overflow"):
        Fragment.get(top, bb.get_board("icebreaker").make_platform())
    with pytest.raises(ValueError, match="too fast"):
        Fragment.get(BoardTop(TINY, baud=5_000_000), bb.get_board("icebreaker").make_platform())


def test_unknown_board():
    with pytest.raises(ValueError, match="unknown board 'de0'"):
        bb.get_board("de0")


def test_toolchain_env():
    env = bb.toolchain_env({"PATH": "", "YOSYS": "/opt/yosys"})
    assert env["YOSYS"] == "/opt/yosys"                       # a tool the user set is kept
    for var in ("NEXTPNR_ICE40", "ICEPACK", "NEXTPNR_ECP5", "ECPPACK"):
        assert "yowasp-" in env[var]
    assert "OPENFPGALOADER" in env


def _report(tmp_path, fmax: dict):
    (tmp_path / "r.json").write_text(json.dumps({
        "utilization": {"TRELLIS_COMB": {"used": 100, "available": 1000}, "TRELLIS_FF": {"used": 50, "available": 1000},
                        "DP16KD": {"used": 3, "available": 56}, "MULT18X18D": {"used": 2, "available": 28}},
        "fmax": fmax}))
    (tmp_path / "y.rpt").write_text("=== design hierarchy ===\n\n       57 cells\n      100   LUT4\n"
                                    "       50   TRELLIS_FF\n        3   DP16KD\n")
    return tmp_path / "r.json", tmp_path / "y.rpt"


def test_parse_report(tmp_path):
    r = bb.parse_report("ecp5", *_report(tmp_path, {"pll.clk": {"achieved": 61.234, "constraint": 75.0}}), 75.0)
    assert r["fmax_mhz"] == 61.23 and r["clocks_mhz"] == {"pll.clk": 61.23}
    assert r["utilisation"]["lut"] == {"used": 100, "available": 1000}
    assert r["utilisation"]["dsp"] == {"used": 2, "available": 28}
    assert r["synthesis"] == {"LUT4": 100, "TRELLIS_FF": 50, "DP16KD": 3}


def test_a_clock_the_report_cannot_account_for_fails_the_build(tmp_path):
    """An unregistered DSP is timed on nextpnr's $PACKER_GND_NET pseudo-clock: the build fails."""
    paths = _report(tmp_path, {"$PACKER_GND_NET_$glb_clk": {"achieved": 300.0, "constraint": 12},
                               "pll.clk": {"achieved": 61.2, "constraint": 30.0}})
    with pytest.raises(bb.BuildError, match=r"\$PACKER_GND_NET.*unregistered ports"):
        bb.parse_report("ice40", *paths, 30.0)
    paths = _report(tmp_path, {"clk12_0__io": {"achieved": 200.0, "constraint": 12.0},
                               "pll.clk": {"achieved": 61.2, "constraint": 30.0}})
    with pytest.raises(bb.BuildError, match="clk12_0__io .* not the core clock of 30 MHz"):
        bb.parse_report("ice40", *paths, 30.0)
    with pytest.raises(bb.BuildError, match="no timed clock"):
        bb.parse_report("ice40", *_report(tmp_path, {}), 30.0)


@pytest.mark.parametrize("name", sorted(bb.BOARDS))
def test_board_pll_reaches_the_core_clock(name):
    """The PLL dividers from yowasp-icepll / yowasp-ecppll give the board's core clock, and the
    UART divisor follows it."""
    board = bb.get_board(name)
    top = BoardTop(TINY, clock_hz=board.clock_mhz * 1e6, max_burst=board.max_burst, fifo_depth=board.fifo_depth)
    Fragment.get(top, board.make_platform())
    assert abs(top.frequency - board.clock_mhz * 1e6) <= 0.005 * board.clock_mhz * 1e6
    assert board.clock_mhz * 1e6 > board.make_platform().default_clk_frequency


def test_build_refuses_float_config(tmp_path):
    with pytest.raises(ValueError, match="numerics 'fixed'"):
        bb.build("icebreaker", Config.for_algorithm("eqprop", network={"n": 6}), tmp_path)


@pytest.mark.slow
def test_icebreaker_build_smoke(tmp_path):
    """`memprop build` end to end with a tiny network: bitstream, report, timing met."""
    config = tmp_path / "tiny.json"
    config.write_text(FITS_ICE40.to_json())
    result = CliRunner().invoke(main, ["build", "--board", "icebreaker", "--config", str(config),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "build.json").read_text())
    assert report["timing_met"] and report["fmax_mhz"] > 12
    assert (tmp_path / "out" / "memprop.bin").stat().st_size > 100_000
    util = report["utilisation"]
    assert 0 < util["logic_cells"]["used"] < util["logic_cells"]["available"]
    assert util["lut"]["used"] > 0 and util["ff"]["used"] > 0 and util["bram"]["used"] > 0
    assert report["fingerprint"] == FITS_ICE40.fingerprint
    depth = report["logic_depth"]                  # LUT levels over the iCE40 netlist nextpnr read
    assert sum(depth["histogram"].values()) > 100 and 2 <= depth["max_levels"] < 40
    assert "logic depth:" in result.output
    assert report["slow_registers"] is None and "miss" not in result.output    # ECP5 only (timing.py)


def test_led_stretch_holds_at_least_its_time_and_ends():
    """The LED hold (prescaled, so no long counter): high during the event, for at least `cycles`
    after it, low within one tick more."""
    from amaranth import Module, Signal
    from amaranth.sim import Simulator

    from memprop.boards.top import STRETCH_TICK_BITS, _stretch

    cycles, tick = 5000, 1 << STRETCH_TICK_BITS
    m = Module()
    event = Signal()
    out = Signal()
    m.d.comb += out.eq(_stretch(m, event, cycles))
    seen = []

    async def bench(ctx):
        await ctx.tick().repeat(777)                  # the prescaler at some phase
        ctx.set(event, 1)
        await ctx.tick().repeat(3)
        ctx.set(event, 0)
        for _ in range(cycles + 2 * tick + 10):
            seen.append(ctx.get(out))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    high = seen.index(0)
    assert all(seen[:high]) and not any(seen[high:])
    assert cycles <= high <= cycles + 2 * tick


@pytest.mark.parametrize("name, layers, lanes", [("icebreaker", (64, 50, 10), 4), ("ulx3s", (64, 100, 10), 16)])
def test_boards_digits_classifiers(name, layers, lanes):
    """`memprop build --task digits`: the seed's classifier, sized to the board (measured to fit)."""
    cfg = bb.get_board(name).classifier_config("digits")
    assert cfg.numerics == "fixed" and cfg.network.layered and cfg.network.layers == layers
    assert cfg.hw.lanes == lanes and cfg.train.layer_lr == (0.1, 0.05) and cfg.device.preset == "linear-256"
    if name == "icebreaker":
        assert cfg.hw.code_memory == "spram" and cfg.fixed.rounding == "nearest"


def test_classifier_builds_refuse_what_they_cannot_build(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["build", "--board", "ulx3s-25f", "--task", "digits", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "no classifier design" in result.output
    config = tmp_path / "c.json"
    config.write_text(TINY.to_json())
    result = runner.invoke(main, ["build", "--board", "icebreaker", "--task", "digits", "--config", str(config),
                                  "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--task or --config" in result.output
    with pytest.raises(ValueError, match="not 'mnist'"):
        bb.get_board("icebreaker").classifier_config("mnist")


def test_weights_for_a_boards_classifier_come_from_its_config(tmp_path):
    """Training with the config.json of `build --task digits` gives that design's network, in situ."""
    cfg = bb.get_board("icebreaker").classifier_config("digits")
    config = tmp_path / "config.json"
    config.write_text(cfg.to_json())
    out = tmp_path / "w.npz"
    result = CliRunner().invoke(main, ["train", "--task", "digits", "--config", str(config), "--epochs", "1",
                                       "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    from memprop.model import weights

    _, trained, _ = weights.load(out)
    assert trained.fingerprint == cfg.fingerprint and trained.numerics == "fixed"
    assert trained.network.layers == (64, 50, 10) and trained.hw == cfg.hw


def test_demo_names_how_the_multipliers_are_built():
    """The demo's bitstream stage says which multipliers the board's build has (hw.dsp "auto"):
    MULT18X18D with their product registers on the ECP5, yosys's mapping on the iCE40."""
    from memprop.boards.build import get_board
    from memprop.demo import multipliers_line

    ecp5 = multipliers_line("ulx3s", get_board("ulx3s").default_config(), {"dsp": {"used": 96, "available": 156}})
    assert ecp5.startswith("multipliers: 96 DSP blocks, MULT18X18D") and "'auto'" in ecp5
    ice40 = multipliers_line("icebreaker", get_board("icebreaker").default_config(), {"dsp": {"used": 7}})
    assert "mapped by yosys" in ice40 and "MULT18X18D" not in ice40
    forced = get_board("icebreaker").default_config().replace(hw={"dsp": "inferred"})
    assert "mapped by yosys" in multipliers_line("ulx3s", forced, {})
