"""`memprop sweep`: fixed-point in-situ EqProp on memristive devices, over seeds and checkpoints.

Every network is trained with the hardware's fixed-point EqProp (`numerics="fixed"`,
docs/numerics.md) on the built-in glyphs and recalled at p = 0.10. Every number is

- the mean (and spread) over several seeds: each seed is a training run (train.seed) on its
  own chip (device.fab_seed: the device-class and stuck-device maps);
- of the average of the last few checkpoints of each run (the trials are split between them),
  not one checkpoint, which on coarse devices can be 0.06 above or below its neighbours;
- with the recall of every glyph, so a lost glyph is visible.

Points: every preset at its own levels, beside the float model and the float weights
programmed into the device (ex situ); accuracy vs conductance levels L for each device family;
accuracy vs the fraction of stuck devices, in situ vs programmed from float (device by device,
and fault-aware); accuracy vs state width; centered nudging, float vs fixed point.

Each network is one job that depends only on its own config and seeds; the report is assembled
in a fixed order, so every number is the same whatever the number of workers.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import click
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from memprop import __version__
from memprop.demo import markdown_table
from memprop.model import patterns as pattern_sets
from memprop.model import recall, training
from memprop.jobs import JOURNAL, Outcome, Runner, Task, run_tasks
from memprop.model.config import Config, DeviceConfig
from memprop.model.device import PRESETS, in_situ_fixed, parameters, resolve
from memprop.model.fixed import FixedParams
from memprop.model.numerics import Formats
from memprop.workers import single_threaded_blas

FLIP = 0.10
EVAL_SEED = 1            # checkpoint k of every network sees the same corrupted inputs (seed EVAL_SEED + k)
DEFAULT_STATE_FRAC = 8   # FixedConfig.state_frac default
#: Learning rate of every sweep network, float and fixed: half the float default (0.02). On coarse devices
#: one pulse is up to 3x max_step; at 0.02 rram-nonlinear let glyph E merge into F and come back between
#: checkpoints (0.977-0.989 from epoch 40 to 150, one seed), at 0.01 it held 0.990-0.997 (three seeds).
LR = 0.01
#: Centered nudging (float and fixed): beta 1/4 at lr 0.003. Every unit of the autoassociative network is an
#: output, so the -beta phase relaxes on E - beta C, whose curvature per unit is 1 - beta minus the field's:
#: near beta = 1 it has no stable minimum (at beta = 1 and 1/2 the -beta phase ran to the step limit and
#: recall fell below 0.2); beta = 1/4 (a power of two, as fixed point needs) at lr 0.01 still oscillated.
CENTERED_BETA, CENTERED_LR = 0.25, 0.003
GLYPHS = "0123456789ABCDEF"
LOST = 0.9               # a glyph recalled less often than this is shown as lost
FILES = ("sweep.md", "sweep.json", "sweep.png")
README_BEGIN, README_END = "<!-- memprop sweep: begin -->", "<!-- memprop sweep: end -->"


@dataclass(frozen=True)
class Plan:
    """How big the sweep is."""

    epochs: int
    trials: int                                   # corrupted copies per glyph, split over the checkpoints
    checkpoints: int                              # the last K checkpoints are averaged ...
    every: int                                    # ... taken every `every` epochs
    seeds: tuple[int, ...]                        # train.seed = device.fab_seed = seed
    levels: tuple[int, ...]                       # conductance levels L of the levels sweep
    level_presets: tuple[str, ...]                # device families of the levels sweep
    state_fracs: tuple[int, ...]                  # fixed.state_frac of the state-width sweep (ideal device)
    stuck: tuple[float, ...]                      # stuck-device fractions of the stuck sweep
    stuck_preset: str = "rram-nonlinear"
    centered_preset: str = "ideal"                # fixed point beside float for centered nudging
    presets: tuple[str, ...] = tuple(PRESETS)
    lr: float = LR

    @property
    def checkpoint_epochs(self) -> tuple[int, ...]:
        return tuple(self.epochs - (self.checkpoints - 1 - k) * self.every for k in range(self.checkpoints))


#: Default: 120 epochs (at lr 0.01 accuracy is flat from about epoch 70 on the devices that learn the task),
#: the last 5 checkpoints (epochs 80-120) of 200 trials per glyph each, 3 seeds; sweep.md states the time.
FULL = Plan(epochs=120, trials=1000, checkpoints=5, every=10, seeds=(0, 1, 2), levels=(32, 64, 128, 256),
            level_presets=("ideal", "linear-256", "soft-bounds", "rram-nonlinear"), state_fracs=(4, 6, 8, 10),
            stuck=(0.0, 0.05, 0.1, 0.2))
QUICK = Plan(epochs=2, trials=10, checkpoints=2, every=1, seeds=(0, 1), levels=(64,),
             level_presets=("linear-256", "soft-bounds"), state_fracs=(4, 8), stuck=(0.0, 0.1))


@dataclass(frozen=True)
class Job:
    """One network: fixed in-situ EqProp on a device (or the float model), then its evaluations."""

    numerics: str                  # "fixed" or "float"
    preset: str = ""
    levels: int | None = None      # None: the preset's own levels
    state_frac: int = DEFAULT_STATE_FRAC
    stuck: float = 0.0
    nudge: str = "positive"
    seed: int = 0
    epochs: int = 0
    trials: int = 0
    checkpoints: tuple[int, ...] = ()
    lr: float = LR
    beta: float = 1.0
    ex_situ: tuple = ()            # float job: (preset, stuck) devices to program the float weights into

    @property
    def name(self) -> str:
        nudge = self.nudge if self.nudge != "centered" else f"centered/beta={self.beta:g}/lr={self.lr:g}"
        if self.numerics == "float":
            return f"float/{nudge}/seed={self.seed}"
        return (f"fixed/{self.preset}/L={self.resolved_levels}/fv={self.state_frac}/stuck={self.stuck:g}/"
                f"{nudge}/seed={self.seed}")

    @property
    def resolved_levels(self) -> int:
        return self.levels or PRESETS[self.preset].levels


def fixed_config(n: int, preset: str, levels: int | None, state_frac: int, epochs: int, seed: int = 0,
                 stuck: float = 0.0, nudge: str = "positive", lr: float = LR, beta: float = 1.0) -> Config:
    """The config of one sweep point; `levels` equal to the preset's own is left unset (same network)."""
    device: dict = {"preset": preset, "fab_seed": seed}
    if levels is not None and levels != PRESETS[preset].levels:
        device["levels"] = levels
    if stuck:
        device["stuck"] = stuck
    fixed = in_situ_fixed(preset, {} if state_frac == DEFAULT_STATE_FRAC else {"state_frac": state_frac})
    return Config.for_algorithm("eqprop", network={"n": n}, numerics="fixed", device=device, fixed=fixed,
                                train={"epochs": epochs, "seed": seed, "nudge": nudge, "lr": lr, "beta": beta})


