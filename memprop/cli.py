"""The `memprop` command line: thin wiring over model/, rtl/, sim/ and boards/.

Every user mistake (bad pattern file, weight file for another configuration, out-of-range
parameter) ends as a one-line `Error: ...` and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path

import click

from memprop import __version__
from memprop.model import patterns as pattern_sets
from memprop.model import recall, training, weights
from memprop.model.device import in_situ_fixed
from memprop.model.config import Config, ConfigError
from memprop.model.patterns import PatternError
from memprop.model.tasks import TASKS
from memprop.model.weights import WeightFileError

USER_ERRORS = (PatternError, ConfigError, WeightFileError, ValueError, OSError)


def user_errors(fn):
    """Turn the package's validation errors into a clean CLI error."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _load_config(path: str | None) -> dict:
    if path is None:
        return {}
    text = Path(path).read_text()
    Config.from_json(text)  # validate the file as a whole first
    return json.loads(text)


def _train_config(algo: str, n: int, config_file: str | None, network: dict, train: dict) -> Config:
    base = _load_config(config_file)
    net = {**base.get("network", {}), "n": n, **network}
    tr = {**base.get("train", {}), **train}
    extra = set(base) - {"network", "train"}
    cfg = Config.for_algorithm(algo, network=net, train=tr)
    if extra:
        cfg = cfg.replace(**{k: base[k] for k in extra})
    return cfg


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="memprop")
def main() -> None:
    """Memristive recurrent networks: EqProp and RBP, from model to FPGA."""


def task_options(fn):
    """Options that choose a classification task (train and eval)."""
    for option in reversed([
        click.option("--task", type=click.Choice(TASKS), default=None,
                     help="train a classifier instead of an associative memory: digits (scikit-learn's 8x8, "
                          "offline) or mnist (IDX files in --data)"),
        click.option("--data", "data_dir", type=click.Path(), default=None,
                     help="--task mnist: the folder holding the four MNIST IDX files (plain or .gz)"),
    ]):
        fn = option(fn)
    return fn


@main.command()
@click.option("--algo", type=click.Choice(["eqprop", "rbp", "hebbian", "storkey"]), default=None,
              help="learning rule (required without --task; --task trains with EqProp)")
@click.option("--patterns", "pattern_file", default=None, help="pattern file (.npy or text glyphs); default: built-in hex16")
@click.option("--band", type=click.IntRange(min=0), default=0, show_default=True, help="outer diagonals cut (0: dense)")
@click.option("--epochs", type=click.IntRange(min=0), default=None, help="training epochs (default: 300)")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="learning rate")
@click.option("--numerics", type=click.Choice(["float", "fixed"]), default="float", show_default=True,
              help="float reference, or the hardware's fixed-point in-situ learning")
@click.option("--device", "preset", default=None,
              help="memristive device preset for --numerics fixed (ideal, linear-256, linear-64, soft-bounds, rram-nonlinear)")
@click.option("--rounding", type=click.Choice(["stochastic", "nearest", "truncate", "carry"]), default=None,
              help="pulse-count rounding of --numerics fixed (default: the device preset's, else the config's: "
                   "stochastic); carry keeps each synapse's remainder for its next update")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSON config; command-line options override it")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="weight file to write (.npz)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--recipe", "use_recipe", is_flag=True,
              help="EqProp with the recall recipe (memprop recipe): close to the nearest-pattern bound")
@click.option("--init-state", type=click.Choice(["input", "half", "random"]), default=None,
              help="initial state: the input (memprop), 0.5 (ICECS 2019) or random (Frontiers 2020)")
@task_options
@click.option("--classes", default=None, help="--task: comma-separated classes to keep, e.g. 0,1,2,3,4 (default: all)")
@click.option("--per-class", type=click.IntRange(min=1), default=None,
              help="--task: training samples of each class (the seed's MNIST subset: 600)")
@click.option("--binarize", is_flag=True, help="--task: inputs thresholded to {0, 1}, as a hardware input holds them")
@click.option("--hidden", default=None, help="--task: hidden layer sizes, e.g. 100 or 100,100 (default: digits 100, mnist 500)")
@click.option("--layer-lr", default=None, help="--task: learning rate per weight layer (default: the seed's 0.1,0.05)")
@click.option("--lr-decay", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="--task: learning rates are multiplied by this after every epoch (default: the seed's 0.5)")
@click.option("--nudge", type=click.Choice(["positive", "centered", "random_sign"]), default=None,
              help="--task: nudging of the second phase (default: the seed's positive beta = 1)")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="--task: samples per weight update (default 1)")
