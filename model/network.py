"""Float reference network: parameters, what the environment imposes, and relaxation.

Everything is vectorised over a batch of states (B x N). Each sample stops at its own
convergence (max|dv| <= tol), so a converged sample is frozen while the others go on.

Does a sample's trajectory depend on the batch it runs in? Mathematically no; in floating
point only through the matrix product: OpenBLAS computes the last row of an odd-sized
product with another kernel than the rows it computes in pairs (different rounding), and
with several threads it splits the rows by thread. The fast relaxation therefore pads an
odd active batch with a zero row and the model runs BLAS on one thread (`one_blas_thread`):
on a given BLAS kernel, a sample's trajectory is then the same in any batch, chunk, number
of worker processes or BLAS threads (tests/model/test_determinism.py checks this). Across
CPUs OpenBLAS picks other kernels, so results may differ in the last bits from machine to
machine; they never differ from run to run.
"""

from __future__ import annotations

from contextlib import contextmanager
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

    The one iteration of the float and fixed-point models: a converged sample is frozen (the
    others go on); clamped units never move. `v` is updated in place. The active states are
    kept compacted and `active` is a new array only when a sample freezes, so `update` may
    cache what it gathers for `active` (see `cached_rows`). Same steps, same results as
    `converge_reference`, the loop that gathered and scattered the active rows every step.
    """
    batch = v.shape[0]
    steps = np.zeros(batch, dtype=np.int64)
    active = np.arange(batch)
    va = v.copy()
    states = [v.copy()] if trace else None
    pinned = clamped is not None and bool(clamped.any())
    done = 0
    for it in range(limit):
        if active.size == 0:
            break
        vn = update(active, va)
        if pinned:
            vn[:, clamped] = va[:, clamped]
        delta = _max_reduce(np.abs(vn - va), axis=1) if vn.shape[1] else np.zeros(len(active))
        va = vn
        done = it + 1
        if trace:
            v[active] = va
            states.append(v.copy())
        going = delta > tol
        if not going.all():
            v[active[~going]] = va[~going]
            steps[active[~going]] = done
            active, va = active[going], va[going]
    v[active] = va
    steps[active] = done
    converged = np.ones(batch, dtype=bool)
    converged[active] = False
    return Relaxed(v=v, steps=steps, converged=converged, trace=states)


def cached_rows(*arrays):
    """`rows(active)` -> the arrays' rows for `active`, gathered again only when `active` changes."""
    memo = {"key": None, "rows": None}

    def rows(active):
        if memo["key"] is not active:
            memo["key"], memo["rows"] = active, tuple(None if a is None else a[active] for a in arrays)
        return memo["rows"]

    return rows


def converge_reference(v: np.ndarray, update, limit: int, tol: float, clamped: np.ndarray | None = None,
                       trace: bool = False) -> Relaxed:
    """The original loop (gathers and scatters the active rows every step), for the reference kernel."""
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
    if _KERNEL["name"] != "reference" and _box_relaxation_applies(net, drive, target, v):
        return _relax_in_box(params, net, v, drive.current, target, beta, limit, pad=_KERNEL["name"] == "fast")

    v[:, drive.clamped] = drive.v0[:, drive.clamped]
    if _KERNEL["name"] == "reference":
        def update(active, va):
            sub_target = None if target is None else Target(target.values[active], target.units)
            return step(params, net, va, drive.current[active], sub_target, beta)

        return converge_reference(v, update, limit, net.tol, drive.clamped)
    rows = cached_rows(drive.current, None if target is None else target.values)

    def update_cached(active, va):
        current, values = rows(active)
        return step(params, net, va, current, None if target is None else Target(values, target.units), beta)

    return converge(v, update_cached, limit, net.tol, drive.clamped)


# -- the fast relaxation ------------------------------------------------------------------------

