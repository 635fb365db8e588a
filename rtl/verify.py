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

from memprop.model import fixed
from memprop.model import patterns as pattern_sets
from memprop.model.training import epoch_samples
from memprop.model.config import Config, ConfigError
from memprop.model.device import PRESETS
from memprop.model.network import Params
from memprop.model.numerics import Formats

from . import hostmap as hm
from .driver import EngineDriver
from .learnplan import LearnPlan


class Mismatch(AssertionError):
    """The engine differs from the model; the message names the first difference."""


@dataclass
class Case:
    cfg: Config
    seed: int
    params: fixed.FixedParams
    drive: fixed.FixedDrive
    target: fixed.FixedTarget
    decay_steps: int = 0          # epochs of learning-rate decay before this update (train.lr_decay)

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
              "rounding": str(r.choice(["stochastic", "nearest", "truncate", "carry"])), "tol_lsb": int(r.choice([0, 0, 1]))}
    train = {"batch_size": int(r.integers(1, 4)), "beta": float(r.choice([1.0, 0.5, 2.0])),
             "nudge": str(r.choice(["positive", "centered", "random_sign"])), "lr": float(r.choice([0.05, 0.2, 0.5])),
             "max_step": float(r.choice([0.02, 0.05])), "seed": int(r.integers(0, 2**31))}
    lanes = int(r.integers(1, max_lanes + 1))
    if topology == "layered" and r.random() < 0.5:     # per-layer rates and their decay (drawn last)
        train["layer_lr"] = tuple(float(r.choice([0.05, 0.2, 0.5])) for _ in network["layers"][1:])
        train["lr_decay"] = float(r.choice([1.0, 0.5, 0.25]))
    cfg = Config.for_algorithm("eqprop", network=network, train=train, numerics="fixed", fixed=fixed_,
                               device=device, hw={"lanes": lanes})
    # two or four Threefry pipelines where they can serve (drawn after everything else: the configs
    # of earlier campaigns stay as they were, only their Threefry changes)
    if (draw := r.random()) < 0.5:
        several = cfg.replace(hw={"threefry": "dual" if draw < 0.25 else "quad"})
        try:
            LearnPlan(several).rng_units
            cfg = several
        except ConfigError:
            pass
    # a folded stream (drawn last, as the Threefry above)
    if r.random() < 0.5:
        cfg = cfg.replace(hw={"fold": True})
    # LEARN passing over unchanged units (drawn last: earlier campaigns keep their configs)
    if r.random() < 0.5:
        cfg = cfg.replace(hw={"learn_skip": True})
    # the kept sums (drawn last, as above)
    if r.random() < 0.5:
        cfg = cfg.replace(hw={"keep_sums": True})
    return cfg


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
    decay_steps = int(r.integers(0, 4)) if fmt.decay_shift else 0
    return Case(cfg, seed, params, fixed.fixed_drive_for(fmt, x), fixed.fixed_target_for(fmt, y), decay_steps)


def expected(case: Case) -> Expected:
    """The model's every step (per sample: batch-independent) and the codes after learning."""
    fmt, cfg = case.fmt, case.cfg
    W, b = case.params.weights(fmt.device)
    exp = Expected()
    sign = fixed.nudge_sign(cfg, case.params.updates)
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
    exp.pulses, _ = fixed.eqprop_fixed_update(fmt, exp.params, case.drive, case.target, case.decay_steps)
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
    bad = np.argwhere((got.class_w != want.class_w) & mask[None])
    if bad.size:
        d, i, j = (int(v) for v in bad[0])
        raise Mismatch(f"after LEARN: device {d} of synapse ({i}, {j}) has class {got.class_w[d, i, j]} in the rtl, "
                       f"{want.class_w[d, i, j]} in the model; {len(bad)} classes differ")
    bad = np.argwhere((got.class_b != want.class_b) & rows[None])
    if bad.size:
        d, i = (int(v) for v in bad[0])
        raise Mismatch(f"after LEARN: device {d} of bias {i} has class {got.class_b[d, i]} in the rtl, "
                       f"{want.class_b[d, i]} in the model")
    if got.updates != want.updates:
        raise Mismatch(f"update counter: rtl {got.updates}, model {want.updates}")


def simulate_case(case: Case, exp: Expected | None = None, mode: str = "step") -> dict:
    """`check_case` on the engine of case.cfg in Amaranth's simulator: its report."""
    from amaranth.sim import Simulator

    from .engine import Engine
    from .simbus import AmaranthBus

    dut = Engine(case.cfg)
    out = {}

    async def bench(ctx):
        out["report"] = await check_case(EngineDriver(dut.layout, AmaranthBus(ctx, dut.bus)), case, exp, mode)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out["report"]


