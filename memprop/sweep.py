"""`memprop sweep`: recall accuracy of fixed-point in-situ EqProp vs device levels and state width.

Every network is trained with the hardware's fixed-point EqProp (`numerics="fixed"`,
docs/numerics.md) on the built-in glyphs and evaluated at p = 0.10:

- accuracy vs conductance levels L (16 ... 256) for every device preset of
  `model/device.py:PRESETS` (`device={"levels": L}`, the other preset parameters unchanged);
- accuracy vs state width (`fixed.state_frac`) on the ideal device;
- every preset at its own default levels, beside the float model (trained with the same
  epochs and seed) and the float-trained weights programmed into that device (ex situ).

Each network is one job that depends only on its own config and seeds; the report is
assembled in a fixed order, so every number is the same whatever the number of workers.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import click
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from memprop import __version__
from memprop.demo import markdown_table
from memprop.model import patterns as pattern_sets
from memprop.model import recall, training
from memprop.model.config import Config
from memprop.jobs import JOURNAL, Outcome, Runner, Task, run_tasks
from memprop.model.device import PRESETS
from memprop.model.fixed import FixedParams
from memprop.model.numerics import Formats

FLIP = 0.10
EVAL_SEED = 1            # every network sees the same corrupted inputs
TRAIN_SEED = 0
DEFAULT_STATE_FRAC = 8   # FixedConfig.state_frac default
D2D_CLASSES = 4          # device classes M where a preset has device-to-device variation (d2d > 0)
FILES = ("sweep.md", "sweep.json", "sweep.png")


@dataclass(frozen=True)
class Plan:
    """How big the sweep is."""

    epochs: int
    trials: int                                   # corrupted copies per pattern
    levels: tuple[int, ...]                       # conductance levels L of the levels sweep
    state_fracs: tuple[int, ...]                  # fixed.state_frac of the state-width sweep (ideal device)
    presets: tuple[str, ...] = tuple(PRESETS)


#: Default: 300 epochs (the papers' schedule, as the float/fixed numbers quoted elsewhere): 26 distinct
#: fixed-point trainings (31 points) + 1 float training; sweep.md states the measured time.
FULL = Plan(epochs=300, trials=1000, levels=(16, 32, 64, 128, 256), state_fracs=(4, 5, 6, 8, 10))
QUICK = Plan(epochs=2, trials=10, levels=(64, 256), state_fracs=(4, 8))


@dataclass(frozen=True)
class Job:
    """One network: fixed in-situ EqProp on a device (or the float model), then its evaluation."""

    numerics: str                  # "fixed" or "float"
    preset: str = ""
    levels: int | None = None      # None: the preset's own levels
    state_frac: int = DEFAULT_STATE_FRAC
    epochs: int = 0
    trials: int = 0
    presets: tuple[str, ...] = ()  # float job: presets to program the float weights into (ex situ)

    @property
    def name(self) -> str:
        if self.numerics == "float":
            return "float"
        return f"fixed/{self.preset}/L={self.resolved_levels}/fv={self.state_frac}"

    @property
    def resolved_levels(self) -> int:
        return self.levels or PRESETS[self.preset].levels


def fixed_config(n: int, preset: str, levels: int | None, state_frac: int, epochs: int) -> Config:
    """The config of one sweep point; `levels` equal to the preset's own is left unset (same network)."""
    device: dict = {"preset": preset}
    if levels is not None and levels != PRESETS[preset].levels:
        device["levels"] = levels
    if PRESETS[preset].d2d > 0:
        device["d2d_classes"] = D2D_CLASSES
    fixed = {} if state_frac == DEFAULT_STATE_FRAC else {"state_frac": state_frac}
    return Config.for_algorithm("eqprop", network={"n": n}, train={"epochs": epochs, "seed": TRAIN_SEED},
                                numerics="fixed", device=device, fixed=fixed)


def float_config(n: int, epochs: int) -> Config:
    return Config.for_algorithm("eqprop", network={"n": n}, train={"epochs": epochs, "seed": TRAIN_SEED})


