"""Classification with EqProp: the Frontiers MNIST experiment (Figure 5) on any `Task`.

A layered network (inputs, hidden layer(s), one output unit per class), symmetric weights
between adjacent layers only, hard sigmoid, v <- rho(v - eps dF/dv). Inputs are clamped;
the target is one-hot in [0, 1]; the prediction is the output unit with the largest state.
Training follows the seed (Frontiers 2020, after Scellier & Bengio 2017): each pattern in
turn, free phase and weakly clamped phase to convergence, eps = 0.5, beta = 1, per-layer
learning rates 0.1 and 0.05 halved after each epoch. In float, or with `numerics="fixed"`
as in-situ EqProp on the configured memristive devices (model/fixed.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from .config import Config
from . import fixed
from .fixed import (FixedDrive, FixedParams, FixedTarget, LearnStep, activation, exact_matmul, fixed_drive_for,
                    fixed_target_for)
from .masks import connectivity, layer_slices
from . import activations
from .network import Params, Relaxed, converge
from .numerics import Formats, round_shift
from .tasks import Task
from .training import decay_steps

#: Learning rates per weight layer. One hidden layer: the seed's (Frontiers / Scellier & Bengio 2017).
#: Two: Scellier & Bengio's (0.4, 0.1, 0.01) halved, since theirs average 20 samples per update and
#: diverge at the seed's one sample per update.
SEED_LAYER_LR = {1: (0.1, 0.05), 2: (0.2, 0.05, 0.005)}
DEFAULT_HIDDEN = {"digits": (100,), "mnist": (500,)}
DEFAULT_EPOCHS = 6
MONITOR = 100          # Figure 5: error on 100 random training and 100 random test patterns
MONITOR_SEED = 5       # which patterns (fixed: every epoch and every run see the same ones)
EVAL_CHUNK = 512       # samples relaxed together when evaluating


#: The classifier's read-out gain (device.w_scale) on coarse device pairs. A trained classifier's
#: weights stay close to their Glorot range (float 64-100-10 digits: 99 % within 0.33), so where
#: that range fits in [-0.25, 0.25] a pair preset with fewer than COARSE_LEVELS levels maps one
#: device unit to 0.25 instead of the preset's 0.5: steps half as large. In situ, seeds 0-2
#: (README, Classification): rram-nonlinear 0.9133 -> 0.9363, linear-64 0.9644 -> 0.9704;
#: linear-256 does not need it (0.972 at 0.5, 0.967 at 0.25). A narrow network (64-8-3: Glorot
#: limit 0.74) keeps 0.5: at 0.25 its weights clip (3 classes, 20 images: 0.60 instead of >= 0.8).
COARSE_LEVELS = 128
COARSE_PAIR_W_SCALE = 0.25


def glorot_pair_limit(fan_in: int, fan_out: int) -> float:
    """Glorot-uniform bound of one weight layer: W ~ U[-limit, +limit]."""
    return float(np.sqrt(6.0 / (fan_in + fan_out)))


def glorot_limit(layers: tuple[int, ...]) -> float:
    """The largest initial |w| of `initial_params` over all weight layers."""
    return max(glorot_pair_limit(a, b) for a, b in zip(layers[:-1], layers[1:]))


def classifier_device(device: dict | None, layers: tuple[int, ...]) -> dict:
    """The device section with the classifier's read-out gain for coarse pair presets, unless given."""
    from .device import PAIR_W_SCALE, get_preset

    device = dict(device or {})
    preset = get_preset(device.get("preset", "ideal"))
    levels = device.get("levels") or preset.levels
    if (device.get("w_scale") is None and preset.mode == "differential" and preset.w_scale == PAIR_W_SCALE
            and levels < COARSE_LEVELS and glorot_limit(layers) <= COARSE_PAIR_W_SCALE):
        device["w_scale"] = COARSE_PAIR_W_SCALE
    return device