@user_errors
def train(algo, pattern_file, band, epochs, seed, lr, numerics, preset, rounding, config_file, out, quiet, use_recipe,
          init_state, task, data_dir, classes, per_class, binarize, hidden, layer_lr, lr_decay, nudge, batch):
    """Train a network on a pattern set (or a classifier on a --task) and save its weights."""
    weights.check_path(out)
    task_only = {"--data": data_dir, "--classes": classes, "--per-class": per_class, "--binarize": binarize or None,
                 "--hidden": hidden, "--layer-lr": layer_lr, "--lr-decay": lr_decay, "--nudge": nudge, "--batch": batch}
    if task is not None:
        if algo not in (None, "eqprop"):
            raise click.UsageError(f"--task trains with EqProp (the seed's rule), not --algo {algo}")
        if pattern_file is not None or band or lr is not None or use_recipe or init_state is not None:
            raise click.UsageError("--patterns, --band, --lr, --recipe and --init-state are for pattern networks; "
                                   "a --task classifier takes --hidden and --layer-lr")
        _train_task(task, data_dir, classes, per_class, binarize, hidden, layer_lr, lr_decay, nudge, batch, epochs,
                    seed, numerics, preset, config_file, out, quiet, rounding)
        return
    given = [name for name, value in task_only.items() if value is not None]
    if given:
        raise click.UsageError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to --task "
                               "(a classifier)")
    if algo is None:
        raise click.UsageError("Missing option '--algo' (or give --task to train a classifier)")
    pats = pattern_sets.load(pattern_file)
    network = {"topology": "band", "band": band} if band else {}
    if init_state is not None:
        network["init_state"] = init_state
    if use_recipe:
        from memprop.recipe import RECIPE

        if algo != "eqprop" or band or config_file:
            raise click.UsageError("--recipe is an EqProp recipe for the dense network (no --band, no --config)")
        n_hidden = RECIPE["hidden"]
        network.update(RECIPE["network"], n=pats.size + n_hidden, hidden=n_hidden)
    tr = {"seed": seed}
    if epochs is not None:
        tr["epochs"] = epochs
    if lr is not None:
        tr["lr"] = lr
    if preset is not None and numerics != "fixed":
        raise click.UsageError("--device applies to --numerics fixed")
    if use_recipe:
        from memprop.recipe import recipe_train

        tr = {**recipe_train(tr.get("epochs")), **tr}
    cfg = _train_config(algo, network.pop("n", pats.size), config_file, network, tr)
    if rounding is not None and numerics != "fixed":
        raise click.UsageError("--rounding applies to --numerics fixed")
    if numerics == "fixed" or preset is not None:
        cfg = cfg.replace(numerics="fixed", device={"preset": preset or cfg.device.preset})
        fixed = in_situ_fixed(preset, {"rounding": rounding} if rounding else {})
        if fixed:
            cfg = cfg.replace(fixed=fixed)
    params, history = training.train(cfg, pats, progress=not quiet)
    path = weights.save(out, params, cfg, patterns=pats.source,
                        final_loss=history.loss[-1] if history.loss else None)
    how = "one pass" if algo in ("hebbian", "storkey") else f"{cfg.train.epochs} epochs"
    where = f"{cfg.numerics}" + (f", device {cfg.device.preset}" if cfg.numerics == "fixed" else "")
    click.echo(f"wrote {path} ({algo}, {where}, N={cfg.network.n}, {int(params.mask.sum())} synapses, "
               f"{how}, fingerprint {cfg.fingerprint})")


@main.command(name="eval")
@click.option("--weights", "weight_file", type=click.Path(dir_okay=False), required=True)
@click.option("--patterns", "pattern_file", default=None, help="pattern file; default: built-in hex16")
@click.option("--flip", type=click.FloatRange(0.0, 0.5), default=None,
              help="pixel-flip probability p (pattern networks; required for them)")
@click.option("--trials", type=click.IntRange(min=1), default=1000, show_default=True, help="corrupted copies per pattern")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@task_options
@user_errors
def eval_(weight_file, pattern_file, flip, trials, seed, as_json, task, data_dir):
    """Recall accuracy of trained weights on corrupted patterns (or a classifier's test-set accuracy)."""
    params, cfg, meta = weights.load(weight_file)
    if task is not None or meta.get("task") is not None:
        if flip is not None or pattern_file is not None:
            raise click.UsageError("--flip and --patterns are for pattern networks, not a --task classifier")
        _eval_task(weight_file, params, cfg, meta, task, data_dir, as_json)
        return
    if data_dir is not None:
        raise click.UsageError("--data applies to --task mnist")
    if flip is None:
        raise click.UsageError("Missing option '--flip'")
    pats = pattern_sets.load(pattern_file)
    pattern_sets.check_size(pats, cfg.network.pattern_units, f"the network in {weight_file}")
    result = recall.evaluate(params, cfg, pats, flip, trials, seed)
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "weights": str(weight_file),
                               "fingerprint": cfg.fingerprint, "patterns": pats.source}))
        return
    click.echo(f"{cfg.train.algo}: accuracy {result.accuracy:.4f} at p={flip} "
               f"({trials} trials x {pats.count} patterns); MSE < 0.1: {result.accuracy_mse:.4f}; "
               f"nearest-pattern bound {result.bound:.4f}")
    for k, (acc, bound) in enumerate(zip(result.per_class, result.per_class_bound)):
        click.echo(f"  pattern {k:2d}: {acc:.3f} (bound {bound:.3f})")


# -- classification tasks (--task): the Frontiers MNIST experiment and the offline digits ----------------

def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise click.UsageError(f"{option} {text!r}: expected comma-separated numbers") from None


def _ints(text: str | None, option: str) -> tuple[int, ...] | None:
    values = _floats(text, option)
    if values is not None and any(v != int(v) or v < 1 for v in values):
        raise click.UsageError(f"{option} {text!r}: expected comma-separated positive integers")
    return None if values is None else tuple(int(v) for v in values)


def _train_task(task_name, data_dir, classes, per_class, binarize, hidden, layer_lr, lr_decay, nudge, batch, epochs,
                seed, numerics, preset, config_file, out, quiet, rounding=None) -> None:
    """memprop train --task: the seed's classifier in float or fixed point; the file records the task."""
    from memprop.model import classify, tasks

    base = _load_config(config_file)
    numerics = "fixed" if base.get("numerics") == "fixed" else numerics     # a hardware config trains in situ
    if preset is not None and numerics != "fixed":
        raise click.UsageError("--device applies to --numerics fixed")
    if rounding is not None and numerics != "fixed":
        raise click.UsageError("--rounding applies to --numerics fixed")
    fixed_section = {**base.get("fixed", {}), **({"rounding": rounding} if rounding else {})}
    task = tasks.load_task(task_name, data_dir, tasks.parse_classes(classes), per_class, binarize)
    options = {"epochs": epochs, "batch_size": batch, "nudge": nudge, "layer_lr": _floats(layer_lr, "--layer-lr"),
               "lr_decay": lr_decay}
    device = {**base.get("device", {}), **({"preset": preset} if preset else {})}
    layers = base.get("network", {}).get("layers") or ()
    hidden = _ints(hidden, "--hidden") or (tuple(layers[1:-1]) if len(layers) > 2 else None)
    cfg = classify.classifier_config(task, hidden, seed=seed, numerics=numerics, device=device,
                                     hw=base.get("hw"), fixed=fixed_section or None,
                                     **{k: v for k, v in options.items() if v is not None})
    params, history = classify.train_classifier(cfg, task, progress=not quiet)
    result = classify.evaluate(params, cfg, task.x_test, task.y_test, task.n_classes)
    record = {**task.summary(), "per_class_limit": per_class,
              "data": str(Path(data_dir).resolve()) if data_dir else None}
    path = weights.save(out, params, cfg, task=record, history=history.to_dict(), test_accuracy=result.accuracy)
    where = f"{cfg.numerics}" + (f", device {cfg.device.preset}" if cfg.numerics == "fixed" else "")
    click.echo(f"wrote {path} ({task.name} classifier {'-'.join(map(str, cfg.network.layers))}, {where}, "
               f"{cfg.train.epochs} epochs, fingerprint {cfg.fingerprint}): test accuracy {result.accuracy:.4f} "
               f"on {result.samples} images")


