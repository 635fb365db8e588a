"""Bit-exact verification of the engine against the fixed-point model, for any transport.

A `Case` is a configuration, initial device codes and a minibatch, all from one seed. The
model's expectation holds every relaxation step of every phase and the device codes after
learning; `check_case` drives the engine through the same phases and raises `Mismatch` at
the first differing step, neuron and value. The Amaranth simulator tests, the cocotb
testbenches and `memprop sim` all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memprop.model import fixed, rng
from memprop.model import patterns as pattern_sets
from memprop.model.training import epoch_samples
from memprop.model.config import Config, ConfigError
from memprop.model.device import PRESETS
from memprop.model.network import Params
from memprop.model.numerics import Formats

from . import hostmap as hm
from .driver import EngineDriver


class Mismatch(AssertionError):
    """The engine differs from the model; the message names the first difference."""


@dataclass
class Case:
    cfg: Config
    seed: int
    params: fixed.FixedParams
    drive: fixed.FixedDrive
    target: fixed.FixedTarget

    @property
    def fmt(self) -> Formats:
        return Formats(self.cfg)


@dataclass
class Expected:
    traces: dict = field(default_factory=dict)   # (sample, phase) -> list of states after each step
    params: fixed.FixedParams | None = None       # device codes after LEARN
    pulses: fixed.LearnStep | None = None


def random_config(seed: int, max_n: int = 16, max_lanes: int = 8) -> Config:
    """A small random configuration spanning every option the engine supports."""
    for attempt in range(100):
        try:
            return _random_config(np.random.default_rng([seed, attempt]), max_n, max_lanes)
        except ConfigError:
            continue
    raise RuntimeError(f"no valid random config for seed {seed}")


def _random_config(r: np.random.Generator, max_n: int, max_lanes: int) -> Config:
    topology = r.choice(["dense", "band", "layered"], p=[0.4, 0.3, 0.3])
    n = int(r.integers(4, max_n + 1))
    network = {"n": n, "max_steps": int(r.integers(8, 25)), "eps": float(r.choice([0.5, 0.25])),
               "activation": str(r.choice(["hard_tanh", "hard_sigmoid", "tanh"], p=[0.5, 0.25, 0.25])),
               "self_connections": bool(r.random() < 0.2)}
    network["dynamics"] = "euler" if network["activation"] == "tanh" else "bounded"
    if topology == "band":
        network.update(topology="band", band=int(r.integers(1, max(2, n - 1))))
    elif topology == "layered":
        n_in = int(r.integers(1, n - 2))
        n_out = int(r.integers(1, n - n_in))
        hidden = n - n_in - n_out
        network.update(topology="layered", layers=tuple(x for x in (n_in, hidden, n_out) if x > 0))
        network["self_connections"] = False
    preset = str(r.choice(sorted(PRESETS)))
    device = {"preset": preset, "levels": int(r.choice([16, 32, 64, 128])) if preset != "ideal" else None,
              "d2d_classes": int(r.choice([1, 2, 4])), "d2d": float(r.choice([0.0, 0.1])),
              "c2c": [None, 0.0, 0.05][int(r.integers(0, 3))], "stuck": float(r.choice([0.0, 0.15, 0.4])),
              "stuck_high": float(r.choice([0.0, 0.5, 1.0]))}
    fixed_ = {"state_frac": int(r.integers(4, 9)), "weight_frac": int(r.integers(6, 11)),
              "rounding": str(r.choice(["stochastic", "nearest", "truncate"])), "tol_lsb": int(r.choice([0, 0, 1]))}
    train = {"batch_size": int(r.integers(1, 4)), "beta": float(r.choice([1.0, 0.5, 2.0])),
             "nudge": str(r.choice(["positive", "centered", "random_sign"])), "lr": float(r.choice([0.05, 0.2, 0.5])),
             "max_step": float(r.choice([0.02, 0.05])), "seed": int(r.integers(0, 2**31))}
    return Config.for_algorithm("eqprop", network=network, train=train, numerics="fixed", fixed=fixed_,
                                device=device, hw={"lanes": int(r.integers(1, max_lanes + 1))})


def make_case(cfg: Config, seed: int) -> Case:
    """Random initial weights (programmed into devices), inputs and targets."""
    r = np.random.default_rng(seed)
    fmt = Formats(cfg)
    net = cfg.network
    init = Params.initial(net, 0.4, r)
    params = fixed.FixedParams.from_float(cfg, init.W, r.uniform(-0.3, 0.3, net.n))
    params.updates = int(r.integers(0, 1000))
    if fmt.device.stuck_classes and r.random() < 0.5:
        # stuck devices at any code (programming leaves them at L-1): LEARN must keep every one
        top = fmt.device.levels
        stuck_w, stuck_b = fmt.device.is_stuck(params.class_w), fmt.device.is_stuck(params.class_b)
        codes_w = np.where(stuck_w, r.integers(0, top, params.codes_w.shape), params.codes_w)
        params.codes_w = np.triu(codes_w) + np.swapaxes(np.triu(codes_w, 1), -1, -2)
        params.codes_b = np.where(stuck_b, r.integers(0, top, params.codes_b.shape), params.codes_b)
    batch = cfg.train.batch_size
    if net.layered:
        x = r.uniform(0.0, 1.0, (batch, net.layers[0]))
        y = r.uniform(0.0, 1.0, (batch, net.layers[-1])) if fmt.lo >= 0 else r.uniform(-1, 1, (batch, net.layers[-1]))
    else:
        x = np.where(r.random((batch, net.n)) < 0.5, 1, -1)
        y = np.where(r.random((batch, net.n)) < 0.5, 1, -1)
    return Case(cfg, seed, params, fixed.fixed_drive_for(fmt, x), fixed.fixed_target_for(fmt, y))


def expected(case: Case) -> Expected:
    """The model's every step (per sample: batch-independent) and the codes after learning."""
    fmt, cfg = case.fmt, case.cfg
    W, b = case.params.weights(fmt.device)
    exp = Expected()
    sign = 1
    if cfg.train.nudge == "random_sign":
        n = cfg.network.n
        sign = 1 if int(rng.rand(cfg.train.seed, case.params.updates, n * n + n, 0)) >> 31 else -1
    for s in range(case.drive.v0.shape[0]):
        one = fixed.FixedDrive(case.drive.v0[s:s + 1], case.drive.x[s:s + 1], case.drive.clamped)
        tgt = fixed.FixedTarget(case.target.values[s:s + 1], case.target.units)
        free = fixed.fixed_relax(fmt, W, b, one, trace=True)
        exp.traces[(s, "free")] = [v[0] for v in free.trace[1:]]
        signs = [("plus", 1), ("minus", -1)] if cfg.train.nudge == "centered" else \
            [("plus" if sign > 0 else "minus", sign)]
        for name, sg in signs:
            nudged = fixed.fixed_relax(fmt, W, b, one, tgt, sg, v_start=free.v, trace=True)
            exp.traces[(s, name)] = [v[0] for v in nudged.trace[1:]]
    exp.params = case.params.copy()
    exp.pulses, _ = fixed.eqprop_fixed_update(fmt, exp.params, case.drive, case.target)
    return exp


