"""Learning rules of the seeds: EqProp, RBP (Almeida-Pineda), Hebbian and Storkey.

EqProp and RBP return a weight-update *direction* (dW, db) that `Params.apply_update`
scales, clips and keeps symmetric. Both directions are minus the gradient of the cost at
the fixed point (EqProp in the limit of small beta), which the tests check against finite
differences. Hebbian and Storkey build W in one pass, as Hopfield rules do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activations
from .config import NetworkConfig, TrainConfig
from .network import Drive, Params, Relaxed, Target, cached_rows, converge, relax


@dataclass
class Update:
    dW: np.ndarray
    db: np.ndarray
    loss: float            # mean cost of the free fixed point over the batch
    steps: float           # mean relaxation steps per sample (all phases)


def cost(v: np.ndarray, target: Target) -> np.ndarray:
    """C = 1/2 sum over output units (T - v)^2, per sample."""
    return 0.5 * np.sum(((target.values - v) * target.units) ** 2, axis=1)


def _correlation(a: np.ndarray, net_mask: np.ndarray) -> np.ndarray:
    """d(-E)/dW for tied symmetric pairs: a_i a_j off the diagonal, a_i^2 / 2 on it."""
    corr = a.T @ a
    np.fill_diagonal(corr, 0.5 * np.diag(corr))
    return corr * net_mask


def eqprop_update(params: Params, net: NetworkConfig, train: TrainConfig, drive: Drive,
                  target: Target, rng: np.random.Generator) -> Update:
    """Free phase, weakly clamped phase(s), and the EqProp contrast divided by beta."""
    act = activations.get(net.activation)
    batch = drive.v0.shape[0]
    free = relax(params, net, drive)
    beta = train.beta
    if train.nudge == "random_sign":
        beta = beta * rng.choice((-1.0, 1.0))
    if train.nudge == "centered":
        plus = relax(params, net, drive, target, beta, v_start=free.v)
        minus = relax(params, net, drive, target, -beta, v_start=free.v)
        hi, lo, scale, extra = plus, minus, 2.0 * beta, minus.steps.mean()
    else:
        hi = relax(params, net, drive, target, beta, v_start=free.v)
        lo, scale, extra = free, beta, 0.0
    a_hi, a_lo = act.f(hi.v), act.f(lo.v)
    dW = (_correlation(a_hi, params.mask) - _correlation(a_lo, params.mask)) / (scale * batch)
    db = np.mean(a_hi - a_lo, axis=0) / scale
    db[drive.clamped] = 0.0
    return Update(dW, db, float(cost(free.v, target).mean()),
                  float(free.steps.mean() + hi.steps.mean() + extra))


def side_relax(params: Params, net: NetworkConfig, drive: Drive, free: Relaxed, target: Target,
               y0: float, max_steps: int | None = None) -> Relaxed:
    """RBP side network dy/dt = -y + g'(u)(W^T y + J), J = T - v, from y(0) = y0."""
    act = activations.get(net.activation)
    u = free.v @ params.W + params.b + drive.current
    gain = act.df(u)
    gain[:, drive.clamped] = 0.0
    J = (target.values - free.v) * target.units
    y = np.full_like(free.v, y0)
    y[:, drive.clamped] = 0.0
    limit = net.max_steps if max_steps is None else max_steps

    rows = cached_rows(gain, J)

    def update(active, ya):
        g, j = rows(active)
        return ya + net.eps * (-ya + g * (ya @ params.W + j))

    # At an unstable forward fixed point the side network diverges; such a sample carries no
    # gradient, so it contributes nothing instead of poisoning W with inf/nan.
    with np.errstate(over="ignore", invalid="ignore"):
        side = converge(y, update, limit, net.tol)
    diverged = ~np.all(np.isfinite(side.v), axis=1)
    side.v[diverged] = 0.0
    side.converged[diverged] = False
    return side


def rbp_update(params: Params, net: NetworkConfig, train: TrainConfig, drive: Drive,
               target: Target, rng: np.random.Generator) -> Update:
    """Relax v, relax the side network y, dW = 1/2 (y_i v_j + y_j v_i) (the seeds' y v^T, symmetrised)."""
    batch = drive.v0.shape[0]
    free = relax(params, net, drive)
    side = side_relax(params, net, drive, free, target, train.side_init)
    g = side.v.T @ free.v / batch
    dW = 0.5 * (g + g.T)
    np.fill_diagonal(dW, 0.5 * np.diag(dW))  # tied-pair convention, as in EqProp
    dW *= params.mask
    db = side.v.mean(axis=0)
    db[drive.clamped] = 0.0
    return Update(dW, db, float(cost(free.v, target).mean()), float(free.steps.mean() + side.steps.mean()))


UPDATES = {"eqprop": eqprop_update, "rbp": rbp_update}


# -- Hopfield rules ---------------------------------------------------------------------------

def hebbian(patterns: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """W = (1/N) sum_mu x x^T, zero diagonal, restricted to the mask."""
    x = patterns.astype(np.float64)
    W = x.T @ x / x.shape[1]
    np.fill_diagonal(W, 0.0)
    return W * mask


def storkey(patterns: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Storkey (1997): W += (1/N)(x_i x_j - x_i h_ji - h_ij x_j), h_ij = sum_{k != i,j} W_ik x_k.

    Applied pattern by pattern (the rule is incremental); each increment restricted to the mask.
    """
    n = patterns.shape[1]
    W = np.zeros((n, n))
    for x in patterns.astype(np.float64):
        h = W @ x                                   # full local fields (diagonal is zero)
        h_ij = h[:, None] - W * x[None, :]          # drop k = j (k = i has W_ii = 0)
        dW = (np.outer(x, x) - x[:, None] * h_ij.T - h_ij * x[None, :]) / n
        dW = 0.5 * (dW + dW.T)  # symmetric in exact arithmetic; make it so in floating point too
        np.fill_diagonal(dW, 0.0)
        W += dW * mask
    return W


def hopfield_recall(W: np.ndarray, states: np.ndarray, max_steps: int) -> np.ndarray:
    """Synchronous sign updates until no unit changes (h = 0 keeps the unit), per sample."""
    s = states.astype(np.float64).copy()
    active = np.arange(len(s))
    for _ in range(max_steps):
        if active.size == 0:
            break
        h = s[active] @ W
        new = np.where(h > 0, 1.0, np.where(h < 0, -1.0, s[active]))
        changed = np.any(new != s[active], axis=1)
        s[active] = new
        active = active[changed]
    return s.astype(np.int8)
