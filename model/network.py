"""Float reference network: parameters, what the environment imposes, and relaxation.

Everything is vectorised over a batch of states (B x N). Each sample stops at its own
convergence (max|dv| <= tol), so a converged sample is frozen while the others go on:
its trajectory does not depend on the batch it runs in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import activations
from .config import NetworkConfig
from .masks import connectivity, layer_slices


@dataclass
class Params:
    """Symmetric weights W (zero outside the mask) and biases b."""

    W: np.ndarray
    b: np.ndarray
    mask: np.ndarray

    @classmethod
    def initial(cls, net: NetworkConfig, scale: float, rng: np.random.Generator) -> "Params":
        """W ~ U[-scale, scale], symmetric (upper triangle mirrored), masked; b = 0."""
        mask = connectivity(net)
        upper = np.triu(rng.uniform(-scale, scale, (net.n, net.n)))
        W = (upper + np.triu(upper, 1).T) * mask
        return cls(W=W, b=np.zeros(net.n), mask=mask)

    def copy(self) -> "Params":
        return Params(self.W.copy(), self.b.copy(), self.mask.copy())

    def apply_update(self, dW: np.ndarray, db: np.ndarray, lr: float, max_step: float) -> None:
        """W += clip(lr*dW) on the mask, b += clip(lr*db); keeps W exactly symmetric."""
        step = np.clip(lr * dW, -max_step, max_step) * self.mask
        step = np.triu(step) + np.triu(step, 1).T  # symmetric by construction, not by luck
        self.W += step
        self.b += np.clip(lr * db, -max_step, max_step)


@dataclass
class Drive:
    """What the environment imposes on a batch: start state, input current, clamped units."""

    v0: np.ndarray                 # (B, N) initial state; clamped units keep these values
    current: np.ndarray            # (B, N) external input current I
    clamped: np.ndarray            # (N,) bool: units held at v0 (layered inputs)

    def __post_init__(self) -> None:
        if self.v0.shape != self.current.shape or self.v0.ndim != 2:
            raise ValueError(f"v0 {self.v0.shape} and current {self.current.shape} must both be B x N")
        if self.clamped.shape != (self.v0.shape[1],):
            raise ValueError(f"clamped mask {self.clamped.shape} does not match N={self.v0.shape[1]}")


@dataclass
class Target:
    """Desired states of the output units (cost C = 1/2 sum over outputs (T - v)^2)."""

    values: np.ndarray             # (B, N); only `units` are used
    units: np.ndarray              # (N,) bool


@dataclass
class Relaxed:
    v: np.ndarray                  # (B, N) final states
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # (B,) steps taken
    converged: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    trace: list | None = None      # states after every step (B, N each), when requested


def converge(v: np.ndarray, update, limit: int, tol: float, clamped: np.ndarray | None = None,
             trace: bool = False) -> Relaxed:
    """Apply `update(active, v_active)` until each sample's max|dv| <= tol or `limit` steps.

    The one iteration of the float and fixed-point models: a converged sample is frozen, so
    its trajectory does not depend on the batch it runs in; clamped units never move. `v` is
    updated in place.
    """
    batch = v.shape[0]
    steps = np.zeros(batch, dtype=np.int64)
    active = np.arange(batch)
    states = [v.copy()] if trace else None
    for _ in range(limit):
        if active.size == 0:
            break
        va = v[active]
        vn = update(active, va)
        if clamped is not None:
            vn[:, clamped] = va[:, clamped]
        delta = np.max(np.abs(vn - va), axis=1) if vn.shape[1] else np.zeros(len(active))
        v[active] = vn
        steps[active] += 1
        active = active[delta > tol]
        if trace:
            states.append(v.copy())
    converged = np.ones(batch, dtype=bool)
    converged[active] = False
    return Relaxed(v=v, steps=steps, converged=converged, trace=states)


def energy_gradient(params: Params, net: NetworkConfig, v: np.ndarray, current: np.ndarray,
                    target: Target | None = None, beta: float = 0.0) -> np.ndarray:
    """dF/dv with E = sum v^2/2 - 1/2 sum W rho rho - sum (b + I) rho and F = E + beta C."""
    act = activations.get(net.activation)
    field_ = act.f(v) @ params.W + params.b + current
    grad = v - act.df(v) * field_
    if target is not None and beta != 0.0:
        grad = grad - beta * (target.values - v) * target.units
    return grad


def step(params: Params, net: NetworkConfig, v: np.ndarray, current: np.ndarray,
         target: Target | None = None, beta: float = 0.0) -> np.ndarray:
    """One discrete step of the configured dynamics (clamping is applied by the caller)."""
    act = activations.get(net.activation)
    if net.dynamics == "additive":
        return v + net.eps * (-v + act.f(v @ params.W + params.b + current))
    moved = v - net.eps * energy_gradient(params, net, v, current, target, beta)
    return act.f(moved) if net.dynamics == "bounded" else moved


def relax(params: Params, net: NetworkConfig, drive: Drive, target: Target | None = None,
          beta: float = 0.0, v_start: np.ndarray | None = None, max_steps: int | None = None) -> Relaxed:
    """Iterate `step` until each sample converges or the step limit; clamped units stay fixed."""
    limit = net.max_steps if max_steps is None else max_steps
    v = (drive.v0 if v_start is None else v_start).astype(np.float64, copy=True)
    v[:, drive.clamped] = drive.v0[:, drive.clamped]

    def update(active, va):
        sub_target = None if target is None else Target(target.values[active], target.units)
        return step(params, net, va, drive.current[active], sub_target, beta)

    return converge(v, update, limit, net.tol, drive.clamped)


# -- how data enters the network --------------------------------------------------------------

def units_of(net: NetworkConfig) -> tuple[np.ndarray, np.ndarray]:
    """(clamped input units, output units) as N-long bool masks."""
    clamped = np.zeros(net.n, dtype=bool)
    outputs = np.ones(net.n, dtype=bool)
    if net.layered:
        parts = layer_slices(net.layers)
        clamped[parts[0]] = True
        outputs[:] = False
        outputs[parts[-1]] = True
    return clamped, outputs


def drive_for(net: NetworkConfig, x: np.ndarray) -> Drive:
    """The recall protocol of this project.

    Autoassociative (dense/band): the corrupted pattern x (+-1) is the initial state (in the
    activation's range) and a constant input current I = gain * x, as in the seeds. Layered:
    x holds the input layer's values, clamped; the other units start at the range's low end.
    """
    act = activations.get(net.activation)
    clamped, _ = units_of(net)
    batch = x.shape[0]
    if net.layered:
        n_in = net.layers[0]
        if x.shape[1] != n_in:
            raise ValueError(f"input has {x.shape[1]} values, the input layer has {n_in} units")
        v0 = np.zeros((batch, net.n))
        v0[:, :n_in] = x
        return Drive(v0=v0, current=np.zeros((batch, net.n)), clamped=clamped)
    if x.shape[1] != net.n:
        raise ValueError(f"pattern has {x.shape[1]} values, the network has {net.n} units")
    return Drive(v0=act.encode(x).astype(np.float64), current=net.input_gain * x.astype(np.float64), clamped=clamped)


def target_for(net: NetworkConfig, y: np.ndarray) -> Target:
    """Targets of the output units: +-1 patterns in the activation's range, or raw values."""
    _, outputs = units_of(net)
    act = activations.get(net.activation)
    values = np.zeros((y.shape[0], net.n))
    if net.layered:
        values[:, outputs] = y
    else:
        values[:] = act.encode(y)
    return Target(values=values, units=outputs)


def readout(net: NetworkConfig, v: np.ndarray) -> np.ndarray:
    """Binary +-1 reading of the output units: above the range's midpoint reads +1."""
    _, outputs = units_of(net)
    act = activations.get(net.activation)
    return np.where(v[:, outputs] > act.threshold, 1, -1).astype(np.int8)