def first_difference(got: np.ndarray, want: np.ndarray) -> int | None:
    diff = np.nonzero(np.asarray(got) != np.asarray(want))[0]
    return int(diff[0]) if diff.size else None


def compare_codes(case: Case, got: fixed.FixedParams, want: fixed.FixedParams) -> None:
    mask = case.params.mask
    bad = np.argwhere((got.codes_w != want.codes_w) & mask[None])
    if bad.size:
        d, i, j = (int(v) for v in bad[0])
        raise Mismatch(f"after LEARN: device {d} of synapse ({i}, {j}): rtl code {got.codes_w[d, i, j]}, "
                       f"model {want.codes_w[d, i, j]} (was {case.params.codes_w[d, i, j]}); "
                       f"{len(bad)} codes differ")
    rows = ~case.drive.clamped
    bad = np.argwhere((got.codes_b != want.codes_b) & rows[None])
    if bad.size:
        d, i = (int(v) for v in bad[0])
        raise Mismatch(f"after LEARN: device {d} of bias {i}: rtl code {got.codes_b[d, i]}, "
                       f"model {want.codes_b[d, i]} (was {case.params.codes_b[d, i]})")
    if got.updates != want.updates:
        raise Mismatch(f"update counter: rtl {got.updates}, model {want.updates}")


async def check_case(driver: EngineDriver, case: Case, exp: Expected | None = None) -> dict:
    """Run the case on the engine, comparing every step; returns cycle counts and step counts."""
    exp = exp or expected(case)
    await driver.check_identity()
    await driver.load_params(case.params)
    seen = {}

    def observe(sample, phase, step, v):
        trace = exp.traces[(sample, phase)]
        if step > len(trace):
            raise Mismatch(f"sample {sample}, {phase} phase: rtl still relaxing at step {step}, "
                           f"model converged after {len(trace)} steps")
        i = first_difference(v, trace[step - 1])
        if i is not None:
            raise Mismatch(f"sample {sample}, {phase} phase, step {step}, neuron {i}: rtl v={int(v[i])}, "
                           f"model v={int(trace[step - 1][i])}")
        seen[(sample, phase)] = step

    phases = await driver.train_minibatch(case.drive, case.target, case.params.updates, observe=observe)
    from . import cycles

    sch = driver.layout.schedule
    for phase in ("free", "hi", "lo"):
        for r in phases[phase]:
            want = r.steps * cycles.relax_cycles(sch, 1)      # one STEP command per step
            if r.cycles != want:
                raise Mismatch(f"cycle counter: {r.steps} STEP commands took {r.cycles} cycles, "
                               f"the cycle model says {want}")
    want = cycles.learn_cycles(sch, exp.pulses.pulses_w, exp.pulses.pulses_b)
    if phases["learn_cycles"] != want:
        raise Mismatch(f"cycle counter: LEARN took {phases['learn_cycles']} cycles, the cycle model says {want}")
    for key, trace in exp.traces.items():
        if seen.get(key) != len(trace):
            raise Mismatch(f"sample {key[0]}, {key[1]} phase: rtl stopped after {seen.get(key)} steps, "
                           f"model after {len(trace)}")
    got = await driver.read_params(case.params)
    compare_codes(case, got, exp.params)
    return {"steps": {f"{k[0]}/{k[1]}": v for k, v in seen.items()}, "learn_cycles": phases["learn_cycles"],
            "step_cycles": [r.cycles for r in phases["free"]],
            "pulses": int(np.abs(exp.pulses.pulses_w).sum() + np.abs(exp.pulses.pulses_b).sum())}