def float_config(n: int, epochs: int, seed: int = 0, nudge: str = "positive", lr: float = LR,
                 beta: float = 1.0) -> Config:
    return Config.for_algorithm("eqprop", network={"n": n},
                                train={"epochs": epochs, "seed": seed, "nudge": nudge, "lr": lr, "beta": beta})


def job_config(job: Job, n: int) -> Config:
    if job.numerics == "float":
        return float_config(n, job.epochs, job.seed, job.nudge, job.lr, job.beta)
    return fixed_config(n, job.preset, job.levels, job.state_frac, job.epochs, job.seed, job.stuck, job.nudge,
                        job.lr, job.beta)


def device_identity(preset: str, levels: int):
    """What a preset computes at `levels`: its resolved parameters without name and source."""
    own = PRESETS[preset].levels
    p = resolve(DeviceConfig(preset=preset, levels=None if levels == own else levels))
    return replace(p, name="", source="")


def plan_jobs(plan: Plan) -> tuple[list[Job], dict[tuple, str]]:
    """Every network the plan needs, each once.

    Returns the jobs and, for every point (preset, levels, state_frac, stuck, nudge, seed), the
    name of the job that computes it. Two presets that differ only in their default levels
    (linear-256 and linear-64) are the same device at equal L: that point is trained once.
    """
    common = {"epochs": plan.epochs, "trials": plan.trials, "checkpoints": plan.checkpoint_epochs, "lr": plan.lr}
    centered = {**common, "nudge": "centered", "lr": CENTERED_LR, "beta": CENTERED_BETA}
    wanted = []
    for seed in plan.seeds:
        wanted += [Job("fixed", p, None, seed=seed, **common) for p in plan.presets]
        wanted += [Job("fixed", p, lv, seed=seed, **common) for p in plan.level_presets for lv in plan.levels]
        wanted += [Job("fixed", "ideal", None, fv, seed=seed, **common) for fv in plan.state_fracs]
        wanted += [Job("fixed", plan.stuck_preset, None, stuck=s, seed=seed, **common) for s in plan.stuck]
        wanted += [Job("fixed", plan.centered_preset, None, seed=seed, **centered)]
    by_identity: dict[tuple, Job] = {}
    points: dict[tuple, str] = {}
    for job in wanted:
        key = (device_identity(job.preset, job.resolved_levels), job.state_frac, job.stuck, job.nudge, job.seed)
        runs = by_identity.setdefault(key, job)
        points[(job.preset, job.resolved_levels, job.state_frac, job.stuck, job.nudge, job.seed)] = runs.name
    ex_situ = tuple(dict.fromkeys([(p, 0.0) for p in plan.presets] + [(plan.stuck_preset, s) for s in plan.stuck]))
    floats = [Job("float", seed=seed, ex_situ=ex_situ, **common) for seed in plan.seeds]
    floats += [Job("float", seed=seed, **centered) for seed in plan.seeds]
    return list(by_identity.values()) + floats, points