def _eval_task(weight_file, params, cfg, meta, task_name, data_dir, as_json) -> None:
    """memprop eval on a classifier: the recorded task's full test set; a file for another task is refused."""
    from memprop.model import classify, tasks

    recorded = meta.get("task")
    if recorded is None:
        raise WeightFileError(f"{weight_file}: holds an associative memory trained on patterns, not a classifier "
                              f"for --task {task_name}")
    if task_name is not None and task_name != recorded["task"]:
        raise WeightFileError(f"{weight_file}: a classifier for task {recorded['task']!r} "
                              f"({len(recorded['classes'])} classes, {recorded['features']} inputs), not {task_name!r}")
    data = data_dir or recorded.get("data")
    task = tasks.load_task(recorded["task"], data if recorded["task"] == "mnist" else None,
                           tuple(recorded["classes"]), recorded.get("per_class_limit"), recorded["binarized"])
    if task.features != cfg.network.layers[0] or task.n_classes != cfg.network.layers[-1]:
        raise WeightFileError(f"{weight_file}: network {cfg.network.layers} does not fit the task's "
                              f"{task.features} inputs and {task.n_classes} classes")
    result = classify.evaluate(params, cfg, task.x_test, task.y_test, task.n_classes)
    report = {"task": task.name, "numerics": cfg.numerics, "device": cfg.device.preset if cfg.numerics == "fixed"
              else None, "split": "test", **result.to_dict(), "classes": list(task.classes),
              "layers": list(cfg.network.layers), "binarized": task.binarized, "weights": str(weight_file),
              "fingerprint": cfg.fingerprint}
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"{task.name} classifier ({cfg.numerics}): test accuracy {result.accuracy:.4f}, error rate "
               f"{result.error_rate:.4f} on {result.samples} images")
    for label, acc in zip(task.classes, result.per_class):
        click.echo(f"  class {label}: {acc:.3f}")


@main.command()
@click.option("--out", type=click.Path(file_okay=False), default="results/demo", show_default=True)
@click.option("--quick", is_flag=True, help="fewer epochs and trials, the small iCE40 board (a smoke run)")
@click.option("--board", type=click.Choice(["icebreaker", "ulx3s", "ulx3s-25f"]), default=None,
              help="target board (default: ulx3s; icebreaker with --quick)")
@click.option("--simulator", type=click.Choice(["verilator", "icarus"]), default="verilator", show_default=True)
@click.option("--no-bitstream", is_flag=True, help="skip the bitstream build")
@click.option("--no-board", is_flag=True, help="skip the virtual board (load and recall over a pseudo-terminal)")
@user_errors
def demo(out, quick, board, simulator, no_bitstream, no_board):
    """Train -> fixed point -> bit-exact simulation -> virtual board -> bitstream, with tables on the way."""
    from memprop.demo import run_demo

    run_demo(Path(out), quick=quick, board=board, simulator=simulator, skip_bitstream=no_bitstream,
             skip_board=no_board)


# -- where long commands run: local processes or a Dask cluster (memprop.jobs) ------------------------

def cluster_options(fn):
    """`--scheduler` (or $MEMPROP_SCHEDULER) and `--resume` for the commands that run jobs."""
    fn = click.option("--resume", is_flag=True,
                      help="take over the jobs an interrupted run finished (its journal.jsonl in --out)")(fn)
    return click.option("--scheduler", default=None, metavar="ADDRESS",
                        help="run the jobs on this Dask scheduler (e.g. tcp://host:8786; default: $MEMPROP_SCHEDULER, "
                             "else --jobs local processes); needs memprop[cluster]")(fn)


@contextlib.contextmanager
def cluster_errors():
    """A cluster that cannot run the jobs is a one-line error, as a bad argument is."""
    from memprop.jobs import ClusterError, WorkerLost

    try:
        yield
    except (ClusterError, WorkerLost) as exc:
        raise click.ClickException(str(exc)) from None


def run() -> None:  # pragma: no cover - console entry for `python -m memprop`
    sys.exit(main())


@main.command()
@click.option("--out", type=click.Path(file_okay=False), default="results/reproduce", show_default=True)
@click.option("--quick", is_flag=True, help="a small version of every experiment (minutes -> seconds)")
@click.option("--patterns", "pattern_file", default=None, help="pattern file; default: built-in hex16")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="parallel worker processes")
@click.option("--data", "data_dir", type=click.Path(), default=None,
              help="MNIST IDX folder: adds the Frontiers 5-class MNIST experiment to the classification part")
@cluster_options
@user_errors
def reproduce(out, quick, pattern_file, jobs, data_dir, scheduler, resume):
    """Table 1, the band sweep, accuracy vs epoch, the pattern set, and classification (Figure 5)."""
    from memprop.figure5 import run_classification
    from memprop.reproduce import run_reproduce

    if data_dir is not None:
        from memprop.model.tasks import load_mnist

        load_mnist(data_dir)    # bad MNIST files fail before an hour of pattern experiments
    with cluster_errors():
        run_reproduce(Path(out), quick=quick, pattern_file=pattern_file, jobs=jobs, scheduler=scheduler, resume=resume)
        run_classification(Path(out), quick=quick, data=data_dir, jobs=jobs, scheduler=scheduler)


@main.command()
@click.option("--out", type=click.Path(file_okay=False), default="results/sweep", show_default=True)
@click.option("--quick", is_flag=True, help="a small grid, few epochs and trials (a smoke run, seconds)")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="parallel worker processes")
@click.option("--readme", type=click.Path(dir_okay=False, exists=True), default=None,
              help="also rewrite the device tables of this README (between its memprop sweep markers)")
@cluster_options
@user_errors
def sweep(out, quick, jobs, readme, scheduler, resume):
    """Fixed-point EqProp on every device preset over seeds: levels, stuck devices, nudging, state width."""
    from memprop.sweep import run_sweep

    with cluster_errors():
        run_sweep(Path(out), quick=quick, jobs=jobs, readme=Path(readme) if readme else None, scheduler=scheduler,
                  resume=resume)


