"""Training loops: epochs of noisy presentations, one weight update per minibatch.

One epoch shows every pattern `repeats` times, each time freshly corrupted with
probability `train_flip` and with the clean pattern as target (the seeds' "each image is
repeatedly proposed ... until it is memorised"). Samples keep the seeds' fixed order
unless `shuffle` is set, so with batch_size == repeats each update averages the noisy
copies of one pattern.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from .config import Config
from .fixed import FixedParams, eqprop_fixed_update, fixed_drive_for, fixed_target_for
from .numerics import Formats
from .network import Params, drive_for, one_blas_thread, target_for
from .patterns import PatternSet, check_size, corrupt
from .rules import UPDATES, hebbian, storkey


@dataclass
class History:
    loss: list[float] = field(default_factory=list)     # mean free-phase cost per epoch
    steps: list[float] = field(default_factory=list)    # mean relaxation steps per sample
    checkpoints: list[tuple[int, dict]] = field(default_factory=list)


EpochCallback = Callable[[int, Params], dict | None]


def train_flip(cfg: Config, epoch: int) -> float:
    """The training inputs' flip probability at `epoch` (1-based): constant, or the curriculum's ramp."""
    tr = cfg.train
    if tr.train_flip_end is None or tr.epochs <= 1:
        return tr.train_flip
    return tr.train_flip + (tr.train_flip_end - tr.train_flip) * (epoch - 1) / (tr.epochs - 1)


def decay_steps(cfg: Config, epoch: int) -> int:
    """Learning-rate decays before `epoch` (1-based): one after every `lr_decay_every` epochs.

    The float rate is lr · lr_decay^e; in fixed point e is the shift the host writes into the
    engine's decay register (docs/numerics.md, section 5)."""
    if epoch < 1:
        raise ValueError(f"epochs count from 1, got {epoch}")
    return 0 if cfg.train.lr_decay == 1.0 else (epoch - 1) // cfg.train.lr_decay_every


def epoch_samples(cfg: Config, patterns: np.ndarray, rng: np.random.Generator,
                  epoch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(noisy inputs, clean targets) for one epoch, in presentation order."""
    clean = np.repeat(patterns, cfg.train.repeats, axis=0)
    if cfg.train.shuffle:
        clean = clean[rng.permutation(len(clean))]
    return corrupt(clean, train_flip(cfg, epoch), rng), clean


def train(cfg: Config, patterns: PatternSet, *, progress: bool = True,
          on_epoch: EpochCallback | None = None, every: int = 1) -> tuple[Params, History]:
    """Train from the seeded initial weights; `on_epoch(epoch, params)` may return metrics to log."""
    with one_blas_thread():
        return _train(cfg, patterns, progress, on_epoch, every)


def _train(cfg: Config, patterns: PatternSet, progress: bool, on_epoch: EpochCallback | None,
           every: int) -> tuple[Params, History]:
    net, tr = cfg.network, cfg.train
    check_size(patterns, net.pattern_units, f"the network (besides its {net.hidden} hidden units)" if net.hidden
               else "the network")
    rng = np.random.default_rng(tr.seed)
    params = Params.initial(net, tr.init_scale, rng)
    if cfg.numerics == "fixed":
        return _train_fixed(cfg, patterns, params, rng, progress, on_epoch, every)
    if tr.algo in ("hebbian", "storkey"):
        rule = hebbian if tr.algo == "hebbian" else storkey
        params.W = rule(patterns.values, params.mask)
        return params, History()
    update = UPDATES[tr.algo]

    def step(x: np.ndarray, y: np.ndarray, epoch: int) -> tuple[float, float]:
        u = update(params, net, tr, drive_for(net, x, rng), target_for(net, y), rng)
        u.apply(params, tr.lr * tr.lr_decay ** decay_steps(cfg, epoch), tr.max_step)
        return u.loss, u.steps

    return params, _epochs(cfg, patterns, rng, step, params, f"{tr.algo} N={net.n}", progress, on_epoch, every)


def _epochs(cfg: Config, patterns: PatternSet, rng: np.random.Generator, step, params, desc: str,
            progress: bool, on_epoch: EpochCallback | None, every: int) -> History:
    """The epoch loop shared by float and fixed-point training: noisy samples, minibatches, history."""
    tr = cfg.train
    history = History()
    bar = tqdm(range(1, tr.epochs + 1), desc=desc, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        inputs, targets = epoch_samples(cfg, patterns.values, rng, epoch)
        losses, steps = [], []
        for start in range(0, len(inputs), tr.batch_size):
            loss, n_steps = step(inputs[start:start + tr.batch_size], targets[start:start + tr.batch_size], epoch)
            losses.append(loss)
            steps.append(n_steps)
        history.loss.append(float(np.mean(losses)))
        history.steps.append(float(np.mean(steps)))
        bar.set_postfix(loss=f"{history.loss[-1]:.3f}")
        if on_epoch is not None and (epoch % every == 0 or epoch == tr.epochs):
            metrics = on_epoch(epoch, params)
            if metrics is not None:
                history.checkpoints.append((epoch, metrics))
    return history


def _train_fixed(cfg: Config, patterns: PatternSet, init: Params, rng: np.random.Generator, progress: bool,
                 on_epoch: EpochCallback | None, every: int) -> tuple[FixedParams, History]:
    """In-situ EqProp in fixed point: the same epochs and batches, pulses instead of float steps.

    The initial weights are the float model's seeded initial weights, programmed into the devices.
    """
    fmt = Formats(cfg)
    params = FixedParams.from_float(cfg, init.W, init.b)

    def step(x: np.ndarray, y: np.ndarray, epoch: int) -> tuple[float, float]:
        _, info = eqprop_fixed_update(fmt, params, fixed_drive_for(fmt, x), fixed_target_for(fmt, y),
                                      decay_steps(cfg, epoch))
        return info["loss"], info["steps"]

    return params, _epochs(cfg, patterns, rng, step, params, f"eqprop/fixed N={cfg.network.n}", progress,
                           on_epoch, every)
