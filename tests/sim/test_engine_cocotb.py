"""cocotb + Verilator / Icarus / gate level: the engine's Verilog against the fixed-point model.

Every case compares every relaxation step, both fixed points and every device code after
LEARN (memprop.rtl.verify); workloads train on a pattern set and recall corrupted patterns.
The default run is a bounded subset; `--runslow` adds the nightly-size runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memprop.model.config import Config
from memprop.rtl.verify import random_config
from memprop.sim.engine import engine_verilog, run_campaign, run_engine
from memprop.sim.simulators import unavailable_reason


def needs(simulator):
    reason = unavailable_reason(simulator)
    return pytest.mark.skipif(reason is not None, reason=f"{simulator}: {reason}")


def assert_clean(run):
    assert run.sim is not None and run.sim.tests == 1, run.sim and run.sim.failure_report()
    assert run.passed, "\n".join(str(r.get("mismatch")) for r in run.mismatches) or run.sim.failure_report()


@needs("verilator")
@pytest.mark.parametrize("config_seed", [1, 8])     # 1: four Threefry pipelines, a folded band; 8: truncation
def test_verilator_random_configs(config_seed, tmp_path):
    cfg = random_config(config_seed, max_n=12, max_lanes=6)
    assert_clean(run_engine(cfg, [config_seed * 10 + k for k in range(3)], build_root=tmp_path))


@needs("icarus")
def test_icarus_random_config(tmp_path):
    cfg = random_config(3, max_n=10, max_lanes=4)
    assert_clean(run_engine(cfg, [30, 31], simulator="icarus", build_root=tmp_path))


@needs("verilator")
def test_spram_code_memory_with_the_yosys_cell_model(tmp_path):
    """Codes in SB_SPRAM256KA cells (yosys' model) under Verilator: bit-exact like block RAM."""
    cfg = Config.for_algorithm("eqprop", network={"n": 7, "max_steps": 10}, numerics="fixed",
                               train={"batch_size": 2}, device={"preset": "linear-256"},
                               hw={"lanes": 4, "code_memory": "spram"})
    assert "SB_SPRAM256KA" in engine_verilog(cfg, tmp_path).read_text()
    assert_clean(run_engine(cfg, [2], build_root=tmp_path))


@needs("verilator")
@pytest.mark.parametrize("hw", [{"lanes": 3}, {"lanes": 4, "fold": True}], ids=["p3", "p4-fold"])
def test_mult18x18d_multipliers_with_their_registers(hw, tmp_path):
    """Every multiplier an ECP5 MULT18X18D with its product register in the cell (rtl/dsp.py),
    simulated with memprop's model of the cell: bit-exact like the inferred ones (every step or
    fixed point, every code after LEARN, every cycle count)."""
    cfg = Config.for_algorithm("eqprop", network={"n": 7, "max_steps": 10}, numerics="fixed",
                               train={"batch_size": 2}, device={"preset": "linear-64"},
                               hw={**hw, "learn_lanes": 2, "dsp": "mult18x18d"})
    text = engine_verilog(cfg, tmp_path).read_text()
    products = 2 * hw["lanes"] if hw.get("fold") else hw["lanes"]
    assert text.count("MULT18X18D #(") == products + 2          # MAC lanes + one per learning lane (HI, LO in turn)
    assert_clean(run_engine(cfg, [2, 5, 7], build_root=tmp_path))


def board_gate_level(board: str, workloads: list, root, hw: dict | None = None, **network):
    """The board's default configuration (with `network` and `hw` overrides), synthesized for its
    FPGA family (iCE40: SB_SPRAM256KA, SB_MAC16, SB_RAM40_4K; ECP5: DP16KD and MULT18X18D with their
    product registers, as `memprop build` makes them), under Verilator with yosys' and memprop's cell models."""
    from memprop.boards.build import get_board

    spec = get_board(board)
    cfg = spec.default_config()
    if network:     # a small network: few lanes, the smallest learning unit (one lane, iterative Threefry)
        cfg = cfg.replace(network=network, hw={"lanes": min(cfg.hw.lanes, 4), "learn_lanes": 1, "threefry": "iterative"})
    if spec.family == "ecp5":      # what hw.dsp "auto" picks on the board's platform (no platform here)
        cfg = cfg.replace(hw={"dsp": "mult18x18d"})
    if hw:
        cfg = cfg.replace(hw=hw)
    return run_engine(cfg, [], workloads, netlist=spec.family, build_root=root)


@pytest.mark.slow
@needs("verilator")
@pytest.mark.parametrize("board, hw", [("icebreaker", None), ("ulx3s", None), ("ulx3s", {"fold": True})],
                         ids=["icebreaker", "ulx3s", "ulx3s-fold"])
def test_gate_level_board_design(board, hw, tmp_path):
    """Each board's design family at gate level, on a small network (N = 8, P <= 4): the iCE40
    netlist with its codes in SPRAM, the ECP5 netlist; a few relaxation steps and one LEARN,
    bit-exact, with every cycle counter. --runslow: each netlist's Verilator build takes
    minutes on 2 cores (the default suite keeps the Threefry unit's iCE40 and ECP5 gate-level tests)."""
    run = board_gate_level(board, [{"kind": "steps_and_learn", "seed": 1, "steps": 3}], tmp_path, hw=hw,
                           n=8, max_steps=10)
    assert_clean(run)
    assert run.results[0]["steps"] >= 1


@pytest.mark.slow
@needs("verilator")
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s", "ulx3s-25f"])
def test_gate_level_board_default(board, tmp_path):
    """Each board's default design (N = 100 dense) at gate level: a few steps and one LEARN,
    then a training minibatch on the 16 glyphs."""
    run = board_gate_level(board, [{"kind": "steps_and_learn", "seed": 1, "steps": 2},
                                   {"kind": "training", "epochs": 1, "minibatches": 1}], tmp_path)
    assert_clean(run)


SMALL = dict(network={"n": 8}, numerics="fixed", train={"batch_size": 1}, device={"preset": "linear-64"},
             hw={"lanes": 2})


@pytest.fixture(scope="module")
def shared_build(tmp_path_factory):
    """One build directory for the tests that use the same small design."""
    return tmp_path_factory.mktemp("engine-build")


@needs("verilator")
def test_a_wrong_rounding_in_the_model_is_reported_with_a_waveform(shared_build):
    cfg = Config.for_algorithm("eqprop", **SMALL)
    # an even seed: the case runs in step mode (odd seeds check whole RELAX commands, whose
    # mismatch names the phase but no step: sim/tests/test_engine_tb.py)
    run = run_engine(cfg, [4], build_root=shared_build, waves=True, inject="truncating_rounding")
    assert not run.passed
    assert run.mismatches and "step" in run.mismatches[0]["mismatch"] and "neuron" in run.mismatches[0]["mismatch"]
    assert run.sim.waves is not None and run.sim.waves.exists() and run.sim.waves.stat().st_size > 0


@pytest.mark.slow   # 100 s; the wrong-rounding test above checks the waveform path in the default suite
@needs("verilator")
def test_a_campaign_with_a_mismatch_leaves_a_waveform_of_the_failing_case(shared_build):
    cfg = Config.for_algorithm("eqprop", **SMALL)
    campaign = run_campaign(2, seed=1, config=cfg, build_root=shared_build, inject="truncating_rounding")
    summary = campaign.summary("verilator", "rtl")
    assert summary["cases"] == 2 and summary["mismatches"] == 2
    assert "neuron" in summary["first_mismatch"]["mismatch"]
    waves = summary["runs"][0]["waves"]
    assert waves and Path(waves).exists() and Path(waves).stat().st_size > 0


@needs("verilator")
def test_a_clean_campaign_summary(shared_build):
    cfg = Config.for_algorithm("eqprop", **SMALL)
    summary = run_campaign(3, seed=2, config=cfg, build_root=shared_build).summary("verilator", "rtl")
    assert summary["mismatches"] == 0 and summary["cases"] == 3 and summary["cycles"] > 0
    assert summary["cycles_per_second"] > 0 and summary["runs"][0]["fingerprint"] == cfg.fingerprint


@needs("verilator")
@pytest.mark.parametrize("fold", [False, True], ids=["unfolded", "fold"])
def test_training_and_recall_workloads(fold, tmp_path):
    """In-situ training and recall under Verilator, bit-exact; also with a folded stream (hw.fold)."""
    rng = np.random.default_rng(0)
    pats = np.where(rng.random((4, 16)) < 0.5, 1, -1)
    np.save(tmp_path / "p.npy", pats)
    cfg = Config.for_algorithm("eqprop", network={"n": 16, "max_steps": 30}, numerics="fixed",
                               train={"batch_size": 2, "repeats": 2, "seed": 4}, device={"preset": "linear-256"},
                               hw={"lanes": 4, "fold": fold})
    workloads = [{"kind": "training", "patterns": str(tmp_path / "p.npy"), "epochs": 2},
                 {"kind": "recall", "patterns": str(tmp_path / "p.npy"), "epochs": 20, "trials": 3, "flip": 0.1}]
    run = run_engine(cfg, [], workloads, build_root=tmp_path)
    assert_clean(run)
    training, recall = run.results
    assert training["minibatches"] == 8 and training["updates"] == 8
    assert recall["samples"] == 12


@pytest.mark.slow
@needs("verilator")
def test_pattern_set_workload_n100(tmp_path):
    """A few minibatches of in-situ training on the 16 glyphs (N = 100), then recall."""
    cfg = Config.for_algorithm("eqprop", numerics="fixed", device={"preset": "linear-256"}, hw={"lanes": 8})
    workloads = [{"kind": "training", "epochs": 1, "minibatches": 4},
                 {"kind": "recall", "epochs": 30, "trials": 2, "flip": 0.1}]
    assert_clean(run_engine(cfg, [], workloads, build_root=tmp_path))