# -- one job (runs in a worker process) ---------------------------------------------------------

def _evaluate(params, cfg: Config, pats, job: Job, k: int) -> dict:
    result = recall.evaluate(params, cfg, pats, FLIP, job.trials // len(job.checkpoints), EVAL_SEED + k)
    return {"accuracy": result.accuracy, "per_class": result.per_class}


def _average(checkpoints: list[dict]) -> dict:
    """The average of the checkpoints (equal trials each: the pooled success rate)."""
    return {"accuracy": float(np.mean([c["accuracy"] for c in checkpoints])),
            "per_class": [float(v) for v in np.mean([c["per_class"] for c in checkpoints], axis=0)],
            "checkpoints": [c["accuracy"] for c in checkpoints]}


def run_job(job: Job) -> dict:
    """Train one network and evaluate it at its checkpoints at p = FLIP; plain numbers out."""
    start, cpu = time.perf_counter(), time.process_time()
    pats = pattern_sets.load()
    cfg = job_config(job, pats.size)
    seen: list[dict] = []
    ex_seen: dict[str, list[dict]] = {}
    ex_configs = {}
    for preset, stuck in job.ex_situ:
        fcfg = fixed_config(pats.size, preset, None, DEFAULT_STATE_FRAC, job.epochs, job.seed, stuck, lr=job.lr)
        for aware in ((False, True) if stuck else (False,)):
            ex_configs[_ex_key(preset, stuck, aware)] = (fcfg, aware)

    def checkpoint(epoch: int, params) -> None:
        if epoch not in job.checkpoints:
            return None
        k = job.checkpoints.index(epoch)
        seen.append(_evaluate(params, cfg, pats, job, k))
        for key, (fcfg, aware) in ex_configs.items():   # the float weights written into each device
            programmed = FixedParams.from_float(fcfg, params.W, params.b, fault_aware=aware)
            ex_seen.setdefault(key, []).append(_evaluate(programmed, fcfg, pats, job, k))
        return None

    every = min(np.diff((0,) + job.checkpoints)) if job.checkpoints else 1
    _, history = training.train(cfg, pats, progress=False, on_epoch=checkpoint, every=int(every))
    record = {"name": job.name, "job": asdict(job), "config": json.loads(cfg.to_json()),
              "fingerprint": cfg.fingerprint, **_average(seen),
              "final_loss": history.loss[-1] if history.loss else None,
              "final_steps": history.steps[-1] if history.steps else None}
    if job.numerics == "fixed":
        record["formats"] = Formats(cfg).summary()
    else:
        record["ex_situ"] = {key: {**_average(runs), "fingerprint": ex_configs[key][0].fingerprint}
                             for key, runs in ex_seen.items()}
    record["seconds"] = time.perf_counter() - start
    record["cpu_seconds"] = time.process_time() - cpu
    return record


def _ex_key(preset: str, stuck: float, fault_aware: bool = False) -> str:
    return f"{preset}/stuck={stuck:g}" + ("/fault-aware" if fault_aware else "")


def _cost(job: Job) -> tuple:
    """Longest first: float jobs carry the ex-situ evaluations; then few levels, then centered."""
    return (job.numerics == "float", job.nudge == "centered", -job.resolved_levels if job.numerics == "fixed" else 0)


def run_jobs(jobs: list[Job], runner: Runner | int, progress: bool = True, journal: Path | None = None,
             resume: bool = False) -> Outcome:
    """All jobs on `runner` (local processes or a Dask cluster, memprop.jobs), longest first, with a bar
    over finished jobs; results keyed by job name."""
    runner = runner if isinstance(runner, Runner) else Runner(runner)
    order = sorted(jobs, key=_cost, reverse=True)
    return run_tasks([Task(job.name, run_job, (job,)) for job in order], runner, desc="sweep", progress=progress,
                       journal=journal, resume=resume)


# -- statistics over seeds ----------------------------------------------------------------------

def over_seeds(records: list[dict]) -> dict:
    """Mean, spread (sample sd, min, max) and per-glyph mean of one point over its seeds."""
    acc = np.array([r["accuracy"] for r in records])
    per_class = np.mean([r["per_class"] for r in records], axis=0)
    return {"mean": float(acc.mean()), "sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "min": float(acc.min()), "max": float(acc.max()), "seeds": [float(a) for a in acc],
            "per_glyph": [float(v) for v in per_class],
            "lost": [GLYPHS[i] for i, v in enumerate(per_class) if v < LOST]}


def cell(stats: dict) -> str:
    """'mean ± sd' with the lost glyphs, for Markdown tables."""
    text = f"{stats['mean']:.4f} ± {stats['sd']:.4f}"
    return text + (f" (lost {''.join(stats['lost'])})" if stats["lost"] else "")


# -- the report ---------------------------------------------------------------------------------

def preset_table() -> dict:
    """Every preset's parameters as written in model/device.py (with their sources)."""
    return {name: {**parameters(p), "dw_min": p.dw_min()} for name, p in PRESETS.items()}


def build_report(results: dict[str, dict], points: dict[tuple, str], plan: Plan, quick: bool) -> dict:
    pats = pattern_sets.load()

    nudging = {"positive": {"lr": plan.lr, "beta": 1.0}, "centered": {"lr": CENTERED_LR, "beta": CENTERED_BETA}}

    def fixed(preset, levels=None, fv=DEFAULT_STATE_FRAC, stuck=0.0, nudge="positive") -> dict:
        L = levels or PRESETS[preset].levels
        return over_seeds([results[points[(preset, L, fv, stuck, nudge, s)]] for s in plan.seeds])

    def floats(nudge="positive", ex=None) -> dict:
        settings = nudging[nudge]
        runs = [results[Job("float", seed=s, nudge=nudge, **settings).name] for s in plan.seeds]
        return over_seeds([r["ex_situ"][ex] if ex else r for r in runs])

    def run_of(preset, levels=None, fv=DEFAULT_STATE_FRAC, stuck=0.0, nudge="positive") -> dict:
        L = levels or PRESETS[preset].levels
        return results[points[(preset, L, fv, stuck, nudge, plan.seeds[0])]]

    sample = run_of("ideal")["config"]
    defaults = [{"preset": p, "levels": PRESETS[p].levels, "fixed": fixed(p), "float": floats(),
                 "ex_situ": floats(ex=_ex_key(p, 0.0)), "max_pulses": run_of(p)["formats"]["max_pulses"],
                 "max_pulse_step": run_of(p)["formats"]["max_pulse_step"]} for p in plan.presets]
    levels_sweep = {"levels": list(plan.levels),
                    "accuracy": {p: [fixed(p, lv) for lv in plan.levels] for p in plan.level_presets},
                    "max_pulses": {p: [run_of(p, lv)["formats"]["max_pulses"] for lv in plan.levels]
                                   for p in plan.level_presets},
                    "dw_min": {p: [PRESETS[p].w_scale * PRESETS[p].dw_min(lv) for lv in plan.levels]
                               for p in plan.level_presets}}
    state_sweep = {"state_frac": list(plan.state_fracs), "accuracy": [fixed("ideal", fv=fv) for fv in plan.state_fracs],
                   "state_bits": [run_of("ideal", fv=fv)["formats"]["state_bits"] for fv in plan.state_fracs],
                   "acc_bits": [run_of("ideal", fv=fv)["formats"]["acc_bits"] for fv in plan.state_fracs],
                   "r_bits": [run_of("ideal", fv=fv)["formats"]["r_bits"] for fv in plan.state_fracs]}
    sp = plan.stuck_preset
    stuck_sweep = {"preset": sp, "levels": PRESETS[sp].levels, "fractions": list(plan.stuck),
                   "in_situ": [fixed(sp, stuck=s) for s in plan.stuck],
                   "ex_situ": [floats(ex=_ex_key(sp, s)) for s in plan.stuck],
                   "ex_situ_fault_aware": [floats(ex=_ex_key(sp, s, bool(s))) for s in plan.stuck]}
    cp = plan.centered_preset
    centered = {"preset": cp, "rows": [{"nudge": nudge, **nudging[nudge], "float": floats(nudge),
                                        "fixed": fixed(cp, nudge=nudge)} for nudge in ("positive", "centered")]}
    for row in centered["rows"]:
        row["difference"] = row["fixed"]["mean"] - row["float"]["mean"]
    runs = {name: {k: r[k] for k in ("fingerprint", "accuracy", "per_class", "checkpoints", "final_loss",
                                     "final_steps", "seconds", "cpu_seconds", "config",
                                     *(("formats",) if "formats" in r else ()),
                                     *(("ex_situ",) if "ex_situ" in r else ()))}
            for name, r in sorted(results.items())}
    return {
        "version": __version__, "quick": quick,
        "protocol": {"epochs": plan.epochs, "trials": plan.trials, "checkpoints": list(plan.checkpoint_epochs),
                     "seeds": list(plan.seeds), "flip": FLIP, "eval_seed": EVAL_SEED, "patterns": pats.source,
                     "count": pats.count, "n": pats.size, "rounding": sample["fixed"]["rounding"],
                     "lr": sample["train"]["lr"], "max_step": sample["train"]["max_step"],
                     "beta": sample["train"]["beta"], "batch_size": sample["train"]["batch_size"],
                     "repeats": sample["train"]["repeats"], "eps": sample["network"]["eps"],
                     "max_steps": sample["network"]["max_steps"], "lost_below": LOST},
        "presets": preset_table(), "defaults": defaults, "levels_sweep": levels_sweep, "state_sweep": state_sweep,
        "stuck_sweep": stuck_sweep, "centered": centered, "runs": runs,
        "points": [{"preset": p, "levels": lv, "state_frac": fv, "stuck": s, "nudge": nd, "seed": sd, "run": name}
                   for (p, lv, fv, s, nd, sd), name in sorted(points.items())],
    }


def figure(report: dict, path: Path) -> None:
    """Accuracy vs levels (one line per device family), vs stuck fraction, and vs state width."""
    lv, st, sk = report["levels_sweep"], report["state_sweep"], report["stuck_sweep"]
    float_acc = report["defaults"][0]["float"]["mean"]
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    left, middle, right = fig.subplots(1, 3, sharey=True)
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."), ("v", "-")]
    for (marker, line), (preset, stats) in zip(styles * 4, lv["accuracy"].items()):
        left.errorbar(lv["levels"], [s["mean"] for s in stats], yerr=[s["sd"] for s in stats], marker=marker,
                      linestyle=line, label=preset, alpha=0.85, capsize=3)
    left.set_xscale("log", base=2)
    left.set_xticks(lv["levels"], labels=[str(v) for v in lv["levels"]])
    left.set_xlabel("conductance levels L")
    left.set_title("accuracy vs device levels (fv = 8)")
    pct = [100 * f for f in sk["fractions"]]
    for key, label, marker in (("in_situ", "in situ (fixed-point EqProp)", "o"),
                               ("ex_situ", "float weights programmed", "s"),
                               ("ex_situ_fault_aware", "programmed, fault-aware", "^")):
        middle.errorbar(pct, [s["mean"] for s in sk[key]], yerr=[s["sd"] for s in sk[key]], marker=marker,
                        label=label, capsize=3)
    middle.set_xticks(pct)
    middle.set_xlabel(f"stuck devices (%), {sk['preset']}")
    middle.set_title("accuracy vs stuck devices")
    right.errorbar(st["state_frac"], [s["mean"] for s in st["accuracy"]], yerr=[s["sd"] for s in st["accuracy"]],
                   marker="o", color="tab:blue", label="fixed, ideal device", capsize=3)
    right.set_xticks(st["state_frac"])
    right.set_xlabel("state fractional bits fv (fixed.state_frac)")
    right.set_title("accuracy vs state width (ideal device)")
    for ax in (left, middle, right):
        ax.axhline(float_acc, color="0.4", linestyle="--", linewidth=1, label="float model")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    left.set_ylabel(f"recall accuracy (p = {report['protocol']['flip']:.2f}), mean ± sd over seeds")
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)