def classifier_config(task: Task, hidden: tuple[int, ...] | None = None, *, epochs: int = DEFAULT_EPOCHS,
                      seed: int = 0, batch_size: int = 1, nudge: str = "positive",
                      layer_lr: tuple[float, ...] | None = None, lr_decay: float = 0.5, max_step: float = 0.03,
                      numerics: str = "float", device: dict | None = None, hw: dict | None = None,
                      fixed: dict | None = None) -> Config:
    """The seed's classifier for a task; every default is the Frontiers / Scellier-Bengio setting.

    batch_size 1: the seed updates the weights after each pattern. max_step bounds one update
    (float clip; in fixed point it sets the pulse limit, as everywhere in memprop).
    """
    hidden = tuple(DEFAULT_HIDDEN.get(task.name, (100,)) if hidden is None else hidden)
    if layer_lr is None and len(hidden) not in SEED_LAYER_LR:
        raise ValueError(f"default learning rates exist for 1 or 2 hidden layers, got {len(hidden)}: give layer_lr")
    layers = (task.features, *hidden, task.n_classes)
    rates = tuple(layer_lr) if layer_lr is not None else SEED_LAYER_LR[len(hidden)]
    network = {"n": sum(layers), "topology": "layered", "layers": layers, "activation": "hard_sigmoid",
               "dynamics": "bounded", "eps": 0.5, "max_steps": 100, "tol": 1e-3}
    train = {"algo": "eqprop", "epochs": epochs, "seed": seed, "batch_size": batch_size, "nudge": nudge,
             "beta": 1.0, "lr": rates[0], "layer_lr": rates, "lr_decay": lr_decay, "max_step": max_step,
             "shuffle": True}
    sections = {"numerics": numerics, "network": network, "train": train}
    if numerics == "fixed":
        from .device import in_situ_fixed

        device = classifier_device(device, layers)
        fixed = in_situ_fixed(device.get("preset"), fixed)
    for name, value in (("device", device), ("hw", hw), ("fixed", fixed)):
        if value:
            sections[name] = value
    return Config.create(**sections)


def initial_params(cfg: Config, rng: np.random.Generator) -> Params:
    """Glorot-uniform weights per layer, W ~ U[-sqrt(6 / (fan_in + fan_out)), +...], zero biases.

    Scellier & Bengio's initialisation; symmetric by construction, zero outside the mask.
    """
    net = cfg.network
    parts = layer_slices(net.layers)
    W = np.zeros((net.n, net.n))
    for below, above in zip(parts[:-1], parts[1:]):
        fan_in, fan_out = below.stop - below.start, above.stop - above.start
        limit = glorot_pair_limit(fan_in, fan_out)
        w = rng.uniform(-limit, limit, (fan_in, fan_out))
        W[below, above] = w
        W[above, below] = w.T
    return Params(W=W, b=np.zeros(net.n), mask=connectivity(net))


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    y = np.zeros((len(labels), classes))
    y[np.arange(len(labels)), labels] = 1.0
    return y


