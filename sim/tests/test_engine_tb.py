"""cocotb testbench: the engine's Verilog (RTL or gate level) against the fixed-point model.

Settings come in one JSON file named by ``MEMPROP_ENGINE_JOB`` (written by memprop.sim.engine):
the Config, the case seeds (random weights and minibatch per seed, every relaxation step and
every device code after LEARN compared), optional workloads (training epochs on a pattern set,
then recall of corrupted patterns), and where to write the per-case results. A mismatch fails
the test with the first differing step / neuron / values and the waveform path.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock

from memprop.model.config import Config
from memprop.model.numerics import Formats
from memprop.rtl import hostmap as hm
from memprop.rtl.driver import EngineDriver
from memprop.rtl.verify import (Mismatch, check_case, check_recall, check_steps_and_learn, check_training,
                                make_case)
from memprop.sim.bus import CocotbBus

WAVES = os.environ.get("MEMPROP_WAVES_FILE", "(waveforms off)")


def _job() -> dict:
    return json.loads(Path(os.environ["MEMPROP_ENGINE_JOB"]).read_text())


async def _start(dut, cfg: Config) -> tuple[EngineDriver, CocotbBus]:
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    bus = CocotbBus(dut)
    await bus.reset()
    return EngineDriver(hm.Layout(Formats(cfg)), bus), bus


def _inject(kind: str | None) -> None:
    """A deliberately wrong model, to prove the scoreboard reports mismatches."""
    if kind is None:
        return
    from memprop.model import fixed

    if kind != "truncating_rounding":
        raise ValueError(f"unknown injection {kind!r}")
    fixed.round_shift = lambda r, shift: r >> shift   # floor instead of round half up


@cocotb.test()
async def engine_matches_model(dut):
    job = _job()
    _inject(job.get("inject"))
    cfg = Config.from_json(json.dumps(job["config"]))
    driver, bus = await _start(dut, cfg)
    results, first = [], None
    for seed in job.get("cases", []):
        t0 = time.perf_counter()
        case = make_case(cfg, seed)
        try:
            # odd seeds relax with RELAX commands (multi-step, the engine's convergence test), even
            # seeds step by step with every intermediate state compared
            report = await check_case(driver, case, mode="relax" if seed % 2 else "step")
            results.append({"seed": seed, "ok": True, **report, "seconds": time.perf_counter() - t0})
        except Mismatch as exc:
            results.append({"seed": seed, "ok": False, "mismatch": str(exc), "seconds": time.perf_counter() - t0})
            first = first or f"case seed {seed}: {exc}"
        await bus.reset()
    for workload in job.get("workloads", []):
        t0 = time.perf_counter()
        try:
            if workload["kind"] == "training":
                report = await check_training(driver, cfg, workload)
            elif workload["kind"] == "classification":
                from memprop.sim.classify import check_classification

                report = await check_classification(driver, cfg, workload)
            elif workload["kind"] == "hwbench":          # memprop bench: the engine's cycle counter
                from memprop.hwbench import measure_commands

                report = await measure_commands(driver, cfg, workload)
            elif workload["kind"] == "steps_and_learn":
                report = await check_steps_and_learn(driver, make_case(cfg, workload.get("seed", 0)),
                                                     workload.get("steps", 3))
            else:
                report = await check_recall(driver, cfg, workload)
            results.append({"workload": workload["kind"], "ok": True, **report, "seconds": time.perf_counter() - t0})
        except Mismatch as exc:
            results.append({"workload": workload["kind"], "ok": False, "mismatch": str(exc),
                            "seconds": time.perf_counter() - t0})
            first = first or f"{workload['kind']} workload: {exc}"
    Path(job["results"]).write_text(json.dumps({"results": results, "bus_cycles": bus.cycles}, indent=1))
    assert first is None, f"{first} (waveform: {WAVES})"
