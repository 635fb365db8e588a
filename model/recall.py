"""The recall benchmark: corrupt each pattern T times, let the network reconstruct it.

A trial succeeds when the reconstruction equals the original exactly (squared error 0
after thresholding), the Frontiers paper's criterion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .config import Config
from .fixed import FixedParams, fixed_drive_for, fixed_readout, fixed_relax
from .numerics import Formats
from .network import Params, drive_for, readout, relax
from .patterns import PatternSet, check_size, corrupt
from .rules import hopfield_recall

CHUNK = 4096  # samples relaxed together; bounds memory, results do not depend on it


@dataclass
class RecallResult:
    accuracy: float
    per_class: list[float]
    flip: float
    trials: int
    algo: str
    seed: int
    mean_flipped: float

    def to_dict(self) -> dict:
        return asdict(self)


def reconstruct(params: Params | FixedParams, cfg: Config, noisy: np.ndarray) -> np.ndarray:
    """+-1 reconstructions of a batch of corrupted patterns."""
    if cfg.train.algo in ("hebbian", "storkey"):
        return hopfield_recall(params.W, noisy, cfg.network.max_steps)
    if isinstance(params, FixedParams):
        fmt = Formats(cfg)
        W, b = params.weights(fmt.device)
    out = []
    for start in range(0, len(noisy), CHUNK):
        x = noisy[start:start + CHUNK]
        if isinstance(params, FixedParams):
            relaxed = fixed_relax(fmt, W, b, fixed_drive_for(fmt, x))
            out.append(fixed_readout(fmt, relaxed.v))
            continue
        relaxed = relax(params, cfg.network, drive_for(cfg.network, x))
        out.append(readout(cfg.network, relaxed.v))
    return np.concatenate(out) if out else np.zeros((0, cfg.network.n), np.int8)


def evaluate(params: Params | FixedParams | None, cfg: Config, patterns: PatternSet, flip: float, trials: int,
             seed: int = 0, reconstruct_with=None) -> RecallResult:
    """Success rate over `trials` corrupted copies of every pattern.

    `reconstruct_with(noisy) -> reconstructions` replaces the model (a board recalls them:
    memprop.boards.session); the corrupted copies and the result are the same as the model's."""
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    check_size(patterns, cfg.network.n)
    rng = np.random.default_rng(seed)
    clean = np.repeat(patterns.values, trials, axis=0)
    noisy = corrupt(clean, flip, rng)
    recon = reconstruct(params, cfg, noisy) if reconstruct_with is None else reconstruct_with(noisy)
    ok = np.all(recon == clean, axis=1).reshape(patterns.count, trials)
    per_class = ok.mean(axis=1)
    return RecallResult(accuracy=float(ok.mean()), per_class=[float(a) for a in per_class], flip=flip,
                        trials=trials, algo=cfg.train.algo, seed=seed,
                        mean_flipped=float((noisy != clean).sum(axis=1).mean()))