def layer_rates(cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """Float learning rate of every weight (N x N) and bias (N), by weight layer (numerics.md, sec. 5)."""
    fmt_layers = np.repeat(np.arange(len(cfg.network.layers)), cfg.network.layers)
    rates = np.array(cfg.train.layer_lr or (cfg.train.lr,) * (len(cfg.network.layers) - 1))
    lr_w = rates[np.minimum(np.minimum(fmt_layers[:, None], fmt_layers[None, :]), len(rates) - 1)]
    lr_b = np.where(fmt_layers > 0, rates[np.maximum(fmt_layers - 1, 0)], 0.0)
    return lr_w, lr_b


# -- the float model on a layered network, block by block ------------------------------------------------
#
# Same dynamics as network.relax and the same update as rules.eqprop_update (tests compare them),
# computed on the free units only: under the bounded dynamics every state stays in [lo, hi], so
# rho(v) = v and rho'(v) = 1, the clamped inputs' field is a constant per sample, and the EqProp
# correlations exist only between adjacent layers. With one sample per update this is ~3x faster.

def relax_layered(params: Params, net, x: np.ndarray, target: np.ndarray | None = None, beta: float = 0.0,
                  v_start: np.ndarray | None = None, max_steps: int | None = None) -> Relaxed:
    """Relax the free units of a layered, bounded, hard-activation network with inputs x clamped."""
    if not (net.layered and net.dynamics == "bounded" and net.activation != "tanh"):
        raise ValueError("relax_layered is for layered networks with bounded dynamics and a hard activation")
    act = activations.get(net.activation)
    n_in = net.layers[0]
    parts = [slice(p.start - n_in, p.stop - n_in) for p in layer_slices(net.layers)[1:]]   # free layers
    full = layer_slices(net.layers)
    drive = params.b[n_in:] + np.zeros((len(x), 1))
    drive[:, parts[0]] += x @ params.W[full[0], full[1]]
    up = [params.W[full[k], full[k + 1]] for k in range(1, len(full) - 1)]      # free layer k-1 -> k
    units = np.zeros(net.n - n_in, dtype=bool)
    units[parts[-1]] = True
    pull = None
    if target is not None and beta != 0.0:
        pull = np.zeros((len(x), net.n - n_in))
        pull[:, units] = target
    v = np.full((len(x), net.n - n_in), act.lo) if v_start is None else v_start[:, n_in:].astype(np.float64)
    eps, lo, hi = net.eps, act.lo, act.hi

    def update(active, va):
        field_ = drive[active].copy()
        for k, W in enumerate(up):                       # symmetric: each block feeds both ways
            field_[:, parts[k + 1]] += va[:, parts[k]] @ W
            field_[:, parts[k]] += va[:, parts[k + 1]] @ W.T
        grad = va - field_
        if pull is not None:
            grad = grad - beta * (pull[active] - va) * units
        return np.minimum(np.maximum(va - eps * grad, lo), hi)

    limit = net.max_steps if max_steps is None else max_steps
    r = converge(v, update, limit, net.tol)
    r.v = np.concatenate([x.astype(np.float64), r.v], axis=1)
    return r


@dataclass
class LayeredUpdate:
    dW: list[np.ndarray]       # per weight layer: (below, above) direction
    db: np.ndarray             # (N,), zero on the clamped inputs
    loss: float
    steps: float


def layered_eqprop_update(params: Params, cfg: Config, x: np.ndarray, y: np.ndarray,
                          rng: np.random.Generator) -> LayeredUpdate:
    """rules.eqprop_update for a layered network: free phase, nudged phase(s), contrast / beta."""
    net, tr = cfg.network, cfg.train
    parts = layer_slices(net.layers)
    free = relax_layered(params, net, x)
    beta = tr.beta
    if tr.nudge == "random_sign":
        beta = beta * rng.choice((-1.0, 1.0))
    if tr.nudge == "centered":
        hi = relax_layered(params, net, x, y, beta, v_start=free.v)
        lo = relax_layered(params, net, x, y, -beta, v_start=free.v)
        scale, extra = 2.0 * beta, lo.steps.mean()
    else:
        hi = relax_layered(params, net, x, y, beta, v_start=free.v)
        lo, scale, extra = free, beta, 0.0
    batch = len(x)
    dW = [(hi.v[:, a].T @ hi.v[:, b] - lo.v[:, a].T @ lo.v[:, b]) / (scale * batch)
          for a, b in zip(parts[:-1], parts[1:])]
    db = np.mean(hi.v - lo.v, axis=0) / scale
    db[parts[0]] = 0.0
    loss = 0.5 * np.sum((y - free.v[:, parts[-1]]) ** 2, axis=1).mean()
    return LayeredUpdate(dW, db, float(loss), float(free.steps.mean() + hi.steps.mean() + extra))


def fixed_relax_layered(fmt: Formats, W: np.ndarray, b: np.ndarray, drive: FixedDrive,
                        target: FixedTarget | None = None, sign: int = 0, v_start: np.ndarray | None = None,
                        max_steps: int | None = None) -> Relaxed:
    """fixed.fixed_relax for a layered network with hard activations, block by block: bit for bit the same.

    Integer sums are exact whatever their order, so the clamped inputs' part of every field is
    summed once per sample, and only blocks between adjacent free layers are multiplied per step.
    """
    net = fmt.cfg.network
    if not (net.layered and fmt.hard):
        raise ValueError("fixed_relax_layered is for layered networks with a hard activation")
    n_in = net.layers[0]
    full = layer_slices(net.layers)
    parts = [slice(p.start - n_in, p.stop - n_in) for p in full[1:]]
    a_in = activation(fmt, drive.v0[:, :n_in])
    const = (b[n_in:] << fmt.fa) + drive.x[:, n_in:] * fmt.g_in
    const[:, parts[0]] += exact_matmul(a_in, W[full[0], full[1]])
    up = [W[full[k], full[k + 1]].astype(np.float64) for k in range(1, len(full) - 1)]
    units = np.zeros(net.n - n_in, dtype=bool)
    units[parts[-1]] = True
    pull = None
    if target is not None and sign != 0:
        pull = (target.values[:, n_in:] * units) << (fmt.s + fmt.k_mul)
    start = drive.v0 if v_start is None else v_start
    v = start[:, n_in:].astype(np.int64, copy=True)
    lo, hi, s_k, kf, k_mul, R = fmt.lo, fmt.hi, fmt.s + fmt.k_frac, fmt.k_frac, fmt.s + fmt.k_mul, fmt.round_shift

    def update(active, va):
        acc = const[active].astype(np.float64)
        af = va.astype(np.float64)                         # hard activation: a = v
        for k, Wk in enumerate(up):
            acc[:, parts[k + 1]] += af[:, parts[k]] @ Wk
            acc[:, parts[k]] += af[:, parts[k + 1]] @ Wk.T
        g = np.rint(acc).astype(np.int64)
        r = (g << kf) - (va << s_k)
        if pull is not None:
            r = r + sign * (pull[active] - ((va * units) << k_mul))
        return np.minimum(np.maximum(va + round_shift(r, R), lo), hi)     # np.clip's checks cost more

    limit = net.max_steps if max_steps is None else max_steps
    out = converge(v, update, limit, fmt.cfg.fixed.tol_lsb)
    out.v = np.concatenate([start[:, :n_in].astype(np.int64), out.v], axis=1)
    return out


def fixed_layered_update(fmt: Formats, params: FixedParams, drive: FixedDrive, target: FixedTarget,
                         decay_steps: int = 0) -> tuple[LearnStep, dict]:
    """fixed.eqprop_fixed_update with the layered relaxation: the same phases, the same learn()."""
    return fixed.eqprop_fixed_update(fmt, params, drive, target, decay_steps, relax=fixed_relax_layered)


# -- prediction and evaluation -------------------------------------------------------------------------

def predict(params: Params | FixedParams, cfg: Config, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, relaxation steps) per sample: argmax of the output units' free fixed point."""
    out = layer_slices(cfg.network.layers)[-1]
    preds, steps = [], []
    fmt = Formats(cfg) if cfg.numerics == "fixed" else None
    if fmt is not None:
        W, b = params.weights(fmt.device)
    for start in range(0, len(x), EVAL_CHUNK):
        chunk = x[start:start + EVAL_CHUNK]
        if fmt is None:
            r = relax_layered(params, cfg.network, chunk)
        else:
            r = fixed_relax_layered(fmt, W, b, fixed_drive_for(fmt, chunk))
        preds.append(np.argmax(r.v[:, out], axis=1))
        steps.append(r.steps)
    return np.concatenate(preds), np.concatenate(steps)


@dataclass
class ClassResult:
    accuracy: float
    error_rate: float
    per_class: list[float]            # accuracy (recall) of each class
    confusion: list[list[int]]        # confusion[true][predicted]
    samples: int
    mean_steps: float

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "error_rate": self.error_rate, "per_class": self.per_class,
                "confusion": self.confusion, "samples": self.samples, "mean_steps": self.mean_steps}


