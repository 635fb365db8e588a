"""`memprop recipe`: recall near the nearest-pattern bound, and what each ingredient contributes.

The ablation starts from the EqProp defaults (the seeds' protocol as this project runs it)
and adds the recipe's ingredients one at a time; every row is trained on the same pattern
sets with the same seeds and evaluated on the same corrupted inputs as the bound. The full
recipe is also trained in fixed point (ideal device): the hardware's in-situ learning.
Each network is one job that depends only on its own inputs, so the tables are the same
whatever the number of worker processes.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from tqdm.auto import tqdm

from memprop import __version__
from memprop.demo import markdown_table
from memprop.model import patterns as pattern_sets
from memprop.model import recall, training
from memprop.model.config import Config
from memprop.workers import single_threaded_blas

FLIPS = (0.10, 0.15, 0.20, 0.25)
TARGET_FLIPS = (0.10, 0.15, 0.20)   # the recipe must come within TARGET_GAP of the bound here
TARGET_GAP = 0.01
EVAL_SEED = 1                       # p = FLIPS[i] uses seed EVAL_SEED + i, as in `memprop reproduce`
FILES = ("recipe.md", "recipe.json")

#: The ingredients, added one at a time (each row keeps the rows above it). Overrides of
#: Config.for_algorithm("eqprop") defaults; "hidden" adds that many hidden units to the network.
STEPS: tuple[tuple[str, dict], ...] = (
    ("EqProp defaults (lr 0.02, ΔW ≤ 0.01, p_train 0.1, input gain 0.5)", {}),
    ("+ slower learning: lr 0.005, ΔW ≤ 0.0025", {"train": {"lr": 0.005, "max_step": 0.0025}}),
    ("+ noisier training: p_train 0.25", {"train": {"train_flip": 0.25}}),
    ("+ 16 hidden units", {"hidden": 16}),
    ("+ longer training: 2x the epochs", {"epochs_factor": 2}),
    ("+ step decay: lr halved after each third of the epochs (the recipe)",
     {"train": {"lr_decay": 0.5}, "decay_periods": 3}),
)
RECIPE_EPOCHS = 300   # the project's schedule; the recipe trains epochs_factor times as long

#: Alternatives to the recipe, each trained like its last row (float): what the hidden units
#: replaced, and the fair means that did not help. (name, overrides of the defaults)
_NOISY_SLOW = {"train": {"lr": 0.005, "max_step": 0.0025, "train_flip": 0.25}}
VARIANTS: tuple[tuple[str, dict], ...] = (
    ("round 1's recipe: weaker input current (gain 0.25) instead of hidden units",
     {**_NOISY_SLOW, "network": {"input_gain": 0.25}, "epochs_factor": 2}),
    ("round 1's recipe with β = 0.5 (positive nudging)",
     {"train": {**_NOISY_SLOW["train"], "beta": 0.5}, "network": {"input_gain": 0.25}, "epochs_factor": 2}),
)


def merged(steps) -> dict:
    """The overrides of the given ingredients, later ones on top."""
    out: dict = {"network": {}, "train": {}, "hidden": 0, "epochs_factor": 1}
    for _, over in steps:
        out["network"].update(over.get("network", {}))
        out["train"].update(over.get("train", {}))
        out["hidden"] = over.get("hidden", out["hidden"])
        out["epochs_factor"] = over.get("epochs_factor", out["epochs_factor"])
        if "decay_periods" in over:
            out["decay_periods"] = over["decay_periods"]
    return out


#: The recipe: every ingredient.
RECIPE = merged(STEPS)


def decay_every(epochs: int, periods: int) -> int:
    """Epochs between two decays when the rate decays after every 1/periods of a run of `epochs`."""
    return max(1, -(-epochs // periods))


def with_decay_schedule(train: dict, overrides: dict) -> dict:
    """`train` with the learning-rate decay period the overrides' decay_periods give its epochs."""
    if overrides.get("decay_periods"):
        return {**train, "lr_decay_every": decay_every(train["epochs"], overrides["decay_periods"])}
    return train


def recipe_train(epochs: int | None = None) -> dict:
    """The recipe's train section for a run of `epochs` (default: its own schedule)."""
    epochs = RECIPE_EPOCHS * RECIPE["epochs_factor"] if epochs is None else epochs
    return with_decay_schedule({**RECIPE["train"], "epochs": epochs}, RECIPE)


