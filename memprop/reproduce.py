"""`memprop reproduce`: the pattern-reconstruction experiments of the two seed papers.

Table 1 (four rules, dense network), the band sweep (Frontiers Figure 2), accuracy vs
epoch (Figure 3) and the pattern set (Figure 1), written as results.md, results.json and
PNG figures. Every accuracy comes with both success criteria (exact, the Frontiers one, and
MSE < 0.1, ICECS Table I) and the nearest-pattern bound on the same corrupted inputs
(`bound`); the seeds' own initial states (ICECS v(0) = 0.5, Frontiers random v(0)) are run
beside the project's protocol. Each training and its evaluations is one job that depends
only on its own seeds and runs with one BLAS thread, so the numbers are the same whatever
the number of worker processes (`--jobs`) or BLAS threads.
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

from memprop import __version__, plots
from memprop.demo import markdown_table
from memprop.model import patterns as pattern_sets
from memprop.model import recall, training
from memprop.model.config import Config
from memprop.workers import single_threaded_blas
from memprop.model.patterns import PatternSet, corrupt

FLIPS = (0.10, 0.15, 0.20, 0.25)
RULES = ("hebbian", "storkey", "rbp", "eqprop")
TRAINED = ("rbp", "eqprop")
THRESHOLDS = (0.95, 0.99)
CURVE_FLIP = 0.10
EVAL_SEED = 1        # p = FLIPS[i] uses seed EVAL_SEED + i: every rule and every K sees the same inputs
CURVE_SEED = 100     # the accuracy-vs-epoch checkpoints: the same inputs at every checkpoint
EXAMPLE_SEED = 200   # the corrupted inputs of the example figure
EXAMPLES = 6
SUMMARY_EPOCHS = (1, 2, 5, 10, 20, 50, 100, 200, 300)
#: ICECS 2019 Table I (p = 0.10, 1000 x 16 trials, the authors' own 16 glyphs).
ICECS_TABLE1 = {"hebbian": 0.1792, "storkey": 0.2663, "rbp": 0.9968}
FIGURES = ("patterns.png", "band_sweep.png", "epochs.png", "reconstructions.png")
#: The seeds' initial states, run beside the project's (network.init_state): ICECS v(0) = 0.5, Frontiers random.
SEED_INITS = ("half", "random")
SEED_INIT_SOURCES = {"half": "ICECS 2019: v(0) = 0.5", "random": "Frontiers 2020: random v(0)"}


@dataclass(frozen=True)
class Plan:
    """How big each experiment is."""

    epochs: int
    trials: int                          # corrupted copies per pattern (Table 1, band sweep)
    curve_trials: int                    # per pattern, at each accuracy-vs-epoch checkpoint
    band_fractions: tuple[float, ...]    # K / N of the band sweep


FULL = Plan(epochs=300, trials=1000, curve_trials=100, band_fractions=(0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9))
QUICK = Plan(epochs=30, trials=50, curve_trials=20, band_fractions=(0.0, 0.5, 0.9))


@dataclass(frozen=True)
class Job:
    """One network: train it, evaluate it at every p; what a worker process runs."""

    algo: str
    band: int
    epochs: int | None          # None: a one-pass Hopfield rule
    trials: int
    curve: tuple[int, ...]      # checkpoint epochs of the accuracy-vs-epoch curve (empty: none)
    curve_trials: int
    init_state: str = "input"   # network.init_state: the project's protocol, or a seed's v(0)

    @property
    def name(self) -> str:
        return f"{self.algo}/K={self.band}" + ("" if self.init_state == "input" else f"/init={self.init_state}")


# -- the jobs ---------------------------------------------------------------------------------

def band_values(n: int, fractions: tuple[float, ...]) -> list[int]:
    """K values at the given fractions of N, so any pattern size works; 0 is dense, each K < N."""
    return sorted({min(round(f * n), n - 1) for f in fractions})


def checkpoint_epochs(epochs: int) -> tuple[int, ...]:
    """Every epoch up to 10, every 5 up to 50, then every 10: dense where the curves rise."""
    marks = set(range(1, 11)) | set(range(15, 51, 5)) | set(range(60, epochs + 1, 10)) | {epochs}
    return tuple(e for e in sorted(marks) if e <= epochs)


def plan_jobs(plan: Plan, ks: list[int]) -> list[Job]:
    """Hopfield rules on the dense network; RBP and EqProp at every K (the dense runs log a curve)."""
    curve = checkpoint_epochs(plan.epochs)
    jobs = [Job(algo, 0, None, plan.trials, (), 0) for algo in ("hebbian", "storkey")]
    for algo in TRAINED:
        jobs += [Job(algo, k, plan.epochs, plan.trials, curve if k == 0 else (), plan.curve_trials) for k in ks]
        jobs += [Job(algo, 0, plan.epochs, plan.trials, (), 0, init) for init in SEED_INITS]
    return jobs


def job_config(job: Job, n: int) -> Config:
    network = {"n": n, "topology": "band", "band": job.band} if job.band else {"n": n}
    if job.init_state != "input":
        network["init_state"] = job.init_state
    train = {} if job.epochs is None else {"epochs": job.epochs}
    return Config.for_algorithm(job.algo, network=network, train=train)


def run_job(job: Job, pats: PatternSet, examples: np.ndarray) -> dict:
    """Train one network, evaluate it at every p, reconstruct the example inputs; plain numbers out."""
    start = time.perf_counter()
    cfg = job_config(job, pats.size)
    marks = set(job.curve)

    def checkpoint(epoch: int, params) -> dict | None:
        if epoch not in marks:
            return None
        result = recall.evaluate(params, cfg, pats, CURVE_FLIP, job.curve_trials, CURVE_SEED)
        return {"accuracy": result.accuracy, "bound": result.bound}

    params, history = training.train(cfg, pats, progress=False, on_epoch=checkpoint if marks else None)
    results = [recall.evaluate(params, cfg, pats, p, job.trials, EVAL_SEED + i) for i, p in enumerate(FLIPS)]
    example_rng = np.random.default_rng(EXAMPLE_SEED + recall.INIT_SEED_OFFSET)
    return {
        "config": json.loads(cfg.to_json()),
        "fingerprint": cfg.fingerprint,
        "mask_entries": int(params.mask.sum()),
        "final_loss": history.loss[-1] if history.loss else None,
        "accuracy": [r.accuracy for r in results],
        "accuracy_mse": [r.accuracy_mse for r in results],
        "bound": [r.bound for r in results],
        "per_class": [r.per_class for r in results],
        "per_class_bound": [r.per_class_bound for r in results],
        "curve": [(epoch, metrics) for epoch, metrics in history.checkpoints],
        "examples": recall.reconstruct(params, cfg, examples, example_rng).tolist(),
        "seconds": time.perf_counter() - start,
    }


def run_jobs(jobs: list[Job], pats: PatternSet, examples: np.ndarray, workers: int) -> dict[str, dict]:
    """All jobs in `workers` processes, longest first so no worker idles at the end; a bar over jobs."""
    order = sorted(jobs, key=lambda j: (j.epochs or 0, j.algo == "rbp", j.band), reverse=True)
    context = multiprocessing.get_context("spawn")  # no fork of a threaded (BLAS) parent
    results = {}
    with single_threaded_blas(), ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        futures = {pool.submit(run_job, job, pats, examples): job for job in order}
        bar = tqdm(as_completed(futures), total=len(futures), desc="reproduce", unit="job")
        for future in bar:
            job = futures[future]
            results[job.name] = future.result()
            bar.set_postfix_str(job.name)
    return results


def example_inputs(pats: PatternSet) -> tuple[list[int], np.ndarray]:
    """Up to EXAMPLES patterns spread over the set, corrupted at p = 0.10 (Frontiers Figure 4)."""
    count = min(EXAMPLES, pats.count)
    indices = sorted({round(i) for i in np.linspace(0, pats.count - 1, count)})
    noisy = corrupt(pats.values[indices], FLIPS[0], np.random.default_rng(EXAMPLE_SEED))
    return indices, noisy


# -- the report -------------------------------------------------------------------------------

def dense(results: dict[str, dict], algo: str) -> dict:
    return results[f"{algo}/K=0"]


def pattern_summary(pats: PatternSet) -> dict:
    return {"source": pats.source, "count": pats.count, "n": pats.size, "shape": list(pats.shape),
            "mean_abs_correlation": pats.mean_abs_correlation(), "min_hamming": pats.min_hamming(),
            "correlation": pats.correlation().round(6).tolist()}


def table1(results: dict[str, dict], plan: Plan) -> dict:
    """Accuracy of the four rules at every p; per pattern at p = 0.10 (the papers' Table 1)."""
    return {"flips": list(FLIPS), "trials": plan.trials,
            "accuracy": {algo: dense(results, algo)["accuracy"] for algo in RULES},
            "accuracy_mse": {algo: dense(results, algo)["accuracy_mse"] for algo in RULES},
            "bound": dense(results, "eqprop")["bound"],
            "per_class": {algo: dense(results, algo)["per_class"][0] for algo in RULES},
            "per_class_bound": dense(results, "eqprop")["per_class_bound"][0]}


def seed_protocols(results: dict[str, dict]) -> dict:
    """EqProp and RBP from the seeds' initial states beside the project's, both criteria and the bound."""
    rows = {}
    for algo in TRAINED:
        for init in ("input", *SEED_INITS):
            r = results[f"{algo}/K=0" + ("" if init == "input" else f"/init={init}")]
            rows[f"{algo}/{init}"] = {"algo": algo, "init_state": init, "accuracy": r["accuracy"],
                                      "accuracy_mse": r["accuracy_mse"]}
    return {"flips": list(FLIPS), "bound": dense(results, "eqprop")["bound"], "runs": rows}


def band_sweep(results: dict[str, dict], ks: list[int], n: int) -> dict:
    """accuracy[algo][i][j]: p = flips[i], K = k[j]; synapses counts the diagonal, as the papers do."""
    runs = {algo: [results[f"{algo}/K={k}"] for k in ks] for algo in TRAINED}
    return {"flips": list(FLIPS), "k": ks, "synapses": [n * n - k * (k + 1) for k in ks],
            "bound": runs["eqprop"][0]["bound"],
            "mask_entries": {algo: [r["mask_entries"] for r in rs] for algo, rs in runs.items()},
            "accuracy": {algo: [[r["accuracy"][i] for r in rs] for i in range(len(FLIPS))]
                         for algo, rs in runs.items()}}


def first_epoch(epochs: list[int], accuracy: list[float], threshold: float) -> int | None:
    """First checkpoint at or above the threshold (None: never reached)."""
    return next((e for e, a in zip(epochs, accuracy) if a >= threshold), None)


def epoch_curves(results: dict[str, dict], plan: Plan) -> dict:
    epochs = [e for e, _ in dense(results, "eqprop")["curve"]]
    accuracy = {algo: [m["accuracy"] for _, m in dense(results, algo)["curve"]] for algo in TRAINED}
    bound = [m["bound"] for _, m in dense(results, "eqprop")["curve"]][:1]
    return {"flip": CURVE_FLIP, "trials": plan.curve_trials, "seed": CURVE_SEED, "epochs": epochs,
            "accuracy": accuracy, "bound": bound[0] if bound else None,
            "first_epoch": {algo: {str(t): first_epoch(epochs, acc, t) for t in THRESHOLDS}
                            for algo, acc in accuracy.items()}}


def example_section(results: dict[str, dict], indices: list[int], inputs: np.ndarray) -> dict:
    return {"flip": FLIPS[0], "seed": EXAMPLE_SEED, "indices": indices, "inputs": inputs.tolist(),
            "reconstructions": {algo: dense(results, algo)["examples"] for algo in RULES}}


def run_records(results: dict[str, dict]) -> dict:
    """What each network was: its full config and fingerprint, its weight count, its last loss."""
    keep = ("fingerprint", "mask_entries", "final_loss", "config")
    return {name: {k: r[k] for k in keep} for name, r in sorted(results.items())}


def protocol(results: dict[str, dict], plan: Plan) -> dict:
    """The settings that the Markdown protocol paragraph quotes, read from the configs that ran."""
    cfgs = {algo: dense(results, algo)["config"] for algo in TRAINED}
    tr, net = cfgs["eqprop"]["train"], cfgs["eqprop"]["network"]
    return {"epochs": plan.epochs, "trials": plan.trials, "curve_trials": plan.curve_trials,
            "flips": list(FLIPS), "eval_seed": EVAL_SEED, "repeats": tr["repeats"],
            "batch_size": tr["batch_size"], "train_flip": tr["train_flip"], "train_seed": tr["seed"],
            "input_gain": net["input_gain"], "max_steps": net["max_steps"],
            "lr": {algo: c["train"]["lr"] for algo, c in cfgs.items()},
            "max_step": {algo: c["train"]["max_step"] for algo, c in cfgs.items()}}


def build_report(results: dict[str, dict], plan: Plan, pats: PatternSet, ks: list[int],
                 indices: list[int], inputs: np.ndarray, quick: bool) -> dict:
    return {"version": __version__, "quick": quick, "protocol": protocol(results, plan),
            "patterns": pattern_summary(pats), "table1": table1(results, plan),
            "band_sweep": band_sweep(results, ks, pats.size), "epochs": epoch_curves(results, plan),
            "seed_protocols": seed_protocols(results),
            "examples": example_section(results, indices, inputs), "runs": run_records(results)}


# -- output files -----------------------------------------------------------------------------

def write_figures(out: Path, report: dict, pats: PatternSet) -> None:
    band, curves, ex = report["band_sweep"], report["epochs"], report["examples"]
    plots.patterns_figure(pats.values, pats.shape, pats.correlation(), out / "patterns.png")
    plots.band_sweep_figure(band["k"], band["synapses"], band["flips"], band["accuracy"], out / "band_sweep.png")
    plots.epochs_figure(curves["epochs"], curves["accuracy"], curves["flip"], THRESHOLDS, out / "epochs.png")
    rows = [(f"input\np = {ex['flip']:.2f}", np.array(ex["inputs"]))]
    rows += [(plots.LABELS[algo], np.array(v)) for algo, v in ex["reconstructions"].items()]
    rows.append(("target", pats.values[ex["indices"]]))
    plots.reconstructions_figure(rows, pats.shape, out / "reconstructions.png")


def flip_header(first: list[str]) -> list[str]:
    return first + [f"p = {p:.2f}" for p in FLIPS]


def protocol_md(report: dict) -> str:
    pr, pats = report["protocol"], report["patterns"]
    return (
        "## Protocol\n\n"
        f"{pats['count']} patterns of N = {pats['n']} units ({pats['source']}). EqProp and RBP train for "
        f"{pr['epochs']} epochs from seeded initial weights (seed {pr['train_seed']}); each epoch shows every "
        f"pattern {pr['repeats']} times, each copy freshly corrupted with p_train = {pr['train_flip']} and the "
        f"clean pattern as target, one weight update per {pr['batch_size']} samples (lr EqProp "
        f"{pr['lr']['eqprop']}, RBP {pr['lr']['rbp']}; |ΔW| per update at most {pr['max_step']['eqprop']} and "
        f"{pr['max_step']['rbp']}). Hebbian and Storkey build W in one pass and recall by synchronous sign "
        f"updates. A recall trial flips every pixel of a stored pattern with probability p; the corrupted "
        f"pattern is the initial state and the input current (gain {pr['input_gain']}), the network relaxes "
        f"(at most {pr['max_steps']} steps) and the trial succeeds when the thresholded state equals the "
        f"pattern exactly. {pr['trials']} trials per pattern and p; the i-th p uses seed {pr['eval_seed']} + i, "
        f"so every rule and every K sees the same corrupted inputs. The band network cuts the K outer "
        f"diagonals on each side of W (N² − K(K+1) entries, diagonal included as in the papers; there are no "
        f"self-connections, so N fewer weights). Accuracy vs epoch: checkpoints of the dense runs, "
        f"{pr['curve_trials']} trials per pattern at p = {CURVE_FLIP:.2f}.\n"
    )


def table1_md(report: dict) -> str:
    t = report["table1"]
    bound_row = ["nearest-pattern bound", *t["bound"]]
    rows = [[plots.LABELS[algo], *acc] for algo, acc in t["accuracy"].items()] + [bound_row]
    mse_rows = [[plots.LABELS[algo], *acc] for algo, acc in t["accuracy_mse"].items()] + [bound_row]
    per_class = [[k, *vals, b] for k, (vals, b) in enumerate(zip(zip(*t["per_class"].values()), t["per_class_bound"]))]
    text = (f"## Table 1: recall accuracy, dense network ({t['trials']} trials per pattern)\n\n"
            "Exact reconstruction (squared error 0 after thresholding; the Frontiers criterion):\n\n"
            + markdown_table(flip_header(["rule"]), rows) + "\n\n"
            f"MSE of the final state against the pattern below {recall.MSE_THRESHOLD} (the ICECS Table I "
            "criterion; states on the patterns' ±1 scale):\n\n"
            + markdown_table(flip_header(["rule"]), mse_rows) + "\n\n"
            "The bound is the nearest-pattern decoder on the same corrupted inputs (ties shared): no decoder "
            "does better.\n")
    if report["patterns"]["source"] == pattern_sets.BUILTIN:
        text += ("\nICECS 2019 Table I (p = 0.10, the authors' glyphs, MSE < 0.1): Hebbian "
                 f"{ICECS_TABLE1['hebbian']}, Storkey {ICECS_TABLE1['storkey']}, RBP {ICECS_TABLE1['rbp']}.\n")
    text += (f"\nPer pattern at p = {t['flips'][0]:.2f} (exact):\n\n"
             + markdown_table(["pattern", *(plots.LABELS[a] for a in t["per_class"]), "bound"], per_class) + "\n")
    return text + "\n![Example reconstructions](reconstructions.png)\n"


def seed_protocols_md(report: dict) -> str:
    sp = report["seed_protocols"]
    names = {"input": "memprop: v(0) = corrupted input", **SEED_INIT_SOURCES}
    rows = []
    for run in sp["runs"].values():
        label = f"{plots.LABELS[run['algo']]}, {names[run['init_state']]}"
        rows.append([label, "exact", *run["accuracy"]])
        rows.append([label, "MSE < 0.1", *run["accuracy_mse"]])
    rows.append(["nearest-pattern bound", "", *sp["bound"]])
    return ("## The seeds' initial states (training and recall from the same v(0))\n\n"
            + markdown_table(flip_header(["rule, initial state", "criterion"]), rows) + "\n")


def band_md(report: dict) -> str:
    b = report["band_sweep"]
    text = ("## Band sweep: accuracy vs K outer diagonals cut (Frontiers Figure 2)\n\n"
            "Nearest-pattern bound: " + ", ".join(f"{b:.4f} at p = {p:.2f}" for p, b in zip(b["flips"], b["bound"]))
            + ".\n")
    for algo, by_flip in b["accuracy"].items():
        rows = [[k, s, m, *accs] for k, s, m, *accs in zip(b["k"], b["synapses"], b["mask_entries"][algo], *by_flip)]
        text += (f"\n### {plots.LABELS[algo]}\n\n"
                 + markdown_table(flip_header(["K", "synapses N² − K(K+1)", "weights (no diagonal)"]), rows) + "\n")
    return text + "\n![Band sweep](band_sweep.png)\n"


def epochs_md(report: dict) -> str:
    c = report["epochs"]
    last = c["epochs"][-1]
    shown = [i for i, e in enumerate(c["epochs"]) if e in SUMMARY_EPOCHS or e == last]
    firsts = [[plots.LABELS[algo], *(f.get(str(t)) or "not reached" for t in THRESHOLDS), c["accuracy"][algo][-1]]
              for algo, f in c["first_epoch"].items()]
    curve = [[c["epochs"][i], *(c["accuracy"][algo][i] for algo in c["accuracy"])] for i in shown]
    return (f"## Accuracy vs epoch (Frontiers Figure 3; p = {c['flip']:.2f}, {c['trials']} trials per pattern)\n\n"
            + markdown_table(["rule", *(f"first epoch ≥ {t}" for t in THRESHOLDS), f"accuracy at epoch {last}"],
                             firsts)
            + "\n\nFirst epochs are at checkpoint resolution (every epoch to 10, every 5 to 50, then every 10).\n\n"
            + markdown_table(["epoch", *(plots.LABELS[a] for a in c["accuracy"])], curve)
            + "\n\n![Accuracy vs epoch](epochs.png)\n")


def patterns_md(report: dict) -> str:
    p = report["patterns"]
    rows = [[p["source"], p["count"], p["n"], f"{p['shape'][0]} x {p['shape'][1]}", p["mean_abs_correlation"],
             p["min_hamming"]]]
    return ("## Pattern set (Frontiers Figure 1)\n\n"
            + markdown_table(["set", "patterns", "N", "glyph", "mean off-diagonal |r|", "min Hamming distance"],
                             rows)
            + "\n\n![Patterns and their correlation matrix](patterns.png)\n")


def markdown(report: dict) -> str:
    t = report["timing"]
    head = (f"# memprop reproduce: pattern reconstruction\n\nmemprop {report['version']}"
            f"{' (--quick)' if report['quick'] else ''}, {t['jobs']} worker processes, "
            f"wall time {t['wall_seconds']:.0f} s. All numbers are also in results.json.\n")
    sections = (head, protocol_md(report), table1_md(report), seed_protocols_md(report), band_md(report),
                epochs_md(report), patterns_md(report))
    return "\n".join(sections)


def run_reproduce(out: Path, quick: bool = False, pattern_file: str | None = None, jobs: int = 2) -> dict:
    """Run every experiment and write results.md, results.json and the figures into `out`."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    start = time.perf_counter()
    plan = QUICK if quick else FULL
    pats = pattern_sets.load(pattern_file)
    ks = band_values(pats.size, plan.band_fractions)
    indices, inputs = example_inputs(pats)
    out.mkdir(parents=True, exist_ok=True)
    click.echo(f"reproduce: {pats.count} patterns of N={pats.size} ({pats.source}), K = {ks}, "
               f"{plan.epochs} epochs, {plan.trials} trials per pattern, {jobs} worker processes")
    results = run_jobs(plan_jobs(plan, ks), pats, inputs, jobs)
    report = build_report(results, plan, pats, ks, indices, inputs, quick)
    write_figures(out, report, pats)
    wall = time.perf_counter() - start
    report["timing"] = {"jobs": jobs, "wall_seconds": round(wall, 1),
                        "job_seconds": {name: round(r["seconds"], 1) for name, r in sorted(results.items())}}
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "results.md").write_text(markdown(report))
    click.echo(f"wrote {out}/results.md, results.json, {', '.join(FIGURES)}")
    click.echo(f"wall time {wall:.0f} s")
    return report
