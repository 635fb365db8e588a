"""`memprop bench`: wall time of float vs fixed-point EqProp training, and recall throughput.

One run, one process: float and fixed-point trainings alternate (float, fixed, float, fixed,
...) so that a change of machine load hits both, and each is summarised by its median. The
figure of merit is the ratio fixed / float (target: at most 2), not an absolute time.

The float part (issue 13) also times, in the same alternation, the float model's original
relaxation loop (`relaxation_kernel("reference")`: the speed-up of the current one, target
300 epochs in <= 5 s from ~12 s) and, when torch is installed (`memprop[peer]`), the PyTorch
peer of the same training (samples/s and accuracy side by side; target numpy >= 1x the peer).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import time
from pathlib import Path

import click
import numpy as np

from memprop import __version__
from memprop.demo import markdown_table
from memprop.model import patterns as pattern_sets
from memprop.model import recall, training
from memprop.model.config import Config
from memprop.model import kernels
from memprop.model.network import active_kernel, relaxation_kernel

TARGET_RATIO = 2.0
TARGET_FLOAT_SECONDS = 5.0    # 300 epochs of float EqProp on N = 100 (2 cores), from ~12 s
FLIP = 0.10
EVAL_SEED = 1
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def configs(n: int, epochs: int, device: str) -> dict[str, Config]:
    flt = Config.for_algorithm("eqprop", network={"n": n}, train={"epochs": epochs, "seed": 0})
    return {"float": flt, "fixed": flt.replace(numerics="fixed", device={"preset": device})}


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def float_trainers(peer: bool) -> dict:
    """The float model's comparisons: its original relaxation loop, and the PyTorch peer if installed."""
    def reference(cfg, pats):
        with relaxation_kernel("reference"):
            return training.train(cfg, pats, progress=False)

    def numpy_loop(cfg, pats):
        with relaxation_kernel("fast-numpy"):
            return training.train(cfg, pats, progress=False)

    trainers = {"float-reference": reference}
    if active_kernel() == "compiled":
        trainers["float-numpy"] = numpy_loop
    if peer:
        from memprop import peer as torch_peer

        reason = torch_peer.unavailable_reason()
        if reason is None:
            trainers["peer"] = lambda cfg, pats: torch_peer.train_peer(cfg, pats)
        else:
            click.echo(f"bench: no PyTorch peer ({reason})", err=True)
    return trainers


def fixed_trainers() -> dict:
    """With numba: the fixed-point model's numpy loops too, so both fixed / float ratios come from one run."""
    if active_kernel() != "compiled":
        return {}

    def numpy_loop(cfg, pats):
        with relaxation_kernel("fast-numpy"):
            return training.train(cfg, pats, progress=False)

    return {"fixed-numpy": numpy_loop}


def float_speed(summary: dict, epochs: int) -> dict:
    """Speed-up of the float model over its original loop, and numpy vs the PyTorch peer (same run)."""
    flt, ref = summary["float"], summary["float-reference"]
    speed = {"kernel": active_kernel(), "kernel_note": kernels.reason(),
             "speedup": ref["train_seconds"] / flt["train_seconds"],
             "speedup_cpu": ref["train_cpu_seconds"] / flt["train_cpu_seconds"],
             "seconds_per_300_epochs": 300.0 * flt["train_seconds"] / epochs,
             "reference_seconds_per_300_epochs": 300.0 * ref["train_seconds"] / epochs,
             "target_seconds_per_300_epochs": TARGET_FLOAT_SECONDS}
    if "float-numpy" in summary:
        speed["compiled_over_numpy_loop"] = summary["float-numpy"]["train_seconds"] / flt["train_seconds"]
    if "peer" in summary:
        peer = summary["peer"]
        speed["numpy_over_peer"] = flt["samples_per_second"] / peer["samples_per_second"]
        speed["peer_samples_per_second"] = peer["samples_per_second"]
        speed["peer_accuracy"] = peer["accuracy"]
    return speed


#: --quick: (epochs, repeats, trials) of the model section and of the hardware section.
QUICK = {"epochs": 2, "repeats": 1, "trials": 20, "hw_epochs": 2, "hw_trials": 8}


