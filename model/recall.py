"""The recall benchmark: corrupt each pattern T times, let the network reconstruct it.

Two success criteria, both reported: `accuracy`, the reconstruction equals the original
exactly (squared error 0 after thresholding, the Frontiers criterion), and `accuracy_mse`,
the mean squared error of the final state against the pattern is below 0.1 (ICECS Table I).
Beside them, `bound`: what the best possible decoder scores on the very same corrupted
inputs (the nearest stored pattern in Hamming distance, ties shared).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import activations
from .config import Config
from .fixed import FixedParams, fixed_drive_for, fixed_readout, fixed_relax
from .numerics import Formats
from .network import Params, drive_for, one_blas_thread, readout, relax, units_of
from .patterns import PatternSet, check_size, corrupt
from .rules import hopfield_recall

CHUNK = 4096  # samples relaxed together; bounds memory, results do not depend on it
MSE_THRESHOLD = 0.1  # ICECS 2019: "reconstructed if the least square error ... is less than 0.1"
INIT_SEED_OFFSET = 7919  # random initial states (init_state='random') use seed + this, apart from the noise


@dataclass
class RecallResult:
    accuracy: float              # exact reconstructions (Frontiers)
    per_class: list[float]
    flip: float
    trials: int
    algo: str
    seed: int
    mean_flipped: float
    bound: float = 1.0           # nearest-pattern decoder on the same inputs: no decoder does better
    per_class_bound: list[float] | None = None
    accuracy_mse: float = 0.0    # MSE of the final state against the pattern below 0.1 (ICECS)
    per_class_mse: list[float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def nearest_pattern_credit(stored: np.ndarray, noisy: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per trial, the chance that the nearest-pattern decoder names the true pattern.

    The decoder picks the stored pattern nearest in Hamming distance (the maximum-likelihood
    choice for independent flips with p < 0.5), breaking ties at random: credit 1/m when the
    true pattern is one of m nearest, else 0. Its mean is the best accuracy any decoder can
    have on these inputs (equal priors).
    """
    overlap = noisy.astype(np.int32) @ stored.astype(np.int32).T       # N - 2 * Hamming distance
    best = overlap.max(axis=1, keepdims=True)
    nearest = overlap == best
    return nearest[np.arange(len(truth)), truth] / nearest.sum(axis=1)


def fixed_outputs(fmt: Formats, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(+-1 reconstructions, output states on the +-1 scale) of final fixed-point states `v`
    (the model's, or an engine's read back: memprop.boards.session)."""
    _, outputs = units_of(fmt.cfg.network)
    lo, hi = fmt.data_lo, 1 << fmt.fv
    return fixed_readout(fmt, v), (2.0 * v[:, outputs] - (lo + hi)) / (hi - lo)


def reconstruct(params: Params | FixedParams, cfg: Config, noisy: np.ndarray,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """+-1 reconstructions of a batch of corrupted patterns."""
    return recall_states(params, cfg, noisy, rng)[0]


def recall_states(params: Params | FixedParams, cfg: Config, noisy: np.ndarray,
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(+-1 reconstructions, final states of the output units on the patterns' +-1 scale)."""
    with one_blas_thread():
        return _recall_states(params, cfg, noisy, rng)


def _recall_states(params, cfg, noisy, rng):
    n_out = int(units_of(cfg.network)[1].sum())
    if cfg.train.algo in ("hebbian", "storkey"):
        s = hopfield_recall(params.W, noisy, cfg.network.max_steps)
        return s, s.astype(np.float64)
    if isinstance(params, FixedParams):
        fmt = Formats(cfg)
        W, b = params.weights(fmt.device)
    else:
        act = activations.get(cfg.network.activation)
        _, outputs = units_of(cfg.network)
    bits, states = [], []
    for start in range(0, len(noisy), CHUNK):
        x = noisy[start:start + CHUNK]
        if isinstance(params, FixedParams):
            relaxed = fixed_relax(fmt, W, b, fixed_drive_for(fmt, x))
            b_out, s_out = fixed_outputs(fmt, relaxed.v)
            bits.append(b_out)
            states.append(s_out)
            continue
        relaxed = relax(params, cfg.network, drive_for(cfg.network, x, rng))
        bits.append(readout(cfg.network, relaxed.v))
        states.append((2.0 * relaxed.v[:, outputs] - (act.lo + act.hi)) / (act.hi - act.lo))
    if not bits:
        return np.zeros((0, n_out), np.int8), np.zeros((0, n_out))
    return np.concatenate(bits), np.concatenate(states)


def evaluate(params: Params | FixedParams | None, cfg: Config, patterns: PatternSet, flip: float, trials: int,
             seed: int = 0, states_with=None) -> RecallResult:
    """Success rates (exact and MSE < 0.1) over `trials` corrupted copies of every pattern, and the bound.

    `states_with(noisy) -> (reconstructions, states)` (as `recall_states`) replaces the model (a
    board recalls them: memprop.boards.session); the corrupted copies and the result are the
    same as the model's."""
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    net = cfg.network
    check_size(patterns, net.pattern_units, f"the network (besides its {net.hidden} hidden units)" if net.hidden
               else "the network")
    rng = np.random.default_rng(seed)
    clean = np.repeat(patterns.values, trials, axis=0)
    noisy = corrupt(clean, flip, rng)
    init_rng = np.random.default_rng(seed + INIT_SEED_OFFSET) if cfg.network.init_state == "random" else None
    if states_with is None:
        bits, states = recall_states(params, cfg, noisy, init_rng)
    else:
        bits, states = states_with(noisy)
    shape = (patterns.count, trials)
    ok = np.all(bits == clean, axis=1).reshape(shape)
    close = (np.mean((states - clean) ** 2, axis=1) < MSE_THRESHOLD).reshape(shape)
    truth = np.repeat(np.arange(patterns.count), trials)
    credit = nearest_pattern_credit(patterns.values, noisy, truth).reshape(shape)
    return RecallResult(accuracy=float(ok.mean()), per_class=[float(a) for a in ok.mean(axis=1)], flip=flip,
                        trials=trials, algo=cfg.train.algo, seed=seed,
                        mean_flipped=float((noisy != clean).sum(axis=1).mean()),
                        bound=float(credit.mean()), per_class_bound=[float(a) for a in credit.mean(axis=1)],
                        accuracy_mse=float(close.mean()), per_class_mse=[float(a) for a in close.mean(axis=1)])