def _fixed_points_agree(what: str, got, model: fixed.FixedRelaxed, index: int) -> None:
    i = first_difference(got.v, model.v[index])
    if i is not None:
        raise Mismatch(f"{what}: neuron {i}: rtl v={int(got.v[i])}, model v={int(model.v[index][i])}")
    if got.steps != int(model.steps[index]):
        raise Mismatch(f"{what}: rtl took {got.steps} steps, model {int(model.steps[index])}")


def trained_start(cfg: Config) -> tuple[np.random.Generator, fixed.FixedParams]:
    """The training run's random stream and initial devices, exactly as model.training does."""
    r = np.random.default_rng(cfg.train.seed)
    init = Params.initial(cfg.network, cfg.train.init_scale, r)
    return r, fixed.FixedParams.from_float(cfg, init.W, init.b)


async def check_training(driver: EngineDriver, cfg: Config, workload: dict) -> dict:
    """In-situ training on a pattern set: every fixed point and, per epoch, every device code."""
    fmt = Formats(cfg)
    pats = pattern_sets.load(workload.get("patterns"))
    r, params = trained_start(cfg)
    await driver.check_identity()
    await driver.load_params(params)
    batches = 0
    limit = workload.get("minibatches")
    for epoch in range(workload.get("epochs", 1)):
        inputs, targets = epoch_samples(cfg, pats.values, r)
        for start in range(0, len(inputs), cfg.train.batch_size):
            if limit is not None and batches >= limit:
                break
            drive = fixed.fixed_drive_for(fmt, inputs[start:start + cfg.train.batch_size])
            target = fixed.fixed_target_for(fmt, targets[start:start + cfg.train.batch_size])
            W, b = params.weights(fmt.device)
            free = fixed.fixed_relax(fmt, W, b, drive)
            phases = await driver.train_minibatch(drive, target, params.updates)
            for s, got in enumerate(phases["free"]):
                _fixed_points_agree(f"epoch {epoch}, minibatch {batches}, sample {s}, free phase", got, free, s)
            fixed.eqprop_fixed_update(fmt, params, drive, target)
            batches += 1
        got = await driver.read_params(params)
        try:
            compare_codes(Case(cfg, 0, params, drive, target), got, params)
        except Mismatch as exc:
            raise Mismatch(f"after epoch {epoch}: {exc}") from None
    return {"minibatches": batches, "updates": params.updates}


async def check_recall(driver: EngineDriver, cfg: Config, workload: dict) -> dict:
    """Recall of corrupted patterns with weights trained by the model: every fixed point."""
    fmt = Formats(cfg)
    pats = pattern_sets.load(workload.get("patterns"))
    if workload.get("weights"):
        from memprop.model import weights

        params, wcfg, _ = weights.load(workload["weights"])
        if wcfg.fingerprint != cfg.fingerprint:
            raise ValueError(f"{workload['weights']}: weights for config {wcfg.fingerprint}, engine is {cfg.fingerprint}")
    else:
        from memprop.model.training import train

        params, _ = train(cfg.replace(train={"epochs": workload.get("epochs", 30)}), pats, progress=False)
    await driver.check_identity()
    await driver.load_params(params)
    r = np.random.default_rng(workload.get("seed", 0))
    clean = np.repeat(pats.values, workload.get("trials", 1), axis=0)
    noisy = pattern_sets.corrupt(clean, workload.get("flip", 0.1), r)
    drive = fixed.fixed_drive_for(fmt, noisy)
    W, b = params.weights(fmt.device)
    model = fixed.fixed_relax(fmt, W, b, drive)
    results = await driver.recall(drive)
    cycles = 0
    for s, got in enumerate(results):
        _fixed_points_agree(f"recall sample {s}", got, model, s)
        cycles += got.cycles
    correct = np.all(fixed.fixed_readout(fmt, model.v) == clean, axis=1)
    return {"samples": len(results), "accuracy": float(correct.mean()), "relax_cycles": cycles}