def job_config(job: Job, n: int) -> Config:
    if job.numerics == "float":
        return float_config(n, job.epochs)
    return fixed_config(n, job.preset, job.levels, job.state_frac, job.epochs)


def device_identity(preset: str, levels: int):
    """What a preset computes at `levels`: its parameters without name, source and default levels."""
    return replace(PRESETS[preset], name="", source="", levels=levels)


def plan_jobs(plan: Plan) -> tuple[list[Job], dict[tuple[str, int, int], str]]:
    """Levels sweep, state-width sweep, default levels and the float model, each network once.

    Returns the jobs and, for every (preset, levels, state_frac) point, the name of the job that
    computes it. Two presets that differ only in their default levels (linear-256 and linear-64)
    are the same device at equal L: that point is trained once and reported for both.
    """
    common = {"epochs": plan.epochs, "trials": plan.trials}
    wanted = [Job("fixed", p, lv, **common) for p in plan.presets for lv in plan.levels]
    wanted += [Job("fixed", "ideal", None, fv, **common) for fv in plan.state_fracs]
    wanted += [Job("fixed", p, None, **common) for p in plan.presets]
    by_identity: dict[tuple, Job] = {}
    points: dict[tuple[str, int, int], str] = {}
    for job in wanted:
        key = (device_identity(job.preset, job.resolved_levels), job.state_frac)
        runs = by_identity.setdefault(key, job)
        points[(job.preset, job.resolved_levels, job.state_frac)] = runs.name
    jobs = list(by_identity.values()) + [Job("float", presets=plan.presets, **common)]
    return jobs, points


# -- one job (runs in a worker process) ---------------------------------------------------------

def run_job(job: Job) -> dict:
    """Train one network and evaluate it at p = FLIP; plain numbers out."""
    start, cpu = time.perf_counter(), time.process_time()
    pats = pattern_sets.load()
    cfg = job_config(job, pats.size)
    params, history = training.train(cfg, pats, progress=False)
    result = recall.evaluate(params, cfg, pats, FLIP, job.trials, EVAL_SEED)
    record = {
        "name": job.name, "job": asdict(job), "config": json.loads(cfg.to_json()),
        "fingerprint": cfg.fingerprint, "accuracy": result.accuracy, "per_class": result.per_class,
        "final_loss": history.loss[-1] if history.loss else None,
        "final_steps": history.steps[-1] if history.steps else None,
    }
    if job.numerics == "fixed":
        record["formats"] = Formats(cfg).summary()
    else:
        # ex situ: the float-trained weights written (write-verify) into each device at its own levels
        record["ex_situ"] = {}
        for preset in job.presets:
            fcfg = fixed_config(pats.size, preset, None, DEFAULT_STATE_FRAC, job.epochs)
            programmed = FixedParams.from_float(fcfg, params.W, params.b)
            ex = recall.evaluate(programmed, fcfg, pats, FLIP, job.trials, EVAL_SEED)
            record["ex_situ"][preset] = {"accuracy": ex.accuracy, "fingerprint": fcfg.fingerprint}
    record["seconds"] = time.perf_counter() - start
    record["cpu_seconds"] = time.process_time() - cpu
    return record


def _cost(job: Job) -> tuple:
    """Longest first: few levels relax slowly (coarse weights), the float job is the cheapest."""
    return (job.numerics == "fixed", -job.resolved_levels if job.numerics == "fixed" else 0, job.state_frac)


def run_jobs(jobs: list[Job], runner: Runner | int, progress: bool = True, journal: Path | None = None,
             resume: bool = False) -> Outcome:
    """All jobs on `runner` (local processes or a Dask cluster, memprop.jobs), longest first, with a bar
    over finished jobs; results keyed by job name."""
    runner = runner if isinstance(runner, Runner) else Runner(runner)
    order = sorted(jobs, key=_cost, reverse=True)
    return run_tasks([Task(job.name, run_job, (job,)) for job in order], runner, desc="sweep", progress=progress,
                       journal=journal, resume=resume)