@main.command()
@click.option("--out", type=click.Path(file_okay=False), default=None, help="directory for bench.json")
@click.option("--epochs", type=click.IntRange(min=1), default=50, show_default=True, help="training epochs per run")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="runs per model (median)")
@click.option("--trials", type=click.IntRange(min=1), default=1000, show_default=True,
              help="corrupted copies per pattern for the recall throughput")
@click.option("--device", "preset", default="ideal", show_default=True, help="device preset of the fixed-point run")
@click.option("--quick", is_flag=True, help="a smoke run of both sections (under 2 minutes, no simulation)")
@click.option("--hardware/--no-hardware", default=True, show_default=True,
              help="the per-board hardware section (cycles, fmax, projected samples/s vs the float model)")
@click.option("--hw-epochs", type=click.IntRange(min=1), default=20, show_default=True,
              help="epochs of in-situ training costed per board")
@click.option("--builds", type=click.Path(file_okay=False), default=None,
              help="where `memprop build --out DIR/<board>` left build.json (fmax); default results/build")
@click.option("--simulate/--no-simulate", default=None,
              help="measure the engines under Verilator too (default: yes, except with --quick)")
@click.option("--board", "boards", multiple=True, type=click.Choice(["icebreaker", "ulx3s", "ulx3s-25f"]),
              help="limit the hardware section to these boards (repeatable; default: all)")
@click.option("--no-peer", is_flag=True, help="skip the PyTorch peer even when torch is installed")
@click.option("--json", "as_json", is_flag=True, help="print the JSON report (and nothing else) on stdout")
@user_errors
def bench(out, epochs, repeats, trials, preset, quick, hardware, hw_epochs, builds, simulate, boards, no_peer, as_json):
    """Float vs fixed-point training time, the float model vs its original loop and its PyTorch peer,
    recall throughput, each board's engine vs the float model, and what a digits image costs."""
    from memprop.bench import run_bench

    run_bench(None if out is None else Path(out), epochs=epochs, repeats=repeats, trials=trials, device=preset,
              quick=quick, hardware=hardware, hw_epochs=hw_epochs, builds=None if builds is None else Path(builds),
              simulate=simulate, boards=boards or None, as_json=as_json, peer=not no_peer)


DEFAULT_HW_CONFIG = {"numerics": "fixed", "device": {"preset": "linear-256"}}


def hardware_config(config_file: str | None) -> Config:
    """The Config of a hardware command: a JSON file, or the default fixed-point EqProp design."""
    if config_file is None:
        return Config.for_algorithm("eqprop", **DEFAULT_HW_CONFIG)
    cfg = Config.from_json(Path(config_file).read_text())
    if cfg.numerics != "fixed":
        raise ConfigError(f"{config_file}: hardware needs numerics 'fixed' (the RTL implements the fixed-point model)")
    return cfg


@main.command()
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSON config with numerics 'fixed'; default: N=100 EqProp on linear-256 devices")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="output directory")
@click.option("--lanes", type=click.IntRange(1, 64), default=None, help="override the MAC lanes P")
@user_errors
def rtl(config_file, out, lanes):
    """Generate the engine's Verilog and a JSON of its parameters."""
    from memprop.rtl.generate import generate

    cfg = hardware_config(config_file)
    if lanes is not None:
        cfg = cfg.replace(hw={"lanes": lanes})
    params = generate(cfg, Path(out))
    click.echo(f"wrote {out}/{params['top']}.v and {params['top']}.json: N={cfg.network.n}, "
               f"P={params['lanes']}, {params['stream']['synapses']} synapses, "
               f"{params['cycles']['per_step']} cycles per relaxation step, fingerprint {params['fingerprint']}")


@main.command()
@click.option("--simulator", type=click.Choice(["verilator", "icarus"]), default="verilator", show_default=True)
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="run every case on this fixed-point config (default: random configs)")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--cases", type=click.IntRange(min=1), default=20, show_default=True, help="random cases")
@click.option("--per-config", type=click.IntRange(min=1), default=10, show_default=True,
              help="cases per job: per random config (one simulator build each per worker), or per job with --config")
@click.option("--netlist", type=click.Choice(["rtl", "ice40", "ecp5"]), default="rtl", show_default=True,
              help="simulate the RTL, or the gate-level netlist after yosys synth_ice40 / synth_ecp5")
@click.option("--waves", is_flag=True, help="keep a waveform of every run")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="parallel worker processes (each builds a configuration's simulator once)")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="run the jobs on this Dask scheduler (default: $MEMPROP_SCHEDULER, else --jobs local processes); "
                   "needs memprop[cluster] and the hw extra on the workers")
@click.option("--journal", type=click.Path(dir_okay=False), default=None,
              help="record each finished job in this file (JSON lines), to --resume an interrupted campaign")
@click.option("--resume", is_flag=True, help="take over the jobs the --journal file holds for this campaign")
@user_errors
def sim(simulator, config_file, seed, cases, per_config, netlist, waves, as_json, jobs, scheduler, journal, resume):
    """Bit-exact cocotb simulation of the engine against the fixed-point model."""
    from memprop.jobs import Runner
    from memprop.sim.engine import run_campaign
    from memprop.sim.simulators import SimulatorUnavailable, unavailable_reason

    if resume and journal is None:
        raise click.UsageError("--resume needs --journal FILE")
    runner = Runner.choose(jobs, scheduler)
    reason = None if runner.scheduler else unavailable_reason(simulator)   # a cluster's workers simulate
    if reason:
        raise click.ClickException(f"{simulator} is not available: {reason}")
    cfg = hardware_config(config_file) if config_file else None
    try:
        with cluster_errors():
            campaign = run_campaign(cases, seed, cfg, per_config, simulator=simulator, netlist=netlist, waves=waves,
                                    progress=not as_json, jobs=runner.jobs, scheduler=runner.scheduler,
                                    journal=None if journal is None else Path(journal), resume=resume)
    except SimulatorUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    summary = campaign.summary(simulator, netlist)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"{summary['cases']} cases on {summary['configs']} configs ({campaign.executor}), {simulator}/{netlist}: "
                   f"{summary['mismatches']} mismatches, {summary['cycles']} cycles simulated in "
                   f"{summary['sim_seconds']} s ({summary['cycles_per_second']} cycles/s; "
                   f"{summary['seconds']} s with builds)")
        if summary["first_mismatch"]:
            click.echo(f"first mismatch: {summary['first_mismatch']}")
            for run in summary["runs"]:
                if run["mismatches"] and run["waves"]:
                    click.echo(f"waveform: {run['waves']}")
    if summary["mismatches"]:
        sys.exit(1)