async def check_case(driver: EngineDriver, case: Case, exp: Expected | None = None, mode: str = "step") -> dict:
    """Run the case on the engine and compare it with the model; returns cycle and step counts.

    `mode` "step": every relaxation step is a STEP command and every intermediate state is
    compared; "relax": each phase is one RELAX command (the engine decides when it has
    converged) and its fixed point, step count and cycles are compared. Either way the fixed
    points the engine stored are read back, STORE / RESTORE / LEARN take the cycles of the
    cycle model, and every device code and class after LEARN equals the model's.
    """
    if mode not in ("step", "relax"):
        raise ValueError(f"mode must be 'step' or 'relax', not {mode!r}")
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

    phases = await driver.train_minibatch(case.drive, case.target, case.params.updates,
                                          observe=observe if mode == "step" else None, decay_steps=case.decay_steps)
    from . import cycles

    sch = driver.layout.schedule
    n = case.cfg.network.n
    results = _phase_results(case, exp, phases)
    reused = _reused_phases(case, exp)
    for (sample, phase), r in results.items():
        first = (sample, phase) in reused
        want = (cycles.relax_cycles(sch, 1, first) + (r.steps - 1) * cycles.relax_cycles(sch, 1) if mode == "step"
                else cycles.relax_cycles(sch, r.steps, first))
        if r.cycles != want:
            raise Mismatch(f"cycle counter: sample {sample}, {phase} phase: {r.steps} steps took {r.cycles} "
                           f"cycles, the cycle model says {want}")
        if mode == "relax":
            trace = exp.traces[(sample, phase)]
            _fixed_points_agree(f"sample {sample}, {phase} phase (RELAX)", r, trace[-1], len(trace))
            seen[(sample, phase)] = r.steps
    for what, got, want in (("STORE", phases["store_cycles"], cycles.store_cycles(n)),
                            ("RESTORE", phases["restore_cycles"], cycles.restore_cycles(n))):
        bad = [c for c in got if c != want]
        if bad:
            raise Mismatch(f"cycle counter: {what} took {bad[0]} cycles, the cycle model says {want}")
    want = cycles.learn_cycles(sch, exp.pulses.pulses_w, exp.pulses.pulses_b, exp.pulses.changed)
    if phases["learn_cycles"] != want:
        raise Mismatch(f"cycle counter: LEARN took {phases['learn_cycles']} cycles, the cycle model says {want}")
    for key, trace in exp.traces.items():
        if seen.get(key) != len(trace):
            raise Mismatch(f"sample {key[0]}, {key[1]} phase: rtl stopped after {seen.get(key)} steps, "
                           f"model after {len(trace)}")
    for (set_, slot), state in _stored_states(case, exp).items():
        got = await driver.read_fixpoint(set_, slot)
        i = first_difference(got, state)
        if i is not None:
            raise Mismatch(f"stored fixed point (set {set_}, slot {slot}), neuron {i}: rtl v={int(got[i])}, "
                           f"model v={int(state[i])}")
    got = await driver.read_params(case.params)
    compare_codes(case, got, exp.params)
    return {"steps": {f"{k[0]}/{k[1]}": v for k, v in seen.items()}, "learn_cycles": phases["learn_cycles"],
            "step_cycles": [r.cycles for r in phases["free"]], "mode": mode,
            "store_cycles": phases["store_cycles"][:1], "restore_cycles": phases["restore_cycles"][:1],
            "stores": len(phases["store_cycles"]), "relax_store": phases["relax_store"],
            "pulses": int(np.abs(exp.pulses.pulses_w).sum() + np.abs(exp.pulses.pulses_b).sum())}


def _nudge_sign(case: Case) -> int:
    return fixed.nudge_sign(case.cfg, case.params.updates)


def _phase_results(case: Case, exp: Expected, phases: dict) -> dict:
    """(sample, phase name of the model's traces) -> the driver's RelaxResult."""
    out = {}
    for s, r in enumerate(phases["free"]):
        out[(s, "free")] = r
    if case.cfg.train.nudge == "centered":
        out.update({(s, "plus"): r for s, r in enumerate(phases["hi"])})
        out.update({(s, "minus"): r for s, r in enumerate(phases["lo"])})
    elif _nudge_sign(case) > 0:
        out.update({(s, "plus"): r for s, r in enumerate(phases["hi"])})
    else:
        out.update({(s, "minus"): r for s, r in enumerate(phases["lo"])})
    return out


def _reused_phases(case: Case, exp: Expected) -> set:
    """The (sample, phase) relaxations whose first step reads the kept sums (hw.keep_sums,
    cycles.sums_kept): the nudged phase that follows a free phase whose last step left the state
    unchanged. The centered nudge's minus phase follows a RESTORE, which does not keep them."""
    from . import cycles

    out = set()
    first_nudged = "plus" if case.cfg.train.nudge == "centered" or _nudge_sign(case) > 0 else "minus"
    for s in range(case.drive.v0.shape[0]):
        trace = exp.traces[(s, "free")]
        before = trace[-2] if len(trace) > 1 else case.drive.v0[s]
        if cycles.sums_kept(case.cfg, bool(np.array_equal(trace[-1], before))):
            out.add((s, first_nudged))
    return out