def _preset_md(report: dict) -> str:
    rows = []
    for name, p in report["presets"].items():
        curve = p["curve"]
        if curve == "exponential":
            curve += f" (NL +{p['nl_up']} / {p['nl_down']})"
        elif curve == "soft_bounds":
            curve += f" (alpha = {p['alpha']:.4g})"
        stuck = f"{p['stuck']:g}" + (f" ({p['stuck_high']:g} at G_max)" if p["stuck"] else "")
        spread = "/".join(f"{p[k]:g}" for k in ("dw_min_dtod", "w_min_dtod", "w_max_dtod", "up_down_dtod"))
        rows.append([name, p["mode"], p["levels"], curve, f"[{p['w_min']:g}, {p['w_max']:g}] x {p['w_scale']:g}",
                     f"{p['dw_min']:.4g}", f"{p['up_down']:g}", spread + (" (log-normal)" if p["dw_min_dtod_log_normal"]
                                                                         else ""),
                     p["d2d_classes"], f"{p['dw_min_std']:g}", stuck, p["source"]])
    return ("## Device presets (model/device.py: PRESETS)\n\n"
            "Parameter names and meanings are aihwkit's (`PulsedDevice`); docs/numerics.md section 5 says how each "
            "becomes a table.\n\n"
            + markdown_table(["preset", "mode", "L", "curve", "[w_min, w_max] x w_scale", "dw_min (mean up step)",
                              "up_down", "d2d: dw_min/w_min/w_max/up_down", "classes M", "c2c dw_min_std", "stuck",
                              "source"], rows)
            + "\n\nThe levels sweep overrides only `device.levels`: dw_min follows it (the range is covered in "
              "L - 1 pulses), soft bounds keep their shape ((1 - alpha)^(L-1) is fixed, so alpha varies), the "
              "exponential curve keeps its nonlinearity NL. Every other parameter is the preset's.\n")