def run_bench(out: Path | None = None, epochs: int = 50, repeats: int = 3, trials: int = 1000,
              device: str = "ideal", *, quick: bool = False, hardware: bool = True, hw_epochs: int = 20,
              hw_trials: int = 50, builds: Path | None = None, simulate: bool | None = None,
              boards: tuple[str, ...] | None = None, as_json: bool = False,
              peer: bool = True) -> dict:
    """Time `repeats` trainings of each model and `repeats` evaluations; print and return the table.

    The hardware section (memprop/hwbench.py) follows unless `hardware` is false. `quick`
    shrinks both to a smoke run without simulation; `as_json` prints only the JSON report.
    """
    if quick:
        epochs, repeats, trials = QUICK["epochs"], QUICK["repeats"], QUICK["trials"]
        hw_epochs, hw_trials = QUICK["hw_epochs"], QUICK["hw_trials"]
    if simulate is None:
        simulate = not quick
    if epochs < 1 or repeats < 1 or trials < 1 or hw_epochs < 1 or hw_trials < 1:
        raise ValueError(f"epochs, repeats and trials must be at least 1, got {epochs}, {repeats}, {trials}, "
                         f"{hw_epochs}, {hw_trials}")
    echo = functools.partial(click.echo, err=as_json)     # --json: stdout carries the JSON only
    pats = pattern_sets.load()
    cfgs = configs(pats.size, epochs, device)
    trainers = float_trainers(peer)
    fixed_loops = fixed_trainers()
    runs = {name: {"train_seconds": [], "train_cpu_seconds": [], "eval_seconds": [], "steps": [],
                   "accuracy": []} for name in [*cfgs, *trainers, *fixed_loops]}
    start = time.perf_counter()
    load_before = os.getloadavg()
    echo(f"bench: EqProp on {pats.source} (N={pats.size}, {pats.count} patterns), {epochs} epochs, "
         f"{repeats} repeats, float vs fixed ({device} device); {trials} trials per pattern for recall")

    def measure(name: str, cfg: Config, train) -> None:
        """One timed training and one timed recall evaluation, recorded under `name`."""
        (params, history), wall, cpu = _timed(train)
        result, eval_wall, _ = _timed(lambda: recall.evaluate(params, cfg, pats, FLIP, trials, EVAL_SEED))
        r = runs[name]
        r["train_seconds"].append(wall)
        r["train_cpu_seconds"].append(cpu)
        r["eval_seconds"].append(eval_wall)
        r["steps"].append(float(np.mean(history.steps)))
        r["accuracy"].append(result.accuracy)

    for _ in range(repeats):
        for name, cfg in cfgs.items():      # interleaved: float, fixed, float, fixed, ...
            measure(name, cfg, lambda: training.train(cfg, pats, progress=False))
        for name, trainer in trainers.items():  # the float model's comparisons, in the same alternation
            measure(name, cfgs["float"], lambda: trainer(cfgs["float"], pats))
        for name, trainer in fixed_loops.items():   # the fixed-point model without numba, same alternation
            measure(name, cfgs["fixed"], lambda: trainer(cfgs["fixed"], pats))
    samples = pats.count * trials
    summary = {}
    for name, r in runs.items():
        train_s = statistics.median(r["train_seconds"])
        eval_s = statistics.median(r["eval_seconds"])
        summary[name] = {"train_seconds": train_s, "train_cpu_seconds": statistics.median(r["train_cpu_seconds"]),
                         "epoch_ms": 1000.0 * train_s / epochs, "mean_steps": statistics.median(r["steps"]),
                         "eval_seconds": eval_s, "trials_per_second": samples / eval_s,
                         "accuracy": r["accuracy"][-1],
                         "fingerprint": cfgs.get(name, cfgs["fixed" if name in fixed_loops else "float"]).fingerprint,
                         "samples_per_second": epochs * pats.count * cfgs["float"].train.repeats / train_s}
    ratio = summary["fixed"]["train_seconds"] / summary["float"]["train_seconds"]
    if "fixed-numpy" in summary and "float-numpy" in summary:   # both models' numpy loops, no numba
        loops = summary["fixed-numpy"]
        loops["ratio"] = loops["train_seconds"] / summary["float-numpy"]["train_seconds"]
    report = {
        "version": __version__, "epochs": epochs, "repeats": repeats, "trials_per_pattern": trials,
        "eval_samples": samples, "flip": FLIP, "device": device, "patterns": pats.source,
        "ratio": ratio, "eval_ratio": summary["fixed"]["eval_seconds"] / summary["float"]["eval_seconds"],
        "target_ratio": TARGET_RATIO, "meets_target": ratio <= TARGET_RATIO,
        "float": summary["float"], "fixed": summary["fixed"], "runs": runs,
        **{name: summary[name] for name in [*trainers, *fixed_loops]},
        "float_speed": float_speed(summary, epochs),
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "machine": platform.machine(), "cpus": os.cpu_count(),
                        "load_average_before": load_before, "load_average_after": os.getloadavg(),
                        **{var: os.environ.get(var) for var in BLAS_THREAD_VARS}},
        "wall_seconds": time.perf_counter() - start,
    }
    text = markdown(report)
    echo(text)
    report["classification"] = classification_section(epochs, echo)
    text += "\n\n## Classification\n\n" + classbench_markdown(report["classification"])
    if hardware:
        from memprop import hwbench

        boards = tuple(boards or hwbench.BOARDS)
        echo(f"bench, hardware: {', '.join(boards)}; {hw_epochs} epochs of in-situ training each"
             + (", engines simulated under Verilator" if simulate else ""))
        section = hwbench.run_hardware(pats, hw_epochs, repeats, hw_trials, builds or hwbench.DEFAULT_BUILDS,
                                       simulate=simulate, boards=boards,
                                       progress=lambda msg: click.echo(f"  {msg}", err=True))
        report.update(hardware=section.pop("hardware"), hardware_run=section)
        hw_text = hwbench.markdown({**section, "hardware": report["hardware"]})
        echo(hw_text)
        text += "\n\n## Hardware\n\n" + hw_text
        report["wall_seconds"] = time.perf_counter() - start
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps(report, indent=2, default=_plain) + "\n")
        (out / "bench.md").write_text(text + "\n")
        echo(f"wrote {out}/bench.json and {out}/bench.md")
    if as_json:
        click.echo(json.dumps(report, indent=2, default=_plain))
    return report


