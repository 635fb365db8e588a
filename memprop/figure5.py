"""`memprop reproduce`, classification: Frontiers Figure 5 and full test-set numbers.

Figure 5 of the Frontiers paper plots the error rate per epoch on 100 random training and 100
random test patterns of a 5-class, 600-per-class MNIST subset. This module trains the seed's
classifier on the offline digits (always) and on that MNIST subset (when the user has the IDX
files), over several seeds, in float and in fixed point on every device preset (in situ), and
reports the full test set: accuracy (mean, spread), per class, confusion. Every job depends only
on its own seeds, so the numbers do not depend on the number of worker processes.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from tqdm.auto import tqdm

from memprop import __version__
from memprop.demo import markdown_table
from memprop.model import classify
from memprop.model.device import PRESETS
from memprop.model.fixed import FixedParams
from memprop.model.tasks import load_task
from memprop.jobs import Runner, Task, run_tasks

MNIST_SUBSET = {"classes": (0, 1, 2, 3, 4), "per_class": 600}     # the Frontiers setting
OUTPUTS = ("classification.md", "classification.json", "figure5.png")


@dataclass(frozen=True)
class Plan:
    seeds: tuple[int, ...]
    epochs: int
    presets: tuple[str, ...]                 # fixed point, in situ (and float weights programmed: ex situ)
    digits: dict = field(default_factory=dict)   # load_task arguments (classes, per_class)
    mnist: dict = field(default_factory=lambda: dict(MNIST_SUBSET))
    hidden: dict = field(default_factory=dict)   # per task; default classify.DEFAULT_HIDDEN
    monitor: int = classify.MONITOR


FULL = Plan(seeds=(0, 1, 2), epochs=classify.DEFAULT_EPOCHS, presets=tuple(PRESETS))
QUICK = Plan(seeds=(0,), epochs=2, presets=("ideal",), digits={"classes": (0, 1, 2), "per_class": 30},
             mnist={"classes": (0, 1, 2, 3, 4), "per_class": 20}, hidden={"digits": (16,), "mnist": (16,)},
             monitor=20)


@dataclass(frozen=True)
class Job:
    task: str
    preset: str | None       # None: float
    seed: int

    @property
    def numerics(self) -> str:
        return "float" if self.preset is None else "fixed"

    @property
    def name(self) -> str:
        return f"{self.task}/{self.preset or 'float'}/seed={self.seed}"


def device_section(preset: str) -> dict:
    """A preset as the sweep uses it: with its own device-to-device variation (on by default where the
    preset has it: 4 classes, or the preset's M; model/device.py)."""
    return {"preset": preset}


def task_for(name: str, plan: Plan, data: str | None):
    return load_task(name, data if name == "mnist" else None, **(plan.mnist if name == "mnist" else plan.digits))


def job_config(job: Job, plan: Plan, task):
    return classify.classifier_config(task, plan.hidden.get(job.task), epochs=plan.epochs, seed=job.seed,
                                      numerics=job.numerics,
                                      device=None if job.preset is None else device_section(job.preset))


def run_job(job: Job, plan: Plan, data: str | None) -> dict:
    """Train one classifier; full test set; for float also its weights programmed into every preset."""
    start = time.perf_counter()
    task = task_for(job.task, plan, data)
    cfg = job_config(job, plan, task)
    params, history = classify.train_classifier(cfg, task, progress=False, monitor=plan.monitor)
    test = classify.evaluate(params, cfg, task.x_test, task.y_test, task.n_classes)
    out = {"job": job.name, "config": json.loads(cfg.to_json()), "fingerprint": cfg.fingerprint,
           "history": history.to_dict(), "test": test.to_dict()}
    if job.preset is None:
        out["ex_situ"] = {}
        for preset in plan.presets:
            # the chip the in-situ run trains on: the same device section, read-out gain included
            fixed_cfg = cfg.replace(numerics="fixed", device=classify.classifier_device(device_section(preset),
                                                                                    cfg.network.layers))
            programmed = FixedParams.from_float(fixed_cfg, params.W, params.b)
            out["ex_situ"][preset] = classify.evaluate(programmed, fixed_cfg, task.x_test, task.y_test,
                                                       task.n_classes).accuracy
    out["seconds"] = time.perf_counter() - start
    return out


def baselines(task, seeds: tuple[int, ...]) -> dict:
    """Backprop on the same split, for scale: scikit-learn's MLP (one hidden layer of 100) and logistic regression."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    out = {}
    # One BLAS thread: the baselines are repeatable whatever the machine's thread count.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for activation in ("relu", "logistic"):
            scores = [MLPClassifier((100,), activation=activation, max_iter=300, random_state=s)
                      .fit(task.x_train, task.y_train).score(task.x_test, task.y_test) for s in seeds]
            out[f"mlp_{activation}"] = spread([float(v) for v in scores])
        out["logistic_regression"] = spread([float(LogisticRegression(max_iter=2000).fit(task.x_train, task.y_train)
                                                   .score(task.x_test, task.y_test))])
    return out


def plan_jobs(plan: Plan, tasks_: tuple[str, ...]) -> list[Job]:
    jobs = []
    for name in tasks_:
        presets = (None,) + (plan.presets if name == "digits" else ())   # MNIST: the seed's float experiment
        jobs += [Job(name, preset, seed) for preset in presets for seed in plan.seeds]
    return jobs


def run_jobs(jobs: list[Job], plan: Plan, data: str | None, runner: Runner | int) -> dict[str, dict]:
    """Fixed-point jobs first (the long ones), on `runner` (local processes with one BLAS thread
    each, or a Dask cluster: memprop.jobs); results keyed by job name, whatever the finishing order."""
    runner = runner if isinstance(runner, Runner) else Runner(runner)
    order = sorted(jobs, key=lambda j: (j.preset is None, j.task, j.seed))
    return run_tasks([Task(job.name, run_job, (job, plan, data)) for job in order], runner,
                     desc="classification").results


# -- the report ---------------------------------------------------------------------------------------

def spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "values": values}


def summarise(results: dict[str, dict], plan: Plan, task_name: str, preset: str | None, task) -> dict:
    runs = [results[Job(task_name, preset, s).name] for s in plan.seeds]
    per_class = np.array([r["test"]["per_class"] for r in runs])
    curves = {key: np.array([r["history"][key] for r in runs]) for key in ("train_error", "test_error")}
    out = {"numerics": "float" if preset is None else "fixed", "device": preset,
           "accuracy": spread([r["test"]["accuracy"] for r in runs]),
           "error_rate": spread([r["test"]["error_rate"] for r in runs]),
           "per_class": {"mean": per_class.mean(axis=0).tolist(), "min": per_class.min(axis=0).tolist(),
                         "max": per_class.max(axis=0).tolist()},
           "confusion": np.sum([r["test"]["confusion"] for r in runs], axis=0).tolist(),
           "samples": runs[0]["test"]["samples"], "mean_steps": statistics.fmean(r["test"]["mean_steps"] for r in runs),
           "figure5": {"epochs": runs[0]["history"]["epochs"],
                       **{key: {"mean": v.mean(axis=0).tolist(), "min": v.min(axis=0).tolist(),
                                "max": v.max(axis=0).tolist(), "runs": v.tolist()} for key, v in curves.items()},
                       "monitor": runs[0]["history"]["monitor"]},
           "seconds": [round(r["seconds"], 1) for r in runs]}
    if preset is None:
        out["ex_situ"] = {p: spread([r["ex_situ"][p] for r in runs]) for p in plan.presets}
    return out


def build_report(results: dict[str, dict], plan: Plan, tasks_: dict, quick: bool) -> dict:
    report = {"version": __version__, "quick": quick, "seeds": list(plan.seeds), "epochs": plan.epochs, "tasks": {}}
    for name, task in tasks_.items():
        presets = (None,) + (plan.presets if name == "digits" else ())
        cfg = results[Job(name, None, plan.seeds[0]).name]["config"]
        report["tasks"][name] = {
            "task": task.summary(), "layers": cfg["network"]["layers"], "train": cfg["train"],
            "results": {p or "float": summarise(results, plan, name, p, task) for p in presets}}
    return report


def pm(s: dict) -> str:
    return f"{s['mean']:.4f} ± {s['std']:.4f} ({s['min']:.4f} – {s['max']:.4f})"


def markdown(report: dict) -> str:
    lines = [f"# memprop reproduce: classification (Frontiers Figure 5)\n",
             f"memprop {report['version']}{' (--quick)' if report['quick'] else ''}; seeds {report['seeds']}, "
             f"{report['epochs']} epochs; mean ± std (min – max) over the seeds. All numbers are also in "
             f"classification.json.\n"]
    for name, t in report["tasks"].items():
        task, tr = t["task"], t["train"]
        lines.append(f"## {name}: {task['source']}\n")
        lines.append(f"{len(task['classes'])} classes {task['classes']}, {task['train']} training and "
                     f"{task['test']} test images, network {'-'.join(map(str, t['layers']))} (hard sigmoid, "
                     f"symmetric, adjacent layers only), ε = 0.5, β = {tr['beta']} ({tr['nudge']}), per-layer "
                     f"rates {list(tr['layer_lr'])} × {tr['lr_decay']} per epoch, {tr['batch_size']} sample(s) "
                     f"per update, |Δw| ≤ {tr['max_step']}.\n")
        rows = []
        layers = tuple(t["layers"])
        for key, r in t["results"].items():
            gain = None if key == "float" else classify.classifier_device(device_section(key), layers).get("w_scale")
            label = "float" if key == "float" else f"fixed point, {key} (in situ{f', gain {gain}' if gain else ''})"
            rows.append([label, pm(r["accuracy"]), f"{r['error_rate']['mean']:.4f}", f"{r['mean_steps']:.1f}"])
        lines.append(markdown_table(["model", "test accuracy", "error rate", "relaxation steps"], rows) + "\n")
        flt = t["results"]["float"]
        if flt.get("ex_situ"):
            rows = [[p + (f" (gain {g})" if (g := classify.classifier_device(device_section(p), layers).get("w_scale"))
                          else ""), pm(s)] for p, s in flt["ex_situ"].items()]
            lines.append("Float weights programmed into the devices (ex situ, write-verify to the nearest codes):\n")
            lines.append(markdown_table(["device preset", "test accuracy"], rows) + "\n")
        if t.get("baselines"):
            lines.append("Backprop on the same split, for scale (scikit-learn, one hidden layer of 100 / none):\n")
            lines.append(markdown_table(["model", "test accuracy"], [[k, pm(v)] for k, v in t["baselines"].items()])
                         + "\n")
        header = ["class"] + [k for k in t["results"]]
        per = [[c] + [f"{r['per_class']['mean'][i]:.3f}" for r in t["results"].values()]
               for i, c in enumerate(task["classes"])]
        lines.append("Per class (test accuracy, mean over seeds):\n")
        lines.append(markdown_table(header, per) + "\n")
        f5 = flt["figure5"]
        lines.append(f"Figure 5 ({f5['monitor']['size']} random training and {f5['monitor']['size']} random test "
                     f"patterns, float, mean over seeds):\n")
        rows = [[e, f"{tr_:.3f}", f"{te:.3f}"] for e, tr_, te in zip(f5["epochs"], f5["train_error"]["mean"],
                                                                      f5["test_error"]["mean"])]
        lines.append(markdown_table(["epoch", "training error", "test error"], rows) + "\n")
    lines.append("![Figure 5](figure5.png)\n")
    return "\n".join(lines)


def figure5(report: dict, path: Path) -> None:
    """Error rate vs epoch on the monitored training (orange) and test (blue) patterns, per task."""
    tasks_ = report["tasks"]
    fig = Figure(figsize=(5.5 * len(tasks_), 4.2), layout="constrained")
    axes = fig.subplots(1, len(tasks_), squeeze=False)[0]
    for ax, (name, t) in zip(axes, tasks_.items()):
        f5 = t["results"]["float"]["figure5"]
        for key, color, label in (("train_error", "tab:orange", "training"), ("test_error", "tab:blue", "test")):
            ax.plot(f5["epochs"], f5[key]["mean"], marker="o", color=color, label=f"{label} (mean)")
            ax.fill_between(f5["epochs"], f5[key]["min"], f5[key]["max"], color=color, alpha=0.2)
        ax.set_title(f"{name}: {len(t['task']['classes'])} classes, {f5['monitor']['size']} + "
                     f"{f5['monitor']['size']} patterns")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("error rate")
        ax.set_ylim(0, max(0.3, max(f5["test_error"]["max"][1:] or [0.3]) * 1.1))
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)


def run_classification(out: Path, quick: bool = False, data: str | None = None, jobs: int = 2,
                       scheduler: str | None = None) -> dict:
    """Train every classifier of the plan; write classification.md, classification.json and figure5.png."""
    start = time.perf_counter()
    plan = QUICK if quick else FULL
    names = ("digits", "mnist") if data else ("digits",)
    tasks_ = {name: task_for(name, plan, data) for name in names}   # fails early on bad MNIST files
    out.mkdir(parents=True, exist_ok=True)
    click.echo(f"classification: {', '.join(names)}; seeds {list(plan.seeds)}, {plan.epochs} epochs; float and "
               f"in-situ fixed point on {', '.join(plan.presets)}")
    results = run_jobs(plan_jobs(plan, names), plan, data, Runner.choose(jobs, scheduler))
    report = build_report(results, plan, tasks_, quick)
    if not quick:
        for name, task in tasks_.items():
            report["tasks"][name]["baselines"] = baselines(task, plan.seeds)
    report["timing"] = {"jobs": jobs, "wall_seconds": round(time.perf_counter() - start, 1)}
    figure5(report, out / "figure5.png")
    (out / "classification.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "classification.md").write_text(markdown(report))
    click.echo(f"wrote {out}/{', '.join(OUTPUTS)}")
    return report