def _glyph_md(rows: list[tuple[str, dict]]) -> str:
    header = ["network", *GLYPHS]
    body = [[name, *(f"{v:.3f}" for v in stats["per_glyph"])] for name, stats in rows]
    return markdown_table(header, body)


def markdown(report: dict) -> str:
    pr, t = report["protocol"], report["timing"]
    lv, st, sk, ce = report["levels_sweep"], report["state_sweep"], report["stuck_sweep"], report["centered"]
    seeds = len(pr["seeds"])
    head = (f"# memprop sweep: fixed-point in-situ EqProp on memristive devices\n\n"
            f"memprop {report['version']}{' (--quick)' if report['quick'] else ''}, {t['executor']}, "
            f"wall time {t['wall_seconds']:.0f} s ({t['job_cpu_seconds']:.0f} CPU-s in the jobs). "
            f"All numbers, configs, fingerprints and per-job seconds are in sweep.json.\n")
    protocol = (
        "## Protocol\n\n"
        f"{pr['count']} patterns of N = {pr['n']} ({pr['patterns']}), dense network, hard_tanh, bounded dynamics "
        f"(eps = {pr['eps']}, at most {pr['max_steps']} steps). Every network trains for **{pr['epochs']} epochs** "
        f"({pr['repeats']} noisy copies per pattern and epoch, batch {pr['batch_size']}, lr {pr['lr']}, "
        f"beta {pr['beta']}, max |dW| per update {pr['max_step']}) with `numerics=\"fixed\"`: in-situ EqProp with "
        f"{pr['rounding']} pulse rounding on the device's level codes (docs/numerics.md). "
        f"**Every number is the mean ± sd over {seeds} seeds** {tuple(pr['seeds'])}: each seed is a training run "
        f"(train.seed) on its own chip (device.fab_seed: device classes and stuck devices). Each run is scored by "
        f"**the average of its last {len(pr['checkpoints'])} checkpoints** (epochs "
        f"{', '.join(map(str, pr['checkpoints']))}), {pr['trials'] // len(pr['checkpoints'])} corrupted copies per "
        f"glyph each at p = {pr['flip']:.2f} ({pr['trials']} per glyph in all; checkpoint k uses seed "
        f"{pr['eval_seed']} + k, the same inputs for every network); success = exact reconstruction. A glyph whose "
        f"mean recall is below {pr['lost_below']} is shown as lost.\n")
    if not report["quick"]:
        protocol += (f"\nThe jobs took {t['job_cpu_seconds']:.0f} CPU-s, {t['job_cpu_seconds'] / 2 / 60:.1f} min for 2 "
                     f"otherwise idle cores; this run took {t['wall_seconds'] / 60:.1f} min of wall time (load "
                     f"average {t['load_average_start']:.1f} at its start, including other users' work).\n")
    default_rows = [[d["preset"], d["levels"], d["max_pulses"], preset_rounding(d["preset"]), cell(d["fixed"]),
                     cell(d["ex_situ"]), cell(d["float"])] for d in report["defaults"]]
    defaults_md = ("## Presets at their own levels\n\n"
                   + markdown_table(["preset", "levels", "P_max", "pulse rounding", "in-situ fixed-point EqProp",
                                     "float weights programmed (ex situ)", "float model"], default_rows)
                   + "\n\n*ex situ*: the float model's weights (same seed and checkpoints) written device by device "
                     "(write-verify to the nearest codes) into the chip of that seed and recalled in fixed point. "
                     "P_max: pulses per update (docs/numerics.md, section 5: from the largest single pulse). Pulse "
                     "rounding *carry*: truncation with each synapse's remainder carried to its next update "
                     "(section 5), which reram-array-om needs (stochastic rounding: 0.00).\n\n"
                     "Recall per glyph (in situ, mean over seeds):\n\n"
                   + _glyph_md([(d["preset"], d["fixed"]) for d in report["defaults"]]) + "\n")
    levels_rows = [[p, *(cell(s) for s in stats)] for p, stats in lv["accuracy"].items()]
    levels_md = (f"## Accuracy vs conductance levels L (fv = {DEFAULT_STATE_FRAC})\n\n"
                 + markdown_table(["device family", *(f"L = {v}" for v in lv["levels"])], levels_rows)
                 + "\n\nPulses per update P_max, and dw_min (the mean potentiation step in weight units) that "
                   "varies with L:\n\n"
                 + markdown_table(["device family", *(f"L = {v}" for v in lv["levels"])],
                                  [[p, *(f"{m} / {d:.4f}" for m, d in zip(lv["max_pulses"][p], lv["dw_min"][p]))]
                                   for p in lv["max_pulses"]]) + "\n")
    stuck_rows = [[f"{100 * f:g} %", cell(a), cell(b), cell(c)]
                  for f, a, b, c in zip(sk["fractions"], sk["in_situ"], sk["ex_situ"], sk["ex_situ_fault_aware"])]
    stuck_md = (f"## Stuck devices: {sk['preset']} (L = {sk['levels']}), in situ vs programmed from float\n\n"
                + markdown_table(["stuck devices", "in-situ fixed-point EqProp", "float weights programmed",
                                  "programmed, fault-aware"], stuck_rows)
                + "\n\nA fraction of the devices (half at G_min, half at G_max; fixed per chip by the fabrication "
                  "seed) never changes. In situ, the learner keeps programming the pairs as usual: a stuck device "
                  "reads as saturated, so potentiate-first sends the pair's pulses to its working partner. *Programmed*: "
                  "the float weights written device by device, each device of a pair to its half of the weight "
                  "(the stuck one cannot be written). *Fault-aware*: the stuck map is known (a post-fabrication test) "
                  "and the working partner is programmed for the whole weight.\n\nRecall per glyph:\n\n"
                + _glyph_md([(f"{100 * f:g} % {name}", s) for f, a, b, c in
                             zip(sk["fractions"], sk["in_situ"], sk["ex_situ"], sk["ex_situ_fault_aware"])
                             for name, s in (("in situ", a), ("programmed", b), ("fault-aware", c))]) + "\n")
    centered_rows = [[nudge_label(r), cell(r["float"]), cell(r["fixed"]), f"{r['difference']:+.4f}"] for r in ce["rows"]]
    centered_md = (f"## Nudging: float vs fixed point ({ce['preset']} device)\n\n"
                   + markdown_table(["nudging", "float model", "fixed point, in situ", "fixed - float"], centered_rows)
                   + "\n\nCentered nudging (+beta and -beta phases) divides the contrast by 2 beta in both models "
                     "(docs/numerics.md, section 5). It runs at beta = 1/4 and a lower learning rate: every unit is an "
                     "output, so the -beta phase relaxes on E - beta C, which loses its stable minimum as beta nears 1 "
                     "(at beta = 1 and 1/2 that phase ran to the step limit and recall fell below 0.2).\n")
    state_rows = [[fv, sb, ab, rb, cell(s)] for fv, sb, ab, rb, s in
                  zip(st["state_frac"], st["state_bits"], st["acc_bits"], st["r_bits"], st["accuracy"])]
    state_md = ("## Accuracy vs state width (ideal device, L = 2048)\n\n"
                + markdown_table(["fv (state_frac)", "state bits", "acc_bits", "r_bits", "accuracy"], state_rows) + "\n")
    shared = sorted({f"{pt['preset']} at L = {pt['levels']} is {pt['run'].split('/seed=')[0]}"
                     for pt in report["points"] if not pt["run"].startswith(f"fixed/{pt['preset']}/")})
    note = ("\nPresets that differ only in their default levels are the same device at equal L; such a point is "
            "trained once and shown in every row it belongs to: " + "; ".join(shared) + ".\n") if shared else ""
    return "\n".join((head, protocol, _preset_md(report), defaults_md, stuck_md, centered_md, levels_md + note,
                      state_md, "![Accuracy vs levels, stuck devices and state width](sweep.png)\n"))