def evaluate(params: Params | FixedParams, cfg: Config, x: np.ndarray, y: np.ndarray, classes: int) -> ClassResult:
    pred, steps = predict(params, cfg, x)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    totals = confusion.sum(axis=1)
    per_class = np.where(totals > 0, np.diag(confusion) / np.maximum(totals, 1), np.nan)
    accuracy = float(np.mean(pred == y)) if len(y) else float("nan")
    return ClassResult(accuracy, float(np.mean(pred != y)) if len(y) else float("nan"), [float(v) for v in per_class], confusion.tolist(), len(y),
                       float(np.mean(steps)) if len(steps) else 0.0)


# -- training ------------------------------------------------------------------------------------------

@dataclass
class History:
    """Per epoch: mean free-phase cost, relaxation steps, and Figure 5's monitored error rates."""

    loss: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)          # 0 = before training
    train_error: list[float] = field(default_factory=list)   # on MONITOR random training patterns
    test_error: list[float] = field(default_factory=list)    # on MONITOR random test patterns
    monitor: dict = field(default_factory=dict)               # which patterns

    def to_dict(self) -> dict:
        return {"loss": self.loss, "steps": self.steps, "epochs": self.epochs, "train_error": self.train_error,
                "test_error": self.test_error, "monitor": self.monitor}