# -- boards: bitstreams and weight images (memprop.boards) -----------------------------------------

BOARD_NAMES = ("icebreaker", "ulx3s", "ulx3s-25f")


@main.command(name="build")
@click.option("--board", type=click.Choice(BOARD_NAMES), required=True)
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSON config with numerics 'fixed'; default: the board's own (memprop.boards.build.BOARDS)")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="build directory")
@click.option("--baud", type=click.IntRange(min=1), default=None, help="UART baud rate (default 1000000)")
@click.option("--seed", type=click.IntRange(min=0), multiple=True,
              help="nextpnr placement seed; repeat it to place with each (in parallel, one synthesis) and keep "
                   "the fastest placement (default: the board's seeds, 1 to 3 on the ULX3S)")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="placements run at once with several seeds (default: one per CPU)")
@click.option("--clock", "clock_mhz", type=click.FloatRange(min=1, max=400), default=None,
              help="core clock from the board PLL in MHz (default: the board's, where its design closes)")
@click.option("--weights", "weight_file", type=click.Path(dir_okay=False), default=None,
              help="bake these fixed-point weights into the bitstream (block-RAM code memory only)")
@click.option("--task", "task_name", type=click.Choice(["digits"]), default=None,
              help="the board's digits classifier instead of its recall network (train its weights with "
                   "memprop train --task digits --config OUT/config.json)")
@click.option("--goal", "goal_mhz", type=click.FloatRange(min=1, max=1000), default=None,
              help="ECP5: list the registers slower than this frequency in MHz (default: the board's "
                   "goal, else the clock)")
@user_errors
def build_board(board, config_file, out, baud, seed, jobs, clock_mhz, weight_file, task_name, goal_mhz):
    """Build a bitstream for a board: engine + host link + UART (YoWASP toolchain)."""
    from memprop.boards.build import DEFAULT_BAUD, BuildError, build, get_board, placement_line
    from memprop.boards.configs import board_clock_hz, remember
    from memprop.boards.timing import format_slow

    if task_name is not None and config_file is not None:
        raise click.UsageError("give --task or --config, not both")
    target = get_board(board)
    cfg = hardware_config(config_file) if config_file is not None else None
    if task_name is not None:
        cfg = target.classifier_config(task_name)
        clock_mhz = clock_mhz or target.classifier["clock_mhz"]
    init = None
    if weight_file is not None:
        init = _baked_weights(board, cfg or target.default_config(), weight_file)
    try:
        report = build(board, cfg, Path(out), baud=baud or DEFAULT_BAUD, seed=seed or None, clock_mhz=clock_mhz,
                       init=init, goal_mhz=goal_mhz, jobs=jobs)
    except BuildError as exc:
        raise click.ClickException(str(exc)) from None
    remember(Config.from_json(json.dumps(report["config"])), f"memprop build {out}", board=board,
             clock_hz=int(report["clock_mhz"] * 1e6) if report.get("clock_mhz") else board_clock_hz(board))
    if init is not None:
        click.echo(f"baked in {weight_file}: checksum {init.checksum:08x} (memprop board info shows it)")
    util = ", ".join(f"{name} {u['used']}/{u['available']}" for name, u in report["utilisation"].items()
                     if u.get("available"))
    click.echo(f"wrote {report['bitstream']} for {board} ({report['device']}): N={report['n']}, P={report['lanes']}, "
               f"fingerprint {report['fingerprint']}")
    click.echo(f"  {util}; fmax {report['fmax_mhz']} MHz at a {report['clock_mhz']} MHz PLL clock; "
               f"{report['wall_s']} s; report {out}/build.json")
    if placements := placement_line(report):
        click.echo(f"  {placements}")
    depth = report["logic_depth"]
    click.echo(f"  logic depth: {depth['max_levels']} LUT levels at most, {depth['endpoints_deep']} endpoints at "
               f"{depth['deep']} or more" + "".join(f"\n    {d['levels']} levels, {d['endpoints']} endpoints: "
                                                   f"{d['from']} -> {d['to']}" for d in depth["deepest"][:5]))
    if report["slow_registers"] is not None:
        click.echo("\n".join("  " + line for line in format_slow(report["slow_registers"], limit=8)))
    if not report["timing_met"]:
        raise click.ClickException(f"timing not met: fmax {report['fmax_mhz']} MHz is below the "
                                   f"{report['clock_mhz']} MHz clock (the bitstream was written but may not work)")


@main.command()
@click.option("--weights", "weight_file", type=click.Path(dir_okay=False), required=True)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="directory for image.json and .hex files")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="hardware config (numerics 'fixed'); default: the weight file's")
@click.option("--board", type=click.Choice(BOARD_NAMES), default=None, help="use the board's default hardware config")
@click.option("--from-float", is_flag=True,
              help="program float weights into the devices of the fixed-point hardware config (an approximation)")
@user_errors
def export(weight_file, out, config_file, board, from_float):
    """Write the hardware image (device codes per stream position) of trained weights."""
    from memprop.boards.image import from_weights, write_image

    if config_file is not None and board is not None:
        raise click.UsageError("give --config or --board, not both")
    target = None
    if config_file is not None:
        target = hardware_config(config_file)
    elif board is not None:
        from memprop.boards.build import get_board

        target = get_board(board).default_config()
    params, wcfg, _ = weights.load(weight_file)
    image, summary = from_weights(params, wcfg, target, from_float=from_float, source=str(weight_file))
    paths = write_image(image, Path(out))
    extra = (f", programmed from float weights (largest weight error {summary['max_weight_error']:.4g})"
             if summary["source"] == "float" else f", update counter {image.updates}")
    click.echo(f"wrote {paths['image']}: {len(image.codes)} stream entries and {len(image.bias)} biases for "
               f"N={image.cfg.network.n}, P={image.cfg.hw.lanes}, fingerprint {image.fingerprint}{extra}")