def nudge_label(row: dict) -> str:
    return f"{row['nudge']} (β = {row['beta']:g}, lr {row['lr']:g})"


def preset_rounding(preset: str) -> str:
    """The pulse rounding a preset is trained with in situ (fixed_config): its own, else stochastic."""
    return PRESETS[preset].rounding or "stochastic"


def readme_block(report: dict) -> str:
    """The README's device tables (between the README_BEGIN/END markers), from one sweep report."""
    pr, t = report["protocol"], report["timing"]
    defaults = markdown_table(["device preset", "levels", "pulse rounding", "in-situ fixed-point EqProp",
                               "float weights programmed (ex situ)"],
                              [[d["preset"], d["levels"], preset_rounding(d["preset"]), cell(d["fixed"]), cell(d["ex_situ"])]
                               for d in report["defaults"]])
    lv = report["levels_sweep"]
    levels = markdown_table(["preset", *(f"L = {v}" for v in lv["levels"])],
                            [[p, *(cell(s) for s in stats)] for p, stats in lv["accuracy"].items()])
    sk = report["stuck_sweep"]
    stuck = markdown_table(["stuck devices", "in situ", "programmed from float", "programmed, fault-aware"],
                           [[f"{100 * f:g} %", cell(a), cell(b), cell(c)] for f, a, b, c in
                            zip(sk["fractions"], sk["in_situ"], sk["ex_situ"], sk["ex_situ_fault_aware"])])
    ce = report["centered"]
    centered = markdown_table(["nudging", "float", f"fixed point ({ce['preset']})"],
                              [[nudge_label(r), cell(r["float"]), cell(r["fixed"])] for r in ce["rows"]])
    return (f"{README_BEGIN}\n"
            f"Mean ± sd over {len(pr['seeds'])} seeds (training run and chip), each run the average of its last "
            f"{len(pr['checkpoints'])} checkpoints (epochs {pr['checkpoints'][0]}-{pr['checkpoints'][-1]}), "
            f"{pr['trials']} trials per glyph at p = {pr['flip']:.2f}; glyphs recalled below {pr['lost_below']} are "
            f"named. {t['job_cpu_seconds']:.0f} CPU-s ({t['job_cpu_seconds'] / 120:.1f} min on 2 cores). Per-glyph "
            f"tables and every parameter: `results/sweep/sweep.md`.\n\n{defaults}\n\n"
            f"Accuracy vs conductance levels L (dw_min follows L; soft bounds keep their shape):\n\n{levels}\n\n"
            f"Stuck devices on {sk['preset']} (half at G_min, half at G_max, fixed per chip):\n\n{stuck}\n\n"
            f"Nudging, float vs fixed point:\n\n{centered}\n"
            f"{README_END}")