def monitor_indices(task: Task, size: int = MONITOR, seed: int = MONITOR_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Figure 5's patterns: `size` random training and `size` random test indices, fixed by the seed."""
    r = np.random.default_rng(seed)
    pick = lambda n: np.sort(r.choice(n, min(size, n), replace=False))  # noqa: E731
    return pick(len(task.y_train)), pick(len(task.y_test))


EpochCallback = Callable[[int, object], None]


def train_classifier(cfg: Config, task: Task, *, progress: bool = True, monitor: int = MONITOR,
                     on_epoch: EpochCallback | None = None) -> tuple[Params | FixedParams, History]:
    """Train from the seeded initial weights; the samples are shuffled every epoch (seeded)."""
    net, tr = cfg.network, cfg.train
    if not net.layered or net.layers[0] != task.features or net.layers[-1] != task.n_classes:
        raise ValueError(f"config layers {net.layers} do not fit the task ({task.features} inputs, "
                         f"{task.n_classes} classes)")
    rng = np.random.default_rng(tr.seed)
    params = initial_params(cfg, rng)
    targets = one_hot(task.y_train, task.n_classes)
    history = History()
    mon_train, mon_test = monitor_indices(task, monitor) if monitor else (np.zeros(0, int), np.zeros(0, int))
    history.monitor = {"size": monitor, "seed": MONITOR_SEED, "train": mon_train.tolist(), "test": mon_test.tolist()}
    if cfg.numerics == "fixed":
        fmt = Formats(cfg)
        params = FixedParams.from_float(cfg, params.W, params.b)
        update = _fixed_step(fmt, params)
    else:
        update = _float_step(cfg, params, rng)

    def record(epoch: int) -> None:
        history.epochs.append(epoch)
        if monitor:
            history.train_error.append(evaluate(params, cfg, task.x_train[mon_train], task.y_train[mon_train],
                                                task.n_classes).error_rate)
            history.test_error.append(evaluate(params, cfg, task.x_test[mon_test], task.y_test[mon_test],
                                               task.n_classes).error_rate)

    record(0)
    desc = f"{task.name} {'x'.join(map(str, net.layers))} {cfg.numerics}"
    if cfg.numerics == "fixed":
        desc += f" {cfg.device.preset}"
    bar = tqdm(range(1, tr.epochs + 1), desc=desc, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        order = rng.permutation(len(task.y_train)) if tr.shuffle else np.arange(len(task.y_train))
        losses, steps = [], []
        for start in range(0, len(order), tr.batch_size):
            idx = order[start:start + tr.batch_size]
            loss, n_steps = update(task.x_train[idx], targets[idx], decay_steps(cfg, epoch))
            losses.append(loss)
            steps.append(n_steps)
        history.loss.append(float(np.mean(losses)))
        history.steps.append(float(np.mean(steps)))
        record(epoch)
        if monitor:
            bar.set_postfix(train_err=f"{history.train_error[-1]:.2f}", test_err=f"{history.test_error[-1]:.2f}")
        if on_epoch is not None:
            on_epoch(epoch, params)
    return params, history


def _float_step(cfg: Config, params: Params, rng: np.random.Generator):
    net, tr = cfg.network, cfg.train
    parts = layer_slices(net.layers)
    rates = cfg.train.layer_lr or (cfg.train.lr,) * (len(parts) - 1)
    _, lr_b = layer_rates(cfg)

    def step(x: np.ndarray, y: np.ndarray, decay_steps: int) -> tuple[float, float]:
        u = layered_eqprop_update(params, cfg, x, y, rng)
        decay = tr.lr_decay ** decay_steps
        for below, above, rate, dW in zip(parts[:-1], parts[1:], rates, u.dW):
            delta = np.clip(decay * rate * dW, -tr.max_step, tr.max_step)
            params.W[below, above] += delta
            params.W[above, below] += delta.T                   # symmetric by construction
        params.b += np.clip(decay * lr_b * u.db, -tr.max_step, tr.max_step)
        return u.loss, u.steps

    return step


def _fixed_step(fmt: Formats, params: FixedParams):
    def step(x: np.ndarray, y: np.ndarray, decay_steps: int) -> tuple[float, float]:
        _, info = fixed_layered_update(fmt, params, fixed_drive_for(fmt, x), fixed_target_for(fmt, y), decay_steps)
        return info["loss"], info["steps"]

    return step