# -- formal proofs (memprop.formal) -----------------------------------------------------------------

FORMAL_MUTANTS = ("link-skips-crc", "mac-narrow-accumulator", "mac-fold-early-read")   # memprop.formal.MUTANTS


@main.command(name="formal")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="prove the Config-dependent blocks for this fixed-point config "
                   "(default: small configs of every topology and activation)")
@click.option("--depth", type=click.IntRange(1, 1000), default=None,
              help="induction length / bounded depth of every proof (default: each proof's own)")
@click.option("--only", multiple=True, metavar="NAME",
              help="run only the proofs whose name starts with NAME (repeatable): link, uart, neuron, mac, ...")
@click.option("--mutant", type=click.Choice(FORMAL_MUTANTS), default=None,
              help="check a deliberately broken design instead: it must be reported failed, with a trace")
@click.option("--equiv", is_flag=True,
              help="instead: check yosys's iCE40 and ECP5 netlists of a small engine (or --config's) against "
                   "the RTL, a bounded miter to --depth cycles (default 6); minutes")
@click.option("--out", type=click.Path(file_okay=False), default="results/formal", show_default=True,
              help="work directory: SymbiYosys runs, traces, formal.json and formal.md")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="parallel SymbiYosys jobs")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@user_errors
def formal_(config_file, depth, only, mutant, equiv, out, jobs, as_json):
    """Prove the RTL's properties with SymbiYosys (k-induction, bounded checks, covers)."""
    from tqdm.auto import tqdm

    from memprop import formal

    if equiv:
        _formal_equivalence(config_file, depth, out, jobs, as_json)
        return

    chosen = formal.MUTANTS[mutant] if mutant else None
    proofs = [p for p in formal.default_proofs()
              if chosen or not only or any(p.name.startswith(o) for o in only)]
    if not proofs:
        names = ", ".join(p.name for p in formal.default_proofs())
        raise click.UsageError(f"--only {' '.join(only)} matches no proof; proofs: {names}")
    if config_file is not None:
        cfg = hardware_config(config_file)
        configs = [(Path(config_file).stem, cfg)]
    else:
        configs = formal.default_configs()
    n_jobs = sum(2 if not chosen else 1 for p in proofs for _ in (configs if p.per_config else [None])
                 if not chosen or p.name in chosen.proofs)
    bar = tqdm(total=n_jobs, desc="formal", unit="job", disable=as_json)
    try:
        report = formal.run(proofs, configs, out_dir=Path(out), depth=depth, jobs=jobs, mutant=chosen,
                            progress=lambda name: bar.update(1))
    except formal.FormalError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bar.close()
    result = report.to_dict()
    result.update({"configs": [label for label, _ in configs], "depth": depth, "mutant": mutant})
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "formal.json").write_text(json.dumps(result, indent=1))
    (Path(out) / "formal.md").write_text(formal.markdown_table(report))
    if as_json:
        click.echo(json.dumps(result))
    else:
        for r in report.results:
            click.echo(r.line())
        for line in formal.summary_lines(report):
            click.echo(line)
        for error in report.errors:
            click.echo(f"error: {error}", err=True)
        if chosen:
            verdict = "found" if result["failed"] else "did NOT find"
            click.echo(f"mutant {mutant} ({chosen.text}): the checker {verdict} the planted bug")
    if not report.ok:
        sys.exit(1)


def _formal_equivalence(config_file, depth, out, jobs, as_json):
    """`memprop formal --equiv`: synthesised netlists against the RTL."""
    from tqdm.auto import tqdm

    from memprop import formal

    cfg = hardware_config(config_file) if config_file is not None else None
    bar = tqdm(total=len(formal.EQUIV_ARCHES), desc="equivalence", unit="arch", disable=as_json)
    try:
        results = formal.run_equivalence(cfg, out_dir=Path(out), depth=depth or 6, jobs=jobs,
                                         progress=lambda name: bar.update(1))
    except formal.FormalError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bar.close()
    ok = all(r.status == "equivalent" for r in results)
    report = {"equivalence": [{k: v for k, v in vars(r).items()} for r in results], "ok": ok}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "equivalence.json").write_text(json.dumps(report, indent=1))
    if as_json:
        click.echo(json.dumps(report))
    else:
        for r in results:
            click.echo(r.line())
    if not ok:
        sys.exit(1)


# -- a board in the user's hands: program, board {info,load,read,recall,train,serve} (boards/) ------


def _baked_weights(board: str, cfg: Config, weight_file: str):
    """The image of `weight_file` for `cfg`, when the board's code memory can hold it from power-up."""
    from memprop.boards.build import get_board
    from memprop.boards.image import from_weights
    from memprop.rtl.codemem import resolve_backend

    backend = resolve_backend(cfg.hw.code_memory, get_board(board).make_platform())
    if backend == "spram":
        raise click.ClickException(f"the {board} design keeps its codes in SPRAM, which a bitstream cannot "
                                   "initialise: build without --weights, then `memprop board load --weights "
                                   f"{weight_file}` after `memprop program`")
    params, wcfg, _ = weights.load(weight_file)
    image, _ = from_weights(params, wcfg, cfg, source=str(weight_file))
    return image


DEFAULT_PORT_BAUD = 1_000_000