def _plain(value):
    """JSON for numpy scalars."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def markdown(report: dict) -> str:
    f, x = report["float"], report["fixed"]
    rows = [
        [f"training, {report['epochs']} epochs: wall s (median of {report['repeats']})",
         f"{f['train_seconds']:.2f}", f"{x['train_seconds']:.2f}", f"{report['ratio']:.2f}"],
        ["training: CPU s (median)", f"{f['train_cpu_seconds']:.2f}", f"{x['train_cpu_seconds']:.2f}",
         f"{x['train_cpu_seconds'] / f['train_cpu_seconds']:.2f}"],
        ["ms per epoch", f"{f['epoch_ms']:.1f}", f"{x['epoch_ms']:.1f}", f"{report['ratio']:.2f}"],
        ["relaxation steps per sample (all phases)", f"{f['mean_steps']:.1f}", f"{x['mean_steps']:.1f}",
         f"{x['mean_steps'] / f['mean_steps']:.2f}"],
        [f"recall throughput, trials/s ({report['eval_samples']} trials, p = {report['flip']:.2f})",
         f"{f['trials_per_second']:.0f}", f"{x['trials_per_second']:.0f}", f"{report['eval_ratio']:.2f} (time)"],
        [f"recall accuracy after {report['epochs']} epochs", f"{f['accuracy']:.4f}", f"{x['accuracy']:.4f}", ""],
    ]
    verdict = "meets" if report["meets_target"] else "MISSES"
    return (markdown_table(["EqProp on " + report["patterns"], "float", f"fixed ({report['device']})",
                            "fixed / float"], rows)
            + f"\n\nTraining time ratio fixed / float = {report['ratio']:.2f} ({verdict} the target "
              f"<= {report['target_ratio']:.0f}); bench wall time {report['wall_seconds']:.0f} s."
            + (f" Without numba (both models' numpy loops, same run): fixed / float = "
               f"{report['fixed-numpy']['ratio']:.2f}." if "ratio" in report.get("fixed-numpy", {}) else "")
            + "\n\n" + float_markdown(report))


def float_markdown(report: dict) -> str:
    """The float model against its original loop and the PyTorch peer (same run, same protocol)."""
    sp = report["float_speed"]
    current = "numpy + compiled kernels (current)" if sp.get("kernel") == "compiled" else "numpy (current)"
    names = [("float", current), ("float-reference", "numpy (original loop)")]
    names += [("float-numpy", "numpy loop without numba")] if "float-numpy" in report else []
    names += [("peer", "PyTorch peer (CPU, 1 thread)")] if "peer" in report else []
    rows = [[label, f"{report[k]['train_seconds']:.2f}", f"{300.0 * report[k]['train_seconds'] / report['epochs']:.1f}",
             f"{report[k]['samples_per_second']:.0f}", f"{report[k]['accuracy']:.4f}"] for k, label in names]
    text = (markdown_table([f"float EqProp, {report['epochs']} epochs", "train s (median)", "s per 300 epochs",
                            "samples/s", f"accuracy p = {report['flip']:.2f}"], rows)
            + f"\n\nFloat speed-up over the original loop: {sp['speedup']:.2f}x wall, {sp['speedup_cpu']:.2f}x CPU "
              f"({sp['seconds_per_300_epochs']:.1f} s per 300 epochs; target <= {sp['target_seconds_per_300_epochs']:.0f} s).")
    if "compiled_over_numpy_loop" in sp:
        text += f" Compiled kernels over the numpy loop: {sp['compiled_over_numpy_loop']:.2f}x."
    elif sp.get("kernel_note"):
        text += f" (No compiled kernels: {sp['kernel_note']}.)"
    if "numpy_over_peer" in sp:
        text += f" numpy / PyTorch peer samples/s: {sp['numpy_over_peer']:.2f}x (target >= 1)."
    return text


def classbench_markdown(section: dict) -> str:
    from memprop import classbench

    return classbench.markdown(section)


def classification_section(epochs: int, echo=click.echo) -> dict:
    """Cost of a digits image on each board's engine beside the numpy model (memprop/classbench.py)."""
    from memprop import classbench
    from memprop.model.classify import DEFAULT_EPOCHS

    epochs = min(epochs, DEFAULT_EPOCHS)
    echo(f"bench, classification: the digits classifier, {epochs} epoch(s) of float training, "
         f"its images costed on {', '.join(classbench.BOARDS)}")
    section = classbench.run_classification_bench(epochs=epochs)
    echo(classbench.markdown(section))
    return section