# -- the report ---------------------------------------------------------------------------------

def preset_table() -> dict:
    """Every preset's parameters as written in model/device.py (with their sources)."""
    return {name: {k: v for k, v in asdict(p).items() if k != "name"} for name, p in PRESETS.items()}


def build_report(results: dict[str, dict], points: dict[tuple[str, int, int], str], plan: Plan,
                 quick: bool) -> dict:
    pats = pattern_sets.load()
    fixed = {point: results[name] for point, name in points.items()}
    flt = results["float"]
    sample = fixed[("ideal", PRESETS["ideal"].levels, DEFAULT_STATE_FRAC)]["config"]
    levels_sweep = {"levels": list(plan.levels),
                    "accuracy": {p: [fixed[(p, lv, DEFAULT_STATE_FRAC)]["accuracy"] for lv in plan.levels]
                                 for p in plan.presets},
                    "max_pulses": {p: [fixed[(p, lv, DEFAULT_STATE_FRAC)]["formats"]["max_pulses"]
                                       for lv in plan.levels] for p in plan.presets}}
    ideal = [fixed[("ideal", PRESETS["ideal"].levels, fv)] for fv in plan.state_fracs]
    state_sweep = {"state_frac": list(plan.state_fracs), "accuracy": [r["accuracy"] for r in ideal],
                   "state_bits": [r["formats"]["state_bits"] for r in ideal],
                   "acc_bits": [r["formats"]["acc_bits"] for r in ideal],
                   "r_bits": [r["formats"]["r_bits"] for r in ideal]}
    defaults = []
    for p in plan.presets:
        r = fixed[(p, PRESETS[p].levels, DEFAULT_STATE_FRAC)]
        defaults.append({"preset": p, "levels": PRESETS[p].levels, "fixed_accuracy": r["accuracy"],
                         "float_accuracy": flt["accuracy"], "ex_situ_accuracy": flt["ex_situ"][p]["accuracy"],
                         "fingerprint": r["fingerprint"]})
    runs = {name: {k: r[k] for k in ("fingerprint", "accuracy", "per_class", "final_loss", "final_steps",
                                     "seconds", "cpu_seconds", "config", *(("formats",) if "formats" in r else ()),
                                     *(("ex_situ",) if "ex_situ" in r else ()))}
            for name, r in sorted(results.items())}
    return {
        "version": __version__, "quick": quick,
        "protocol": {"epochs": plan.epochs, "trials": plan.trials, "flip": FLIP, "eval_seed": EVAL_SEED,
                     "train_seed": TRAIN_SEED, "patterns": pats.source, "count": pats.count, "n": pats.size,
                     "d2d_classes": D2D_CLASSES, "rounding": sample["fixed"]["rounding"],
                     "lr": sample["train"]["lr"], "max_step": sample["train"]["max_step"],
                     "beta": sample["train"]["beta"], "batch_size": sample["train"]["batch_size"],
                     "repeats": sample["train"]["repeats"], "eps": sample["network"]["eps"],
                     "max_steps": sample["network"]["max_steps"]},
        "presets": preset_table(), "levels_sweep": levels_sweep, "state_sweep": state_sweep,
        "defaults": defaults, "runs": runs,
        "points": [{"preset": p, "levels": lv, "state_frac": fv, "run": name}
                   for (p, lv, fv), name in sorted(points.items())],
    }