def board_errors(fn):
    """The board layer's errors (a port, a link, a programmer, the virtual board) as `Error: ...`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from memprop.boards.host import LinkError
        from memprop.boards.image import ImageError
        from memprop.boards.program import ProgramError
        from memprop.boards.session import BoardError
        from memprop.boards.virtual import VirtualBoardError
        from memprop.rtl.driver import EngineError

        try:
            return fn(*args, **kwargs)
        except (BoardError, ProgramError, VirtualBoardError, EngineError, LinkError, ImageError) as exc:
            raise click.ClickException(str(exc)) from None

    return user_errors(wrapper)


@main.command(name="program")
@click.option("--board", "board_name", type=click.Choice(BOARD_NAMES), required=True)
@click.option("--bitstream", type=click.Path(dir_okay=False), required=True,
              help="memprop.bin (iCE40) or memprop.bit (ECP5) from `memprop build`")
@click.option("--flash/--sram", default=None,
              help="write the configuration flash (kept at power-off) or the FPGA's SRAM; default: flash on the "
                   "iCEBreaker, SRAM on the ULX3S")
@click.option("--programmer", type=click.Choice(["auto", "openfpgaloader", "iceprog", "fujprog"]), default="auto",
              show_default=True)
@board_errors
def program_board(board_name, bitstream, flash, programmer):
    """Put a bitstream on a board (openFPGALoader, iceprog or fujprog)."""
    from memprop.boards.program import program

    done = program(board_name, bitstream, flash=flash, programmer=programmer)
    click.echo(f"programmed the {board_name} with {bitstream} ({done['programmer']}, "
               f"{'flash' if done['flash'] else 'SRAM'})")


@main.group(name="board")
def board_group() -> None:
    """Use a board (or the virtual board) over its serial port: info, load, read, recall, train, serve."""


def port_options(fn):
    fn = click.option("--timeout", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
                      help="seconds to wait for a response")(fn)
    fn = click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
                      help="the board's config.json (from `memprop build`) when this machine does not know its "
                           "design")(fn)
    fn = click.option("--baud", type=click.IntRange(min=1), default=DEFAULT_PORT_BAUD, show_default=True)(fn)
    fn = click.option("--port", required=True, envvar="MEMPROP_PORT",
                      help="serial port of the board's UART (or $MEMPROP_PORT): /dev/ttyUSB1, the virtual "
                           "board's /dev/pts/N, a pyserial URL")(fn)
    return fn


def _open_board(port, baud, config_file, timeout):
    from memprop.boards.session import BoardSession

    cfg = hardware_config(config_file) if config_file is not None else None
    return BoardSession.open(port, baud, config=cfg, timeout=timeout)


def _bar(total: int, desc: str, unit: str, quiet: bool = False):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=True if quiet else None, leave=False)


@board_group.command(name="info")
@port_options
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@board_errors
def board_info(port, baud, config_file, timeout, as_json):
    """The board's design (fingerprint, N, P, preset, versions) and counters."""
    with _open_board(port, baud, config_file, timeout) as session:
        info = session.info()
        if session.identity.engine_checksum:
            info["checksum"] = f"{session.checksum():08x}"
    if as_json:
        click.echo(json.dumps(info))
        return
    regs = info["registers"]
    clock = f", clock {info['clock_mhz']} MHz" if info["clock_mhz"] else ""
    click.echo(f"board on {port}: memprop engine version {info['engine_version']}, link version "
               f"{info['link_version']} (bursts of {info['max_burst']} words){clock}")
    design = (f"fingerprint {info['fingerprint']}, N={info['n']}, P={info['lanes']}, {info['batch']} minibatch slots")
    if "preset" in info:
        design += (f", {info['topology']} ({info['synapses']} synapses), preset {info['preset']}; "
                   f"config: {info['config_source']}")
    else:
        design += "; preset unknown: this machine does not know the design (pass --config)"
    click.echo(f"design: {design}" + (f", design id {info['design']}" if info["design"] else ""))
    counters = (f"update counter t={regs['updates']}, seed {regs['seed']}, last command {regs['cycles']} cycles "
                f"({regs['steps']} relaxation steps)" + (f", {regs['commands']} commands" if "commands" in regs else "")
                + (", busy" if regs["busy"] else ", idle"))
    click.echo(f"counters: {counters}")
    if "checksum" in info:
        click.echo(f"weights: checksum {info['checksum']}"
                   + (" (a load was begun and not committed: these are the weights from before it)"
                      if regs["loading"] else ""))


@board_group.command(name="load")
@port_options
@click.option("--weights", "weight_file", type=click.Path(dir_okay=False), required=True,
              help="fixed-point weights (`memprop train --numerics fixed`, or `memprop board read`)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@board_errors
def board_load(port, baud, config_file, timeout, weight_file, as_json):
    """Write trained device codes onto the board, verified by checksum."""
    params, wcfg, _ = weights.load(weight_file)
    with _open_board(port, baud, config_file, timeout) as session:
        cfg = session.check_weights(wcfg, str(weight_file))
        with _bar(session.driver.layout.schedule.length + cfg.network.n + 2, "load", "word", as_json) as bar:
            report = session.load(params, wcfg, source=str(weight_file), progress=bar.update)
    data = report.to_dict()
    if as_json:
        click.echo(json.dumps({**data, "weights": str(weight_file), "port": port}))
        return
    wire = f", {data['wire_seconds']} s on the wire at {baud} baud" if data["wire_seconds"] is not None else ""
    how = "loaded into the shadow bank and committed" if report.atomic else "written"
    click.echo(f"{how} {weight_file}: {report.words} words, {report.bytes_sent} bytes sent (payload "
               f"{report.payload_bytes}, {report.efficiency:.1%}){wire}; checksum {data['checksum']} verified")


@board_group.command(name="read")
@port_options
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="weight file to write (.npz)")
@board_errors
def board_read(port, baud, config_file, timeout, out):
    """Read the board's device codes back into a weight file (the format of `train --numerics fixed`)."""
    weights.check_path(out)
    with _open_board(port, baud, config_file, timeout) as session:
        cfg = session.cfg
        with _bar(session.driver.layout.schedule.length + cfg.network.n, "read", "word") as bar:
            params, cfg, crc = session.read(progress=bar.update)
    path = weights.save(out, params, cfg, source=f"board {port}", checksum=f"{crc:08x}")
    click.echo(f"wrote {path}: the board's codes (N={cfg.network.n}, {cfg.device.preset}, update counter "
               f"{params.updates}, checksum {crc:08x}, fingerprint {cfg.fingerprint})")


@board_group.command(name="recall")
@port_options
@click.option("--patterns", "pattern_file", default=None, help="pattern file; default: built-in hex16")
@click.option("--flip", type=click.FloatRange(0.0, 0.5), required=True, help="pixel-flip probability p")
@click.option("--trials", type=click.IntRange(min=1), default=100, show_default=True, help="corrupted copies per pattern")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object (the keys of `memprop eval --json` "
                                                      "and the board's cycles)")