def recipe_config(pattern_units: int, overrides: dict | None = None, numerics: str = "float",
                  train: dict | None = None) -> Config:
    """An EqProp Config for patterns of `pattern_units` with the recipe's (or the given) overrides.

    `train` may set "epochs": the base schedule, multiplied by the ingredients' epochs factor.
    """
    over = RECIPE if overrides is None else overrides
    hidden = over.get("hidden", 0)
    network = {**over.get("network", {}), "n": pattern_units + hidden, "hidden": hidden}
    extra = {"numerics": "fixed", "device": {"preset": "ideal"}} if numerics == "fixed" else {}
    tr = {"epochs": RECIPE_EPOCHS, **over.get("train", {}), **(train or {})}
    tr["epochs"] *= over.get("epochs_factor", 1)
    return Config.for_algorithm("eqprop", network=network, train=with_decay_schedule(tr, over), **extra)


@dataclass(frozen=True)
class Plan:
    epochs: int
    trials: int
    sets: tuple[str, ...]
    seeds: tuple[int, ...]
    recipe_seeds: tuple[int, ...] = ()   # more training seeds for the recipe itself (float and fixed)


#: Training seed s + the set's index: every set is trained from its own seed; the recipe also from
#: seed 10 + the set's index (two trainings per generated set).
FULL = Plan(epochs=300, trials=1000, sets=("generated:0", "generated:1", "generated:2", "hex16"), seeds=(0,),
            recipe_seeds=(10,))
QUICK = Plan(epochs=3, trials=5, sets=("generated:0", "hex16"), seeds=(0,))


@dataclass(frozen=True)
class Job:
    step: int                   # how many ingredients (1 = the defaults only); -k: the k-th variant
    numerics: str
    patterns: str
    seed: int
    epochs: int
    trials: int

    @property
    def name(self) -> str:
        return f"{self.step}/{self.numerics}/{self.patterns}/seed={self.seed}"


def job_overrides(job: Job) -> dict:
    return VARIANTS[-job.step - 1][1] if job.step < 0 else merged(STEPS[:job.step])


def job_config(job: Job, pattern_units: int) -> Config:
    return recipe_config(pattern_units, job_overrides(job), job.numerics, {"epochs": job.epochs, "seed": job.seed})


def run_job(job: Job) -> dict:
    start = time.perf_counter()
    pats = pattern_sets.load(job.patterns)
    cfg = job_config(job, pats.size)
    params, history = training.train(cfg, pats, progress=False)
    results = [recall.evaluate(params, cfg, pats, p, job.trials, EVAL_SEED + i) for i, p in enumerate(FLIPS)]
    return {"config": json.loads(cfg.to_json()), "fingerprint": cfg.fingerprint,
            "synapses": int(np.triu(params.mask).sum()), "units": cfg.network.n,
            "accuracy": [r.accuracy for r in results], "accuracy_mse": [r.accuracy_mse for r in results],
            "bound": [r.bound for r in results], "gap": [r.bound - r.accuracy for r in results],
            "per_class": [r.per_class for r in results], "mean_steps": float(np.mean(history.steps[-10:])),
            "seconds": time.perf_counter() - start}


def set_seeds(plan: Plan, recipe: bool = False) -> list[tuple[str, int]]:
    """(pattern set, training seed) pairs: seed s + the set's index (the recipe: also its extra seeds on
    the generated sets)."""
    pairs = [(name, seed + i) for i, name in enumerate(plan.sets) for seed in plan.seeds]
    if recipe:
        pairs += [(name, seed + i) for i, name in enumerate(plan.sets) for seed in plan.recipe_seeds
                  if name.startswith(pattern_sets.GENERATED)]
    return pairs


def plan_jobs(plan: Plan) -> list[Job]:
    pairs, last = set_seeds(plan), len(STEPS)
    jobs = [Job(step, "float", s, seed, plan.epochs, plan.trials) for step in range(1, last) for s, seed in pairs]
    jobs += [Job(last, numerics, s, seed, plan.epochs, plan.trials) for numerics in ("float", "fixed")
             for s, seed in set_seeds(plan, recipe=True)]
    jobs += [Job(-k - 1, "float", s, seed, plan.epochs, plan.trials) for k in range(len(VARIANTS)) for s, seed in pairs]
    return jobs


