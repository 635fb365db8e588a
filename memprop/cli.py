"""The `memprop` command line: thin wiring over model/, rtl/, sim/ and boards/.

Every user mistake (bad pattern file, weight file for another configuration, out-of-range
parameter) ends as a one-line `Error: ...` and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from memprop import __version__
from memprop.model import patterns as pattern_sets
from memprop.model import recall, training, weights
from memprop.model.config import Config, ConfigError
from memprop.model.patterns import PatternError
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


@main.command()
@click.option("--algo", type=click.Choice(["eqprop", "rbp", "hebbian", "storkey"]), required=True)
@click.option("--patterns", "pattern_file", default=None, help="pattern file (.npy or text glyphs); default: built-in hex16")
@click.option("--band", type=click.IntRange(min=0), default=0, show_default=True, help="outer diagonals cut (0: dense)")
@click.option("--epochs", type=click.IntRange(min=0), default=None, help="training epochs (default: 300)")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="learning rate")
@click.option("--numerics", type=click.Choice(["float", "fixed"]), default="float", show_default=True,
              help="float reference, or the hardware's fixed-point in-situ learning")
@click.option("--device", "preset", default=None,
              help="memristive device preset for --numerics fixed (ideal, linear-256, linear-64, soft-bounds, rram-nonlinear)")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSON config; command-line options override it")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="weight file to write (.npz)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@user_errors
def train(algo, pattern_file, band, epochs, seed, lr, numerics, preset, config_file, out, quiet):
    """Train a network on a pattern set and save its weights."""
    weights.check_path(out)
    pats = pattern_sets.load(pattern_file)
    network = {"topology": "band", "band": band} if band else {}
    tr = {"seed": seed}
    if epochs is not None:
        tr["epochs"] = epochs
    if lr is not None:
        tr["lr"] = lr
    if preset is not None and numerics != "fixed":
        raise click.UsageError("--device applies to --numerics fixed")
    cfg = _train_config(algo, pats.size, config_file, network, tr)
    if numerics == "fixed" or preset is not None:
        cfg = cfg.replace(numerics="fixed", device={"preset": preset or cfg.device.preset})
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
@click.option("--flip", type=click.FloatRange(0.0, 0.5), required=True, help="pixel-flip probability p")
@click.option("--trials", type=click.IntRange(min=1), default=1000, show_default=True, help="corrupted copies per pattern")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@user_errors
def eval_(weight_file, pattern_file, flip, trials, seed, as_json):
    """Recall accuracy of trained weights on corrupted patterns."""
    params, cfg, meta = weights.load(weight_file)
    pats = pattern_sets.load(pattern_file)
    pattern_sets.check_size(pats, cfg.network.n, f"the network in {weight_file}")
    result = recall.evaluate(params, cfg, pats, flip, trials, seed)
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "weights": str(weight_file),
                               "fingerprint": cfg.fingerprint, "patterns": pats.source}))
        return
    click.echo(f"{cfg.train.algo}: accuracy {result.accuracy:.4f} at p={flip} "
               f"({trials} trials x {pats.count} patterns)")
    for k, acc in enumerate(result.per_class):
        click.echo(f"  pattern {k:2d}: {acc:.3f}")


@main.command()
@click.option("--out", type=click.Path(file_okay=False), default="results/demo", show_default=True)
@click.option("--quick", is_flag=True, help="fewer epochs and trials (a smoke run)")
@user_errors
def demo(out, quick):
    """Train EqProp on the pattern set and print the recall table."""
    from memprop.demo import run_demo

    run_demo(Path(out), quick=quick)


def run() -> None:  # pragma: no cover - console entry for `python -m memprop`
    sys.exit(main())


@main.command()
@click.option("--out", type=click.Path(file_okay=False), default="results/reproduce", show_default=True)
@click.option("--quick", is_flag=True, help="a small version of every experiment (minutes -> seconds)")
@click.option("--patterns", "pattern_file", default=None, help="pattern file; default: built-in hex16")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="parallel worker processes")
@user_errors
def reproduce(out, quick, pattern_file, jobs):
    """Table 1, the band sweep, accuracy vs epoch and the pattern set (Markdown + JSON + PNG)."""
    from memprop.reproduce import run_reproduce

    run_reproduce(Path(out), quick=quick, pattern_file=pattern_file, jobs=jobs)


@main.command()
@click.option("--out", type=click.Path(file_okay=False), default="results/sweep", show_default=True)
@click.option("--quick", is_flag=True, help="a small grid, few epochs and trials (a smoke run, seconds)")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="parallel worker processes")
@user_errors
def sweep(out, quick, jobs):
    """Fixed-point EqProp accuracy vs device levels (every preset) and state width (Markdown + JSON + PNG)."""
    from memprop.sweep import run_sweep

    run_sweep(Path(out), quick=quick, jobs=jobs)


@main.command()
@click.option("--out", type=click.Path(file_okay=False), default=None, help="directory for bench.json")
@click.option("--epochs", type=click.IntRange(min=1), default=50, show_default=True, help="training epochs per run")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="runs per model (median)")
@click.option("--trials", type=click.IntRange(min=1), default=1000, show_default=True,
              help="corrupted copies per pattern for the recall throughput")
@click.option("--device", "preset", default="ideal", show_default=True, help="device preset of the fixed-point run")
@user_errors
def bench(out, epochs, repeats, trials, preset):
    """Wall time of float vs fixed-point EqProp training (ratio) and recall throughput."""
    from memprop.bench import run_bench

    run_bench(None if out is None else Path(out), epochs=epochs, repeats=repeats, trials=trials, device=preset)


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