@board_errors
def board_recall(port, baud, config_file, timeout, pattern_file, flip, trials, seed, as_json):
    """Recall corrupted patterns on the board (the same trials as `memprop eval`)."""
    pats = pattern_sets.load(pattern_file)
    with _open_board(port, baud, config_file, timeout) as session:
        cfg = session.cfg
        pattern_sets.check_size(pats, cfg.network.n, "the board's network")
        with _bar(pats.count * trials, "recall", "trial", as_json) as bar:
            result, stats = session.recall(pats, flip, trials, seed, progress=bar.update)
    extra = stats.to_dict()
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "weights": f"board {port}", "fingerprint": cfg.fingerprint,
                               "patterns": pats.source, **extra}))
        return
    click.echo(f"board: accuracy {result.accuracy:.4f} at p={flip} ({trials} trials x {pats.count} patterns)")
    for k, acc in enumerate(result.per_class):
        click.echo(f"  pattern {k:2d}: {acc:.3f}")
    timing = f", {extra['us_per_recall']} us at {extra['clock_mhz']} MHz" if extra["us_per_recall"] else ""
    click.echo(f"  {extra['cycles_per_recall']} cycles per recall ({extra['steps_per_recall']} steps){timing}")


@board_group.command(name="train")
@port_options
@click.option("--patterns", "pattern_file", default=None, help="pattern file; default: built-in hex16")
@click.option("--epochs", type=click.IntRange(min=1), required=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="seed of the noisy samples")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="read the codes back into this weight file")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@board_errors
def board_train(port, baud, config_file, timeout, pattern_file, epochs, seed, out, as_json):
    """In-situ EqProp on the board: the host streams noisy samples and targets, the board learns."""
    if out is not None:
        weights.check_path(out)
    pats = pattern_sets.load(pattern_file)
    with _open_board(port, baud, config_file, timeout) as session:
        cfg = session.cfg
        pattern_sets.check_size(pats, cfg.network.n, "the board's network")
        total = epochs * pats.count * cfg.train.repeats
        with _bar(total, "train", "sample", as_json) as bar:
            stats = session.train(pats, epochs, seed, progress=bar.update)
        saved = None
        if out is not None:
            params, wcfg, crc = session.read()
            saved = str(weights.save(out, params, wcfg, source=f"board {port}", checksum=f"{crc:08x}"))
    data = {**stats.to_dict(), "out": saved, "port": port, "patterns": pats.source}
    if as_json:
        click.echo(json.dumps(data))
        return
    board_s = f" ({data['board_seconds']} s at the board's clock)" if data["board_seconds"] is not None else ""
    click.echo(f"trained {stats.epochs} epochs on the board: {stats.samples} samples, {stats.minibatches} updates "
               f"(t={stats.updates}), {stats.cycles} cycles{board_s}, {data['host_seconds']} s on the host"
               + (f"; wrote {saved}" if saved else ""))


@board_group.command(name="serve")
@click.option("--sim", is_flag=True, required=True, help="serve the virtual board (Verilator) on a pseudo-terminal")
@click.option("--board", "board_name", type=click.Choice(BOARD_NAMES), default=None,
              help="the board's default design and clock (default: ulx3s unless --config)")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="a fixed-point JSON config instead of a board's design")
@click.option("--clock-mhz", type=click.FloatRange(min=0.01), default=None,
              help="nominal clock (turns cycles into time; default: the board's, 25 with --config)")
@click.option("--link", type=click.Path(dir_okay=False), default=None,
              help="also make this symbolic link to the terminal (a stable name)")
@click.option("--flip-reply", type=click.IntRange(min=0), default=0, help="fault test: damage every K-th reply byte")
@click.option("--flip-request", type=click.IntRange(min=0), default=0,
              help="fault test: damage every K-th request byte on the line")
@board_errors
def board_serve(sim, board_name, config_file, clock_mhz, link, flip_reply, flip_request):
    """Run the board design in Verilator behind a pseudo-terminal and print its path."""
    import signal
    import time

    from memprop.boards import virtual
    from memprop.boards.build import get_board
    from memprop.boards.configs import board_clock_hz

    if not sim:
        raise click.UsageError("only the virtual board can be served: --sim")
    if board_name and config_file:
        raise click.UsageError("give --board or --config, not both")
    if config_file is not None:
        cfg, what, clock = hardware_config(config_file), str(config_file), virtual.DEFAULT_CLOCK_HZ
    else:
        board_name = board_name or "ulx3s"
        cfg, what, clock = get_board(board_name).default_config(), f"the {board_name} design", board_clock_hz(board_name)
    if clock_mhz is not None:
        clock = int(round(clock_mhz * 1e6))
    vb = virtual.VirtualBoard(cfg, clock_hz=clock, board=board_name, link=link, flip_reply=flip_reply,
                              flip_request=flip_request)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    port = vb.start()
    try:
        click.echo(f"virtual board ({what}: N={cfg.network.n}, P={cfg.hw.lanes}, fingerprint {cfg.fingerprint}, "
                   f"{clock / 1e6:g} MHz) on {port}" + (f" (also {link})" if link else ""))
        click.echo(f"  memprop board info --port {port}    (stop with Ctrl-C)")
        sys.stdout.flush()
        while vb.alive():
            time.sleep(0.2)
        raise click.ClickException(f"the virtual board stopped (exit {vb.proc.returncode})")
    except KeyboardInterrupt:
        pass
    finally:
        stats = vb.stop()
    if stats.get("active_s"):
        click.echo(f"stopped: {stats['cycles']} cycles simulated, {stats['bytes_in']} bytes in, {stats['bytes_out']} "
                   f"out, {stats['cycles'] / max(stats['active_s'], 1e-9):.0f} cycles/s while active")


# -- recall near the bound: the recipe and its ablation (memprop.recipe) ----------------------------

@main.command()
@click.option("--out", type=click.Path(file_okay=False), default="results/recipe", show_default=True)
@click.option("--quick", is_flag=True, help="a few epochs on two sets (a smoke run)")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="parallel worker processes")
@click.option("--reuse", type=click.Path(exists=True, dir_okay=False), default=None,
              help="an earlier recipe.json: take over its networks that are the same jobs (same Config, set, seed)")
@user_errors
def recipe(out, quick, jobs, reuse):
    """The recall recipe against the nearest-pattern bound, ingredient by ingredient (float and fixed point)."""
    from memprop.recipe import run_recipe

    run_recipe(Path(out), quick=quick, jobs=jobs, reuse=None if reuse is None else Path(reuse))
