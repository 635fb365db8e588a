"""Run the engine's cocotb testbench: Verilog (or a gate-level netlist) against the model.

One simulator build per Config; all of that Config's cases and workloads run in one
simulation. `run_campaign` spreads random cases over random configurations, which is what
`memprop sim` does: each configuration's group of cases is one job (memprop.jobs), run in
local processes or on a Dask cluster, with the same summary either way.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import time
from contextlib import contextmanager
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


# -- campaigns: groups of random cases as jobs (memprop.jobs: local processes or a Dask cluster) ------

@dataclass(frozen=True)
class Group:
    """One configuration's cases of a campaign: what one job runs on a worker."""

    index: int
    config: str                     # Config JSON: the same bytes on every machine
    seeds: tuple[int, ...]
    simulator: str = "verilator"
    netlist: str = "rtl"
    waves: bool = False
    inject: str | None = None
    build_root: str | None = None   # None: the worker's own (MEMPROP_SIM_BUILD or ./sim_build)
    run_name: str = "job"


@contextmanager
def build_slot(root: Path):
    """A directory of `root` that no other job uses meanwhile: jobs on one machine (pool processes,
    Dask workers and their threads) reuse the simulator builds of the lowest free slot, so each
    worker builds a configuration's model once, and two builds never share a directory."""
    root.mkdir(parents=True, exist_ok=True)
    for i in itertools.count():
        lock = open(root / f"slot-{i}.lock", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            yield root / f"slot-{i}"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
        return


def run_group(group: Group) -> dict:
    """Run a group's cases (a job); a mismatching case is run again with waves on, and the waveform
    comes back in the result (`waves_data`), for the client to write where the user looks."""
    cfg = Config.from_json(group.config)
    root = Path(group.build_root) if group.build_root else default_build_root()
    opts = dict(simulator=group.simulator, netlist=group.netlist, inject=group.inject)
    with build_slot(root) as slot:
        run = run_engine(cfg, list(group.seeds), waves=group.waves, build_root=slot, run_name=group.run_name,
                         **opts)
        waves = run.sim.waves if group.waves and run.sim else None
        if run.mismatches and not group.waves:
            failing = [r["seed"] for r in run.mismatches if "seed" in r][:1]
            if failing:
                rerun = run_engine(cfg, failing, waves=True, build_root=slot, run_name=f"{group.run_name}-waves",
                                   **opts)
                waves = rerun.sim.waves if rerun.sim else None
        record = {"group": group.index, "fingerprint": cfg.fingerprint, "lanes": cfg.hw.lanes, "n": cfg.network.n,
                  "topology": cfg.network.topology, "device": cfg.device.preset,
                  "seeds": [r["seed"] for r in run.results if "seed" in r], "results": run.results,
                  "cycles": run.cycles, "seconds": run.seconds, "sim_seconds": run.sim_seconds,
                  "passed": run.passed, "waves": None, "waves_data": None}
        if waves is not None and waves.is_file():
            record["waves"], record["waves_data"] = waves.name, waves.read_bytes()
    return record


def keep_waves(directory: Path):
    """`collect` for memprop.jobs: the waveform a worker sent back, written to `directory`."""

    def collect(task, record: dict) -> dict:
        data = record.pop("waves_data", None)
        if data is not None:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{task.key}{Path(record['waves']).suffix}"
            path.write_bytes(data)
            record["waves"] = str(path)
        return record

    return collect


@dataclass
class Campaign:
    """The groups' records (plain data, as `run_group` returns them), in campaign order."""

    runs: list[dict] = field(default_factory=list)
    executor: str = "1 process"
    resumed: int = 0            # groups taken over from a journal

    @property
    def cases(self) -> int:
        return sum(len(r["results"]) for r in self.runs)

    @property
    def mismatches(self) -> int:
        return sum(not c["ok"] for r in self.runs for c in r["results"])

    @property
    def cycles(self) -> int:
        return sum(r["cycles"] for r in self.runs)

    @property
    def seconds(self) -> float:
        return sum(r["seconds"] for r in self.runs)

    @property
    def sim_seconds(self) -> float:
        return sum(r["sim_seconds"] for r in self.runs)

    def summary(self, simulator: str, netlist: str) -> dict:
        first = next((c for r in self.runs for c in r["results"] if not c["ok"]), None)
        return {
            "cases": self.cases, "mismatches": self.mismatches, "simulator": simulator, "netlist": netlist,
            "configs": len({(r["fingerprint"], r["lanes"]) for r in self.runs}), "groups": len(self.runs),
            "cycles": self.cycles, "seconds": round(self.seconds, 2),
            "sim_seconds": round(self.sim_seconds, 2),
            "cycles_per_second": round(self.cycles / self.sim_seconds, 1) if self.sim_seconds else None,
            "first_mismatch": first,
            "runs": [{"group": r["group"], "fingerprint": r["fingerprint"], "lanes": r["lanes"], "n": r["n"],
                      "topology": r["topology"], "device": r["device"], "cases": len(r["results"]),
                      "mismatches": sum(not c["ok"] for c in r["results"]), "seeds": r["seeds"],
                      "cycles": r["cycles"], "seconds": round(r["seconds"], 2), "waves": r["waves"]}
                     for r in self.runs],
            "timing": {"executor": self.executor, "resumed": self.resumed},
        }


def plan_groups(cases: int, seed: int = 0, config: Config | None = None, per_config: int = 10, **opts) -> list[Group]:
    """`cases` random cases: on `config`, or `per_config` cases on each of several random configs.

    Every group's config and case seeds follow from (seed, group index) alone, so a campaign is
    the same however its groups are spread over workers.
    """
    groups, done = [], 0
    while done < cases:
        index = len(groups)
        size = min(per_config, cases - done)
        cfg = config or random_config(seed * 100_003 + index, max_n=16, max_lanes=8)
        groups.append(Group(index, cfg.to_json(), tuple(seed * 1_000_003 + done + k for k in range(size)),
                            run_name=f"s{seed}g{index}", **opts))
        done += size
    return groups


def run_campaign(cases: int, seed: int = 0, config: Config | None = None, per_config: int = 10, *,
                 simulator: str = "verilator", netlist: str = "rtl", waves: bool = False,
                 progress: bool = False, build_root: Path | None = None, inject: str | None = None,
                 jobs: int = 1, scheduler: str | None = None, journal: Path | None = None,
                 resume: bool = False) -> Campaign:
    """`cases` random cases in groups of `per_config` (one simulator build per configuration and
    worker), run in `jobs` local processes or on the Dask scheduler at `scheduler`; `journal`
    records finished groups, and `resume` takes them over. Waveforms land in <build root>/waves."""
    from memprop.jobs import Runner, Task, run_tasks

    runner = Runner.choose(jobs, scheduler)
    groups = plan_groups(cases, seed, config, per_config, simulator=simulator, netlist=netlist, waves=waves,
                         inject=inject, build_root=None if build_root is None else str(Path(build_root).absolute()))
    tasks = [Task(g.run_name, run_group, (g,), weight=len(g.seeds)) for g in groups]
    local_root = Path(build_root).absolute() if build_root else default_build_root()
    outcome = run_tasks(tasks, runner, desc=f"{simulator}/{netlist}", unit="case", progress=progress,
                        journal=journal, resume=resume, collect=keep_waves(local_root / "waves"))
    return Campaign(list(outcome.results.values()), outcome.executor, len(outcome.resumed))