def reusable(jobs: list[Job], path: Path) -> dict[str, dict]:
    """Runs of an earlier recipe.json that are the very jobs planned now (same name, same Config).

    A job is a pure function of its Config, set and seed, so its numbers can be taken over
    instead of trained again; the report lists which were.
    """
    try:
        old = json.loads(Path(path).read_text())
        runs, per_class = old["runs"], old["per_class"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a recipe.json to reuse ({exc})") from None
    found = {}
    for job in jobs:
        run = runs.get(job.name)
        if run is None or job.name not in per_class:
            continue
        cfg = job_config(job, pattern_sets.load(job.patterns).size)
        try:      # read back as a Config: a field added since then reads as its default
            same = Config.create(**run["config"]) == cfg and run.get("fingerprint") == cfg.fingerprint
        except (KeyError, TypeError, ValueError):
            same = False
        if same:
            found[job.name] = {**run, "config": json.loads(cfg.to_json()), "per_class": per_class[job.name]}
    return found


def run_jobs(jobs: list[Job], workers: int) -> dict[str, dict]:
    context = multiprocessing.get_context("spawn")
    results = {}
    if not jobs:
        return results
    order = sorted(jobs, key=lambda j: (j.numerics == "fixed", j.epochs * merged_factor(j), j.step), reverse=True)
    with single_threaded_blas(), ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        futures = {pool.submit(run_job, job): job for job in order}
        for future in tqdm(as_completed(futures), total=len(futures), desc="recipe", unit="network"):
            results[futures[future].name] = future.result()
    return results


def merged_factor(job: Job) -> int:
    """The job's epochs factor (longest jobs first keeps both workers busy to the end)."""
    return job_overrides(job).get("epochs_factor", 1)


def summarise(runs: list[dict]) -> dict:
    """Mean, min and max over runs of the gap to the bound and of the accuracy, per p."""
    gaps, accs = np.array([r["gap"] for r in runs]), np.array([r["accuracy"] for r in runs])
    return {"gap_mean": gaps.mean(axis=0).tolist(), "gap_max": gaps.max(axis=0).tolist(),
            "gap_min": gaps.min(axis=0).tolist(), "accuracy_mean": accs.mean(axis=0).tolist(),
            "runs": len(runs)}


def build_report(results: dict[str, dict], plan: Plan, quick: bool) -> dict:
    generated = [s for s in plan.sets if s.startswith(pattern_sets.GENERATED)]
    pairs = set_seeds(plan)
    rows = []
    steps = [(step, STEPS[step - 1][0]) for step in range(1, len(STEPS) + 1)]
    steps += [(-k - 1, VARIANTS[k][0]) for k in range(len(VARIANTS))]
    for step, ingredient in steps:
        for numerics in ("float", "fixed"):
            pairs = set_seeds(plan, recipe=step == len(STEPS))
            names = [Job(step, numerics, s, seed, plan.epochs, plan.trials).name for s, seed in pairs if s in generated]
            if not names or not all(n in results for n in names):
                continue
            summary = summarise([results[n] for n in names])
            hex_runs = [results[Job(step, numerics, s, seed, plan.epochs, plan.trials).name]
                        for s, seed in pairs if s == pattern_sets.BUILTIN]
            first = results[names[0]]
            rows.append({"step": step, "ingredient": ingredient, "numerics": numerics, "variant": step < 0,
                         "generated": summary, "hex16": summarise(hex_runs) if hex_runs else None,
                         "units": first["units"], "synapses": first["synapses"],
                         "mean_steps": float(np.mean([results[n]["mean_steps"] for n in names])),
                         "epochs": first["config"]["train"]["epochs"],
                         "meets_target": all(g <= TARGET_GAP for g, p in zip(summary["gap_max"], FLIPS)
                                             if p in TARGET_FLIPS)})
    return {"version": __version__, "quick": quick, "flips": list(FLIPS), "target_flips": list(TARGET_FLIPS),
            "target_gap": TARGET_GAP, "epochs": plan.epochs, "trials": plan.trials, "sets": list(plan.sets),
            "seeds": [seed for _, seed in pairs], "recipe_seeds": [seed for _, seed in set_seeds(plan, recipe=True)],
            "eval_seed": EVAL_SEED, "recipe": RECIPE, "steps": [name for name, _ in STEPS],
            "variants": [name for name, _ in VARIANTS], "ablation": rows,
            "runs": {name: {k: v for k, v in r.items() if k != "per_class"} for name, r in sorted(results.items())},
            "per_class": {name: r["per_class"] for name, r in sorted(results.items())}}


def markdown(report: dict) -> str:
    flips = [f"p = {p:.2f}" for p in report["flips"]]
    gen = [s for s in report["sets"] if s.startswith(pattern_sets.GENERATED)]
    table = []
    for row in report["ablation"]:
        g = row["generated"]
        cells = [f"{m:.4f} ({lo:.4f}–{hi:.4f})" for m, lo, hi in zip(g["gap_mean"], g["gap_min"], g["gap_max"])]
        hexgap = row["hex16"]["gap_mean"] if row["hex16"] else [None] * len(flips)
        label = f"alternative: {row['ingredient']}" if row.get("variant") else row["ingredient"]
        table.append([label, row["numerics"], row["epochs"], g["runs"], *cells,
                      ", ".join("—" if x is None else f"{x:.4f}" for x in hexgap),
                      row["units"], row["synapses"], f"{row['mean_steps']:.1f}",
                      "yes" if row["meets_target"] else "no"])
    runs = report["runs"]
    bounds = {s: next(r["bound"] for n, r in runs.items() if f"/{s}/" in n) for s in report["sets"]}
    return (f"# memprop recipe: recall against the nearest-pattern bound\n\nmemprop {report['version']}"
            f"{' (--quick)' if report['quick'] else ''}; {report['epochs']} epochs, {report['trials']} trials per "
            f"pattern and p (eval seed {report['eval_seed']} + i), training seeds {report['seeds']} (the recipe: "
            f"{report['recipe_seeds']}).\n\n"
            f"Gap to the bound (bound − accuracy, exact criterion): mean (min–max) over the generated sets "
            f"{', '.join(gen)} (16 correlated 10 × 10 glyphs, min Hamming ≥ 14; runs: trainings, one or two seeds per "
            f"set), then hex16 (min Hamming 6) at "
            f"p = {', '.join(f'{p:.2f}' for p in report['flips'])}. Target: gap ≤ {report['target_gap']} at "
            f"p = {', '.join(f'{p:.2f}' for p in report['target_flips'])} in every run (the max of the range).\n\n"
            + markdown_table(["ingredients (cumulative)", "numerics", "epochs", "runs", *flips, "hex16 gaps", "units",
                              "synapse pairs",
                              "steps/sample", "within 0.01"], table)
            + "\n\nBounds: " + "; ".join(f"{s}: " + ", ".join(f"{b:.4f}" for b in v) for s, v in bounds.items())
            + "\n" + (f"\n{len(report['reused']['runs'])} of {len(runs)} networks were taken from "
                      f"{report['reused']['from']} (the same Config, set and seed).\n" if report.get("reused", {}).get("runs")
                      else ""))


def run_recipe(out: Path, quick: bool = False, jobs: int = 2, plan: Plan | None = None,
               reuse: Path | None = None) -> dict:
    """Train every row of the ablation and write recipe.md and recipe.json into `out`."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    plan = plan or (QUICK if quick else FULL)
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    job_list = plan_jobs(plan)
    click.echo(f"recipe: {len(job_list)} networks ({len(STEPS)} ablation rows and {len(VARIANTS)} alternatives x "
               f"{len(plan.sets)} sets x {len(plan.seeds)} seeds, the recipe also with seeds {list(plan.recipe_seeds)} "
               f"and in fixed point), {plan.epochs} epochs, {jobs} worker processes")
    reused = reusable(job_list, reuse) if reuse is not None else {}
    if reuse is not None:
        click.echo(f"recipe: {len(reused)} of {len(job_list)} networks taken from {reuse} (same Config, set and seed)")
    results = {**reused, **run_jobs([j for j in job_list if j.name not in reused], jobs)}
    report = build_report(results, plan, quick)
    report["reused"] = {"from": None if reuse is None else str(reuse), "runs": sorted(reused)}
    report["timing"] = {"jobs": jobs, "wall_seconds": round(time.perf_counter() - start, 1)}
    (out / "recipe.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "recipe.md").write_text(markdown(report))
    click.echo(markdown(report))
    click.echo(f"wrote {out}/{', '.join(FILES)}")
    return report
