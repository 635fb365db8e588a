"""Run the engine's cocotb testbench: Verilog (or a gate-level netlist) against the model.

One simulator build per Config; all of that Config's cases and workloads run in one
simulation. `run_campaign` spreads random cases over random configurations, which is what
`memprop sim` does.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import verilog

from memprop.model.config import Config
from memprop.rtl.engine import Engine
from memprop.rtl.generate import TOP
from memprop.rtl.verify import random_config

from .runner import SimResult, default_build_root, run_cocotb
from .netlist import cell_model, primitives_in, run_cocotb_netlist, synthesize

TEST_MODULE = "memprop.sim.tests.test_engine_tb"
CLOCK_NS = 10


@dataclass
class EngineRun:
    config: Config
    simulator: str
    netlist: str
    results: list[dict]
    sim: SimResult | None
    seconds: float          # wall time of the whole run (build included)
    cycles: int             # simulated clock cycles
    sim_seconds: float      # wall time of the simulation alone (for cycles per second)
    waves_rerun: Path | None = None   # waveform of a failing case, rerun with waves on

    @property
    def mismatches(self) -> list[dict]:
        return [r for r in self.results if not r["ok"]]

    @property
    def passed(self) -> bool:
        ran = self.sim is not None and self.sim.tests > 0
        return ran and not self.mismatches and self.sim.passed


def engine_verilog(cfg: Config, root: Path) -> Path:
    """The engine's Verilog for this Config (vendor cells instantiated, e.g. SB_SPRAM256KA),
    in a directory per fingerprint, lane count and code memory; rewritten only when the text
    changes, so the simulator's build stays cached while the design does."""
    memory = "" if cfg.hw.code_memory == "auto" else f"-{cfg.hw.code_memory}"
    path = root / f"{TOP}-{cfg.fingerprint}-p{cfg.hw.lanes}{memory}" / f"{TOP}.v"
    text = verilog.convert(Engine(cfg, primitives=True), name=TOP, emit_src=False)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def rtl_sources(source: Path) -> list[Path]:
    """The engine's Verilog and the yosys model of every vendor cell it instantiates."""
    cells = primitives_in(source.read_text())
    return [source, *(cell_model(arch, cell, source.parent) for arch, cell in cells)]


def run_engine(cfg: Config, cases: list[int], workloads: list[dict] | None = None, *,
               simulator: str = "verilator", netlist: str = "rtl", waves: bool = False,
               build_root: Path | None = None, run_name: str | None = None,
               inject: str | None = None) -> EngineRun:
    root = Path(build_root) if build_root else default_build_root()
    source = engine_verilog(cfg, root)
    job_dir = source.parent / "jobs"
    job_dir.mkdir(exist_ok=True)
    stamp = f"{run_name or 'job'}-{time.time_ns()}"
    job, results = job_dir / f"{stamp}.json", job_dir / f"{stamp}.results.json"
    workloads = [_absolute_paths(w) for w in workloads or []]
    job.write_text(json.dumps({"config": json.loads(cfg.to_json()), "cases": list(cases),
                               "workloads": workloads, "results": str(results), "inject": inject}))
    env = {"MEMPROP_ENGINE_JOB": str(job)}
    start = time.perf_counter()
    if netlist == "rtl":
        sim = run_cocotb(rtl_sources(source), TOP, TEST_MODULE, simulator, extra_env=env, waves=waves,
                         build_root=root, run_name=stamp)
    else:
        foreign = [cell for arch, cell in primitives_in(source.read_text()) if arch != netlist]
        if foreign:
            raise ValueError(f"this design instantiates {', '.join(foreign)}, which {netlist} does not have "
                             f"(set hw.code_memory to 'block')")
        net = synthesize([source], TOP, netlist, out_root=root)
        sim = run_cocotb_netlist(net, TEST_MODULE, simulator, extra_env=env, waves=waves,
                                 build_root=root, run_name=stamp)
    seconds = time.perf_counter() - start
    found = json.loads(results.read_text())["results"] if results.exists() else []
    cycles = int(sum(t.sim_time_ns for t in sim.testcases) / CLOCK_NS)
    if not found and sim.failures:
        found = [{"ok": False, "mismatch": sim.failure_report()}]
    sim_seconds = sum(t.wall_time_s for t in sim.testcases)
    return EngineRun(cfg, simulator, netlist, found, sim, seconds, cycles, sim_seconds)


def _absolute_paths(workload: dict) -> dict:
    """The simulator runs in its build directory: file names must not be relative."""
    out = dict(workload)
    for key in ("weights", "patterns", "data"):
        if out.get(key) and Path(out[key]).exists():
            out[key] = str(Path(out[key]).resolve())
    return out


@dataclass
class Campaign:
    runs: list[EngineRun] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(len(r.results) for r in self.runs)

    @property
    def mismatches(self) -> int:
        return sum(len(r.mismatches) for r in self.runs)

    @property
    def cycles(self) -> int:
        return sum(r.cycles for r in self.runs)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.runs)

    @property
    def sim_seconds(self) -> float:
        return sum(r.sim_seconds for r in self.runs)

    def summary(self, simulator: str, netlist: str) -> dict:
        first = next((m for r in self.runs for m in r.mismatches), None)
        return {
            "cases": self.cases, "mismatches": self.mismatches, "simulator": simulator, "netlist": netlist,
            "configs": len(self.runs), "cycles": self.cycles, "seconds": round(self.seconds, 2),
            "sim_seconds": round(self.sim_seconds, 2),
            "cycles_per_second": round(self.cycles / self.sim_seconds, 1) if self.sim_seconds else None,
            "first_mismatch": first,
            "runs": [{"fingerprint": r.config.fingerprint, "lanes": r.config.hw.lanes, "n": r.config.network.n,
                      "topology": r.config.network.topology, "device": r.config.device.preset,
                      "cases": len(r.results), "mismatches": len(r.mismatches), "cycles": r.cycles,
                      "seconds": round(r.seconds, 2),
                      "waves": str(r.waves_rerun or (r.sim.waves if r.sim else None) or "") or None}
                     for r in self.runs],
        }


def run_campaign(cases: int, seed: int = 0, config: Config | None = None, per_config: int = 10, *,
                 simulator: str = "verilator", netlist: str = "rtl", waves: bool = False,
                 progress=None, build_root: Path | None = None, inject: str | None = None) -> Campaign:
    """`cases` random cases: on `config`, or `per_config` cases on each of several random configs."""
    campaign = Campaign()
    done = 0
    group = 0
    while done < cases:
        size = min(per_config if config is None else cases, cases - done)
        cfg = config or random_config(seed * 100_003 + group, max_n=16, max_lanes=8)
        seeds = [seed * 1_000_003 + done + k for k in range(size)]
        run = run_engine(cfg, seeds, simulator=simulator, netlist=netlist, waves=waves, run_name=f"s{seed}g{group}",
                         build_root=build_root, inject=inject)
        if run.mismatches and not waves:
            # leave a waveform of the first failing case for the user
            failing = [r["seed"] for r in run.mismatches if "seed" in r][:1]
            if failing:
                rerun = run_engine(cfg, failing, simulator=simulator, netlist=netlist, waves=True,
                                   run_name=f"s{seed}g{group}-waves", build_root=build_root, inject=inject)
                run.waves_rerun = rerun.sim.waves if rerun.sim else None
        campaign.runs.append(run)
        done += size
        group += 1
        if progress is not None:
            progress(size, run)
    return campaign