#: "fast": the in-box relaxation below with odd batches padded (the default); "fast-unpadded": the
#: same without padding, bit-identical to "reference", the original `converge`/`step` loop (kept
#: for `memprop bench` and the tests that prove the two agree).
KERNELS = ("fast", "fast-unpadded", "reference")
_KERNEL = {"name": "fast"}


@contextmanager
def one_blas_thread():
    """Run the block's matrix products on one BLAS thread: OpenBLAS splits a product's rows among
    its threads, and a row's rounding depends on that split (see the module docstring)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@contextmanager
def relaxation_kernel(name: str):
    """Run the float relaxations inside the block with another kernel (benchmarks, tests)."""
    if name not in KERNELS:
        raise ValueError(f"unknown relaxation kernel {name!r}; choose one of {KERNELS}")
    saved = _KERNEL["name"]
    _KERNEL["name"] = name
    try:
        yield
    finally:
        _KERNEL["name"] = saved


def _box_relaxation_applies(net: NetworkConfig, drive: Drive, target: Target | None, v: np.ndarray) -> bool:
    """Bounded dynamics of a hard activation, nothing clamped, v in the box."""
    if net.dynamics != "bounded" or net.activation == "tanh" or drive.clamped.any():
        return False
    act = activations.get(net.activation)
    return v.size == 0 or (v.min() >= act.lo and v.max() <= act.hi)


_clip = np._core.umath.clip if hasattr(np, "_core") else np.core.umath.clip  # the ufunc, no wrapper
_max_reduce = np.maximum.reduce


def _relax_in_box(params: Params, net: NetworkConfig, v: np.ndarray, current: np.ndarray, target: Target | None,
                  beta: float, limit: int, pad: bool) -> Relaxed:
    """`converge` over `step` for the hard activations, the same operations in the same order.

    Inside the box rho(v) = v and rho'(v) = 1 exactly, so they are dropped; the active batch is
    compacted only when a sample freezes (not copied in and out every step); the clip ufunc is
    called directly. With `pad`, an odd batch gets a zero row so that every matrix product has
    an even number of rows (see the module docstring), and as a row's result then does not
    depend on its batch, frozen rows stay in it until half of them are frozen.
    """
    act = activations.get(net.activation)
    lo, hi, eps, tol = act.lo, act.hi, net.eps, net.tol
    batch, n = v.shape
    nudged = target is not None and beta != 0.0
    units = None if not nudged or target.units.all() else target.units
    steps = np.zeros(batch, dtype=np.int64)
    idx = np.arange(batch)
    va, cur = v, np.asarray(current, dtype=np.float64)
    tv = target.values if nudged else None
    va, cur, tv, real = _compact(va, cur, tv, None, pad)
    live = np.ones(real, dtype=bool)                            # rows of va still relaxing
    done = 0
    for it in range(limit):
        if real == 0:
            break
        field_ = va @ params.W
        field_ += params.b
        field_ += cur
        grad = np.subtract(va, field_, out=field_)             # v - rho'(v) * field, rho' = 1
        if nudged:
            pull = np.subtract(tv, va)
            if beta != 1.0:                                     # x * 1.0 == x: skip it
                pull *= beta
            if units is not None:                               # hidden units feel no target
                pull *= units
            grad -= pull
        grad *= eps
        vn = np.subtract(va, grad, out=grad)
        _clip(vn, lo, hi, out=vn)
        moved = np.subtract(vn, va)
        np.abs(moved, out=moved)
        delta = _max_reduce(moved, axis=1) if n else np.zeros(len(vn))
        va = vn
        done = it + 1
        going = delta[:real] > tol
        if pad:
            # Rows are independent of their batch (even products): a frozen row may stay in the
            # batch (its later values are ignored); compact only when half the rows are frozen.
            going &= live
            if (going != live).any():
                frozen = live & ~going
                v[idx[frozen]] = va[:real][frozen]
                steps[idx[frozen]] = done
                live = going
                if 2 * int(live.sum()) <= real:
                    idx = idx[live]
                    va, cur, tv, real = _compact(va[:real], cur[:real], None if tv is None else tv[:real], live, pad)
                    live = np.ones(real, dtype=bool)
        elif not going.all():                                   # some sample converged
            frozen = idx[~going]
            v[frozen] = va[:real][~going]
            steps[frozen] = done
            idx = idx[going]
            va, cur, tv, real = _compact(va[:real], cur[:real], None if tv is None else tv[:real], going, pad)
    if pad:                                                     # the rows still relaxing at the limit
        idx, va = idx[live], va[:real][live]
        real = len(idx)
    v[idx] = va[:real]
    steps[idx] = done
    converged = np.ones(batch, dtype=bool)
    converged[idx] = False
    return Relaxed(v=v, steps=steps, converged=converged)


def _compact(va, cur, tv, keep, pad):
    """Keep the rows in `keep` (None: all); with `pad`, append a zero row to an odd count."""
    if keep is not None:
        va, cur = va[keep], cur[keep]
        tv = None if tv is None else tv[keep]
    real = len(va)
    if pad and real % 2:
        zero = np.zeros((1, va.shape[1]))
        va, cur = np.vstack((va, zero)), np.vstack((cur, zero))
        tv = None if tv is None else np.vstack((tv, zero))
    elif keep is None:
        va = va.copy()
    return va, cur, tv, real


# -- how data enters the network --------------------------------------------------------------

def units_of(net: NetworkConfig) -> tuple[np.ndarray, np.ndarray]:
    """(clamped input units, output units) as N-long bool masks."""
    clamped = np.zeros(net.n, dtype=bool)
    outputs = np.ones(net.n, dtype=bool)
    outputs[:net.hidden] = False                      # hidden units come first, the pattern after them
    if net.layered:
        parts = layer_slices(net.layers)
        clamped[parts[0]] = True
        outputs[:] = False
        outputs[parts[-1]] = True
    return clamped, outputs


def drive_for(net: NetworkConfig, x: np.ndarray, rng: np.random.Generator | None = None) -> Drive:
    """The recall protocol of this project.

    Autoassociative (dense/band): a constant input current I = gain * x, as in the seeds, and
    the initial state `net.init_state`: the corrupted pattern x (+-1) itself, in the activation's
    range (memprop), v(0) = 0.5 (ICECS 2019) or uniform over the range (Frontiers 2020, drawn
    from `rng`). Layered: x holds the input layer's values, clamped; the other units start at
    the range's low end.
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
    if x.shape[1] != net.pattern_units:
        raise ValueError(f"pattern has {x.shape[1]} values, the network has {net.pattern_units} pattern units")
    h = net.hidden
    current = np.zeros((batch, net.n))
    current[:, h:] = net.input_gain * x.astype(np.float64)
    v0 = np.full((batch, net.n), act.threshold)       # hidden units start in the middle of the range
    if net.init_state == "half":
        v0[:, h:] = 0.5
    elif net.init_state == "random":
        if rng is None:
            raise ValueError("init_state='random' needs a random generator for the initial states")
        v0[:, h:] = rng.uniform(act.lo, act.hi, x.shape)
    else:
        v0[:, h:] = act.encode(x)
    return Drive(v0=v0, current=current, clamped=clamped)


def target_for(net: NetworkConfig, y: np.ndarray) -> Target:
    """Targets of the output units: +-1 patterns in the activation's range, or raw values."""
    _, outputs = units_of(net)
    act = activations.get(net.activation)
    values = np.zeros((y.shape[0], net.n))
    if net.layered:
        values[:, outputs] = y
    else:
        values[:, net.hidden:] = act.encode(y)
    return Target(values=values, units=outputs)


def readout(net: NetworkConfig, v: np.ndarray) -> np.ndarray:
    """Binary +-1 reading of the output units: above the range's midpoint reads +1."""
    _, outputs = units_of(net)
    act = activations.get(net.activation)
    return np.where(v[:, outputs] > act.threshold, 1, -1).astype(np.int8)