def update_readme(path: Path, report: dict) -> None:
    """Replace the README's sweep block (between the markers) with this report's tables."""
    text = Path(path).read_text()
    pattern = re.compile(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{path} has no '{README_BEGIN}' ... '{README_END}' block to update")
    Path(path).write_text(pattern.sub(lambda _: readme_block(report), text, count=1))


def run_sweep(out: Path, quick: bool = False, jobs: int = 2, plan: Plan | None = None,
              progress: bool = True, readme: Path | None = None, scheduler: str | None = None,
              resume: bool = False) -> dict:
    """Run the sweep and write sweep.md, sweep.json and sweep.png into `out` (and README's tables).

    The jobs run in `jobs` local processes, or on the Dask scheduler at `scheduler`; `resume` takes
    over the finished jobs of an interrupted run from out/journal.jsonl.
    """
    runner = Runner.choose(jobs, scheduler)
    plan = plan or (QUICK if quick else FULL)
    names = set(plan.presets) | set(plan.level_presets) | {plan.stuck_preset, plan.centered_preset}
    unknown = names - set(PRESETS)
    if unknown or "ideal" not in plan.presets:
        raise ValueError(f"sweep presets must include 'ideal' and be among {sorted(PRESETS)}, got {sorted(names)}")
    if plan.trials % plan.checkpoints or plan.checkpoints > plan.epochs // plan.every or 0.0 not in plan.stuck:
        raise ValueError(f"plan {plan}: trials must split evenly over the checkpoints, which must fit the epochs, "
                         "and the stuck fractions must include 0")
    if readme is not None and README_BEGIN not in Path(readme).read_text():
        raise ValueError(f"{readme} has no '{README_BEGIN}' ... '{README_END}' block to update")
    start, load = time.perf_counter(), os.getloadavg()[0]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    job_list, points = plan_jobs(plan)
    n_float = sum(j.numerics == "float" for j in job_list)
    click.echo(f"sweep: {len(job_list)} networks ({len(job_list) - n_float} fixed-point, {n_float} float), "
               f"{len(plan.seeds)} seeds, {plan.epochs} epochs, last {plan.checkpoints} checkpoints, "
               f"{plan.trials} trials per glyph at p = {FLIP}, {runner.describe()}")
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
    if readme is not None:
        update_readme(readme, report)
    click.echo(f"wrote {out}/{', '.join(FILES)}{f' and {readme}' if readme else ''} (wall time {wall:.0f} s)")
    return report