def _stored_states(case: Case, exp: Expected) -> dict:
    """(set, slot) -> the state STORE must have kept, for every sample of the minibatch."""
    out = {}
    for s in range(case.drive.v0.shape[0]):
        free = exp.traces[(s, "free")][-1]
        if case.cfg.train.nudge == "centered":
            out[(hm.SET_FREE, s)] = free
            out[(hm.SET_HI, s)] = exp.traces[(s, "plus")][-1]
            out[(hm.SET_LO, s)] = exp.traces[(s, "minus")][-1]
        elif _nudge_sign(case) > 0:
            out[(hm.SET_LO, s)], out[(hm.SET_HI, s)] = free, exp.traces[(s, "plus")][-1]
        else:
            out[(hm.SET_HI, s)], out[(hm.SET_LO, s)] = free, exp.traces[(s, "minus")][-1]
    return out


def _fixed_points_agree(what: str, got, state: np.ndarray, steps: int) -> None:
    i = first_difference(got.v, state)
    if i is not None:
        raise Mismatch(f"{what}: neuron {i}: rtl v={int(got.v[i])}, model v={int(state[i])}")
    if got.steps != int(steps):
        raise Mismatch(f"{what}: rtl took {got.steps} steps, model {int(steps)}")


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
                _fixed_points_agree(f"epoch {epoch}, minibatch {batches}, sample {s}, free phase", got, free.v[s],
                                    free.steps[s])
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
        _fixed_points_agree(f"recall sample {s}", got, model.v[s], model.steps[s])
        cycles += got.cycles
    correct = np.all(fixed.fixed_readout(fmt, model.v) == clean, axis=1)
    return {"samples": len(results), "accuracy": float(correct.mean()), "relax_cycles": cycles}


async def check_steps_and_learn(driver: EngineDriver, case: Case, steps: int = 3) -> dict:
    """A short check for slow simulations (gate level): `steps` STEP commands of the first sample
    compared state by state, then one LEARN from fixed points written over the bus (every slot,
    HI and LO), compared code by code and class by class, with every cycle counter."""
    from . import cycles

    fmt, cfg = case.fmt, case.cfg
    sch = driver.layout.schedule
    exp = expected(case)
    await driver.check_identity()
    await driver.load_params(case.params)
    await driver.load_sample(case.drive.v0[0], case.drive.x[0], case.target.values[0])
    trace = exp.traces[(0, "free")]
    done = 0
    for step in range(1, min(steps, len(trace)) + 1):
        r = await driver.step(hm.SIGN_FREE)
        i = first_difference(r.v, trace[step - 1])
        if i is not None:
            raise Mismatch(f"sample 0, free phase, step {step}, neuron {i}: rtl v={int(r.v[i])}, "
                           f"model v={int(trace[step - 1][i])}")
        if r.cycles != cycles.relax_cycles(sch, 1):
            raise Mismatch(f"cycle counter: a STEP took {r.cycles} cycles, the cycle model says "
                           f"{cycles.relax_cycles(sch, 1)}")
        done = step
    # fixed points: random states, the nudged ones a few LSBs from the free ones
    r = np.random.default_rng([case.seed, 1])
    n, B = cfg.network.n, driver.layout.batch
    lo = r.integers(fmt.lo, fmt.hi + 1, (B, n))
    hi = np.clip(lo + r.integers(-40, 41, (B, n)), fmt.lo, fmt.hi)
    for set_, states in ((hm.SET_LO, lo), (hm.SET_HI, hi)):
        for slot in range(B):
            for i in range(n):
                await driver.bus.write(hm.address(hm.FIXPOINT, driver.layout.fixpoint_offset(set_, slot, i)),
                                       int(states[slot, i]) & 0xFFFFFFFF)
    # the last slot written reads back as written; the read also lets the last write reach the
    # learner before LEARN, as a host that sees STORE finish does (hw.learn_skip: docs/rtl.md)
    got = await driver.read_fixpoint(hm.SET_HI, B - 1)
    if (i := first_difference(got, hi[B - 1])) is not None:
        raise Mismatch(f"fixed point (HI, slot {B - 1}), neuron {i}: wrote {int(hi[B - 1, i])}, read {int(got[i])}")
    want = case.params.copy()
    pulses = fixed.learn(fmt, want, fixed.activation(fmt, hi), fixed.activation(fmt, lo), case.drive.clamped,
                         case.decay_steps)
    await driver.set_decay(case.decay_steps)
    learn = await driver.run(hm.OP_LEARN)
    model_cycles = cycles.learn_cycles(sch, pulses.pulses_w, pulses.pulses_b, pulses.changed)
    if learn != model_cycles:
        raise Mismatch(f"cycle counter: LEARN took {learn} cycles, the cycle model says {model_cycles}")
    compare_codes(case, await driver.read_params(case.params), want)
    return {"steps": done, "learn_cycles": learn,
            "pulses": int(np.abs(pulses.pulses_w).sum() + np.abs(pulses.pulses_b).sum())}