def figure(report: dict, path: Path) -> None:
    """Accuracy vs levels (one line per preset) and vs state width (ideal device)."""
    lv, st = report["levels_sweep"], report["state_sweep"]
    float_acc = report["runs"]["float"]["accuracy"]
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."), ("v", "-")]   # identical rows stay visible
    for (marker, line), (preset, acc) in zip(styles * 4, lv["accuracy"].items()):
        left.plot(lv["levels"], acc, marker=marker, linestyle=line, label=preset, alpha=0.85)
    left.set_xscale("log", base=2)
    left.set_xticks(lv["levels"], labels=[str(v) for v in lv["levels"]])
    left.set_xlabel("conductance levels L")
    left.set_title("accuracy vs device levels (fv = 8)")
    right.plot(st["state_frac"], st["accuracy"], marker="o", color="tab:blue", label="fixed, ideal device")
    right.set_xticks(st["state_frac"])
    right.set_xlabel("state fractional bits fv (fixed.state_frac)")
    right.set_title("accuracy vs state width (ideal device)")
    for ax in (left, right):
        ax.axhline(float_acc, color="0.4", linestyle="--", linewidth=1, label="float model")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    left.set_ylabel(f"recall accuracy (p = {report['protocol']['flip']:.2f})")
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)


def _preset_md(report: dict) -> str:
    rows = []
    for name, p in report["presets"].items():
        curve = p["curve"]
        if curve == "exponential":
            curve += f" (NL +{p['nl_up']} / {p['nl_down']})"
        elif curve == "soft_bounds":
            curve += f" (alpha = {p['alpha']:.6g})"
        rows.append([name, p["mode"], p["levels"], curve, f"{p['w_scale']:g}", f"{p['c2c']:g}", f"{p['d2d']:g}",
                     p["source"]])
    return ("## Device presets (model/device.py: PRESETS)\n\n"
            + markdown_table(["preset", "mode", "levels", "curve", "w_scale", "c2c", "d2d", "source"], rows)
            + f"\n\nThe levels sweep overrides only `device.levels`; every other parameter is the preset's. "
              f"Presets with d2d > 0 use {report['protocol']['d2d_classes']} device classes "
              f"(`device.d2d_classes`), so their device-to-device variation is in effect.\n")


def markdown(report: dict) -> str:
    pr, t = report["protocol"], report["timing"]
    lv, st = report["levels_sweep"], report["state_sweep"]
    head = (f"# memprop sweep: fixed-point in-situ EqProp vs device levels and state width\n\n"
            f"memprop {report['version']}{' (--quick)' if report['quick'] else ''}, {t['executor']}, "
            f"wall time {t['wall_seconds']:.0f} s ({t['job_cpu_seconds']:.0f} CPU-s in the jobs). "
            f"All numbers, configs, fingerprints and per-job seconds are in sweep.json.\n")
    protocol = (
        "## Protocol\n\n"
        f"{pr['count']} patterns of N = {pr['n']} ({pr['patterns']}), dense network, hard_tanh, bounded dynamics "
        f"(eps = {pr['eps']}, at most {pr['max_steps']} steps). Every network trains for **{pr['epochs']} epochs** "
        f"(seed {pr['train_seed']}; {pr['repeats']} noisy copies per pattern and epoch, batch {pr['batch_size']}, "
        f"lr {pr['lr']}, beta {pr['beta']}, max |dW| per update {pr['max_step']}) with `numerics=\"fixed\"`: "
        f"in-situ EqProp with {pr['rounding']} pulse rounding on the device's level codes "
        f"(docs/numerics.md). Recall: {pr['trials']} corrupted copies per pattern at p = {pr['flip']:.2f} "
        f"(seed {pr['eval_seed']}, the same inputs for every network); success = exact reconstruction.\n"
    )
    if not report["quick"]:
        protocol += (f"\nEpochs: {pr['epochs']}, the papers' schedule, chosen to fit a ~15 min budget on 2 cores: the "
                     f"jobs took {t['job_cpu_seconds']:.0f} CPU-s, {t['job_cpu_seconds'] / 2 / 60:.1f} min for 2 "
                     f"otherwise idle cores; this run took {t['wall_seconds'] / 60:.1f} min of wall time (load "
                     f"average {t['load_average_start']:.1f} at its start, including other users' work).\n")
    levels_rows = [[p, *acc] for p, acc in lv["accuracy"].items()]
    levels_md = (f"## Accuracy vs conductance levels L (fv = {DEFAULT_STATE_FRAC})\n\n"
                 + markdown_table(["preset", *(f"L = {v}" for v in lv["levels"])], levels_rows)
                 + "\n\nPulses per update P_max (from train.max_step and the device's mean step):\n\n"
                 + markdown_table(["preset", *(f"L = {v}" for v in lv["levels"])],
                                  [[p, *m] for p, m in lv["max_pulses"].items()]) + "\n")
    shared = [f"{pt['preset']} at L = {pt['levels']} is `{pt['run']}`" for pt in report["points"]
              if pt["run"] != "float" and not pt["run"].startswith(f"fixed/{pt['preset']}/")]
    if shared:
        levels_md += ("\nPresets that differ only in their default levels are the same device at equal L; "
                      "such a point is trained once and shown in every row it belongs to: "
                      + "; ".join(shared) + ".\n")
    state_rows = [[fv, sb, ab, rb, acc] for fv, sb, ab, rb, acc in
                  zip(st["state_frac"], st["state_bits"], st["acc_bits"], st["r_bits"], st["accuracy"])]
    state_md = ("## Accuracy vs state width (ideal device, L = 2048)\n\n"
                + markdown_table(["fv (state_frac)", "state bits", "acc_bits", "r_bits", "accuracy"], state_rows)
                + "\n")
    default_rows = [[d["preset"], d["levels"], d["fixed_accuracy"], d["float_accuracy"], d["ex_situ_accuracy"]]
                    for d in report["defaults"]]
    defaults_md = ("## Presets at their own levels vs the float model\n\n"
                   + markdown_table(["preset", "levels", "fixed in situ", "float model",
                                     "float weights programmed (ex situ)"], default_rows)
                   + "\n\n*float model*: the float EqProp reference (no device), trained with the same epochs "
                     "and seed; the same number in every row. *ex situ*: those float weights written "
                     "(write-verify to the nearest codes) into the device and recalled in fixed point.\n")
    return "\n".join((head, protocol, _preset_md(report), levels_md, state_md, defaults_md,
                      "![Accuracy vs levels and state width](sweep.png)\n"))


def run_sweep(out: Path, quick: bool = False, jobs: int = 2, plan: Plan | None = None,
              progress: bool = True, scheduler: str | None = None, resume: bool = False) -> dict:
    """Run the sweep and write sweep.md, sweep.json and sweep.png into `out`.

    The jobs run in `jobs` local processes, or on the Dask scheduler at `scheduler`; `resume` takes
    over the finished jobs of an interrupted run from out/journal.jsonl.
    """
    runner = Runner.choose(jobs, scheduler)
    plan = plan or (QUICK if quick else FULL)
    unknown = set(plan.presets) - set(PRESETS)
    if unknown or "ideal" not in plan.presets:
        raise ValueError(f"sweep presets must include 'ideal' and be among {sorted(PRESETS)}, got {plan.presets}")
    start, load = time.perf_counter(), os.getloadavg()[0]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    job_list, points = plan_jobs(plan)
    click.echo(f"sweep: {len(job_list)} networks ({len(job_list) - 1} fixed-point, 1 float), {plan.epochs} "
               f"epochs, {plan.trials} trials per pattern at p = {FLIP}, {runner.describe()}")
    outcome = run_jobs(job_list, runner, progress, journal=out / JOURNAL, resume=resume)
    results = outcome.results
    report = build_report(results, points, plan, quick)
    wall = time.perf_counter() - start
    report["timing"] = {"jobs": outcome.workers, "executor": outcome.executor, "resumed": len(outcome.resumed),
                        "wall_seconds": round(wall, 1), "load_average_start": round(load, 2),
                        "job_cpu_seconds": round(sum(r["cpu_seconds"] for r in results.values()), 1)}
    figure(report, out / "sweep.png")
    (out / "sweep.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "sweep.md").write_text(markdown(report))
    click.echo(f"wrote {out}/{', '.join(FILES)} (wall time {wall:.0f} s)")
    return report
