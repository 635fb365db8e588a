"""`memprop bench`, hardware section: what each board's engine would do, against the numpy model.

Per board (its default Config, boards/build.py): cycles per relaxation step, per LEARN, per
training sample and per recall on an untrained and a trained network; fmax from the board's
recorded build (`memprop build` writes build.json); projected training samples/s and us per
recall; and the float model's training samples/s measured in this same run, with the
project's minibatch protocol and with minibatch 1 (online learning).

Where the cycles come from: the engine's cycle counts are exact functions of what the
fixed-point model does (relaxation steps per phase, pulses per update) — rtl/cycles.py,
checked equal to the engine's own cycle counter on random configurations by tests/rtl. The
bench trains the board's configuration in situ with the fixed-point model (the same samples,
in the same order, as `memprop train --numerics fixed`) and costs every command of it. With
`simulate` (the default outside --quick) it also runs the board's engine under Verilator on a
minibatch and on recalls, for the untrained and the trained network, and reports the cycles
the engine's counter measured next to the model's: they must be equal.

Beside each projection, the DSP ceiling (`dsp_ceiling`): the samples/s of an engine that kept
every multiplier of the device busy every cycle on the relaxation alone, at the same fmax and the
same relaxation steps. It separates a target a better design could reach from one this device
cannot.

Not counted: the host link (loading each sample's state, inputs and targets; issue 10's
subject), the host's own work between commands.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memprop.model import fixed
from memprop.model import patterns as pattern_sets
from memprop.model import training
from memprop.model.config import Config
from memprop.model.numerics import Formats
from memprop.model.training import epoch_samples

#: The boards of the hardware section, in report order.
BOARDS = ("icebreaker", "ulx3s", "ulx3s-25f")
#: Where `memprop build --board B --out DIR/B` leaves build.json, unless --builds says otherwise.
DEFAULT_BUILDS = Path("results/build")
FLIP = 0.10
RECALL_SEED = 1


# -- the numpy float model ----------------------------------------------------------------------

#: The float model's rate is the median of at least this many timed trainings.
FLOAT_MIN_REPEATS = 3


def float_rates(cfg: Config, pats, epochs: int, repeats: int) -> dict:
    """Training samples/s of the float model on `cfg`'s network: protocol batch and batch 1.

    Each is timed after one untimed epoch: the first training of a process compiles the
    relaxation kernels and fills caches (0.4 s against 0.02 s for two epochs here), and timing
    it halved the model's measured rate in --quick runs."""
    flt = Config.for_algorithm("eqprop", network=cfg.network.model_dump(), train={"epochs": epochs, "seed": 0})
    out = {}
    for name, c in (("protocol", flt), ("batch1", flt.replace(train={"batch_size": 1}))):
        training.train(c.replace(train={"epochs": 1}), pats, progress=False)       # warm-up, not timed
        seconds = []
        for _ in range(max(repeats, FLOAT_MIN_REPEATS)):
            start = time.perf_counter()
            training.train(c, pats, progress=False)
            seconds.append(time.perf_counter() - start)
        samples = epochs * pats.count * c.train.repeats
        wall = statistics.median(seconds)
        out[name] = {"batch_size": c.train.batch_size, "samples": samples, "seconds": seconds,
                     "samples_per_s": samples / wall}
    return out


# -- in-situ training, costed command by command --------------------------------------------------

@dataclass
class EpochCost:
    samples: int = 0
    updates: int = 0
    steps: int = 0           # relaxation steps, all phases
    reused: int = 0          # of them, steps that read the kept sums (hw.keep_sums)
    relax: int = 0           # cycles of RELAX commands
    store: int = 0           # STORE and RESTORE
    learn: int = 0           # LEARN

    @property
    def cycles(self) -> int:
        return self.relax + self.store + self.learn

    def to_dict(self) -> dict:
        return {"samples": self.samples, "updates": self.updates, "steps": self.steps, "reused": self.reused,
                "relax": self.relax,
                "store": self.store, "learn": self.learn, "cycles": self.cycles}


def minibatch_cost(cfg: Config, step: fixed.LearnStep, info: dict, batch: int) -> EpochCost:
    """Engine cycles of one minibatch as the driver runs it (rtl/driver.py train_minibatch)."""
    from memprop.rtl import cycles
    from memprop.rtl.schedule import Schedule

    sch = Schedule(cfg)
    n = cfg.network.n
    centered = cfg.train.nudge == "centered"
    phases = 3 if centered else 2
    steps = int(round(info["steps"] * batch))
    unused = cfg.train.batch_size - batch            # slots the driver fills with HI == LO
    # hw.keep_sums: the nudged phase (centered: the plus phase) after an exact free fixed point
    # starts with a step that reads the kept sums (cycles.sums_kept); with tol_lsb = 0 every
    # converged free phase ended exactly
    reused = 0
    if cfg.hw.keep_sums:
        if cfg.fixed.tol_lsb:
            raise ValueError("the cycle projection of hw.keep_sums needs fixed.tol_lsb = 0 (a free phase that "
                             "converged within a tolerance may not have ended at an exact fixed point)")
        reused = info["free_converged"]
    saved = reused * (cycles.step_cycles(sch) - cycles.reuse_step_cycles(sch))
    return EpochCost(samples=batch, updates=1, steps=steps, reused=reused,
                     relax=phases * batch * cycles.COMMAND_OVERHEAD + steps * cycles.step_cycles(sch) - saved,
                     store=batch * cycles.sample_copy_cycles(cfg) + unused * 2 * cycles.store_cycles(n),
                     learn=cycles.learn_cycles(sch, step.pulses_w, step.pulses_b, step.changed))


def in_situ_training(cfg: Config, pats, epochs: int, desc: str | None = None) -> dict:
    """Fixed-point in-situ training (exactly model.training's), every command costed; `desc`: show
    a progress bar with this label (300 epochs take minutes per board)."""
    from tqdm.auto import tqdm

    from memprop.rtl.verify import trained_start

    fmt = Formats(cfg)
    r, params = trained_start(cfg)
    initial = params.copy()
    per_epoch, minibatches = [], []
    B = cfg.train.batch_size
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", leave=False, disable=desc is None):
        total = EpochCost()
        inputs, targets = epoch_samples(cfg, pats.values, r)
        for start in range(0, len(inputs), B):
            x, y = inputs[start:start + B], targets[start:start + B]
            drive, target = fixed.fixed_drive_for(fmt, x), fixed.fixed_target_for(fmt, y)
            if not minibatches:
                minibatches.append({"x": x.tolist(), "y": y.tolist(), "params": params.copy()})
            step, info = fixed.eqprop_fixed_update(fmt, params, drive, target)
            cost = minibatch_cost(cfg, step, info, len(x))
            for key in ("samples", "updates", "steps", "reused", "relax", "store", "learn"):
                setattr(total, key, getattr(total, key) + getattr(cost, key))
        per_epoch.append(total)
    return {"initial": initial, "final": params, "epochs": per_epoch, "first_minibatch": minibatches[0]}


def recall_cost(cfg: Config, params: fixed.FixedParams, pats, trials: int) -> dict:
    """RELAX cycles of recalls of corrupted patterns (p = 0.1), and the accuracy."""
    from memprop.rtl import cycles
    from memprop.rtl.schedule import Schedule

    fmt = Formats(cfg)
    rng = np.random.default_rng(RECALL_SEED)
    clean = np.repeat(pats.values, trials, axis=0)
    noisy = pattern_sets.corrupt(clean, FLIP, rng)
    W, b = params.weights(fmt.device)
    relaxed = fixed.fixed_relax(fmt, W, b, fixed.fixed_drive_for(fmt, noisy))
    sch = Schedule(cfg)
    per = [cycles.relax_cycles(sch, int(s)) for s in relaxed.steps]
    correct = np.all(fixed.fixed_readout(fmt, relaxed.v) == clean, axis=1)
    return {"samples": len(per), "cycles_mean": float(np.mean(per)), "cycles_max": int(np.max(per)),
            "steps_mean": float(np.mean(relaxed.steps)), "accuracy": float(correct.mean()),
            "inputs": noisy[:4].tolist()}


# -- fmax from the build record ----------------------------------------------------------------------

def build_record(board: str, cfg: Config, builds: Path) -> dict:
    """fmax of the board's design as `memprop build` recorded it, with where and when; or why not."""
    path = Path(builds) / board / "build.json"
    if not path.exists():
        return {"fmax_mhz": None, "source": str(path),
                "note": f"no build record: run `memprop build --board {board} --out {Path(builds) / board}`"}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {"fmax_mhz": None, "source": str(path), "note": "build record is not valid JSON"}
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    dsp = (record.get("utilisation") or {}).get("dsp") or {}
    out = {"fmax_mhz": record.get("fmax_mhz"), "source": str(path), "built": built,
           "timing_met": record.get("timing_met"), "clock_mhz": record.get("clock_mhz"),
           "dsp_available": dsp.get("available")}
    built_hw = (record.get("config") or {}).get("hw")
    this_hw = cfg.hw.model_dump(mode="json")
    if built_hw is not None:                  # a field added since the build holds its default there
        built_hw = {**type(cfg.hw)().model_dump(mode="json"), **built_hw}
    if record.get("fingerprint") != cfg.fingerprint or record.get("lanes") != cfg.hw.lanes:
        out.update(fmax_mhz=None, note=f"build record is for another design (fingerprint "
                                       f"{record.get('fingerprint')}, {record.get('lanes')} lanes; this board's "
                                       f"default is {cfg.fingerprint}, {cfg.hw.lanes} lanes): rebuild")
    elif built_hw is not None and built_hw != this_hw:
        # the same computation in other hardware (hw is outside the fingerprint): another fmax
        differ = sorted(key for key in set(built_hw) | set(this_hw) if built_hw.get(key) != this_hw.get(key))
        out.update(fmax_mhz=None, note="build record is for other hardware of this design (hw "
                                       + ", ".join(f"{key} {built_hw.get(key)!r}, default {this_hw.get(key)!r}"
                                                   for key in differ) + "): rebuild")
    return out


def dsp_ceiling(fmax_mhz: float | None, dsp_available: int | None, synapses: int, steps: int, samples: int,
                float_rate: float, learn_cycles: int = 0) -> dict | None:
    """What no engine on this device could beat at this fmax: every multiplier busy every cycle
    on the relaxation alone (one multiply per synapse per step, LEARN and pipeline latency free).

    It tells a target the device cannot reach from one a better design could. With this design's
    LEARN and STORE cycles added (`learn_cycles`, the run's total) it tells whether a faster
    relaxation alone would do, or the learning unit has to be faster too."""
    if fmax_mhz is None or not dsp_available or not steps:
        return None
    relax = steps * synapses / dsp_available
    rate = fmax_mhz * 1e6 * samples / relax
    with_learn = fmax_mhz * 1e6 * samples / (relax + learn_cycles)
    return {"dsp": dsp_available, "steps_per_sample": steps / samples, "samples_per_s": rate,
            "ratio": rate / float_rate, "learn_cycles_per_sample": learn_cycles / samples,
            "samples_per_s_with_learn": with_learn, "ratio_with_learn": with_learn / float_rate}


# -- the engine in simulation ---------------------------------------------------------------------------

async def measure_commands(driver, cfg: Config, workload: dict) -> dict:
    """Cocotb workload "hwbench": the engine's cycle counter for a minibatch, a STORE and recalls."""
    from memprop.model import weights
    from memprop.rtl import hostmap as hm

    fmt = Formats(cfg)
    params, _, _ = weights.load(workload["weights"])
    await driver.check_identity()
    await driver.load_params(params)
    x, y = np.array(workload["x"]), np.array(workload["y"])
    phases = await driver.train_minibatch(fixed.fixed_drive_for(fmt, x), fixed.fixed_target_for(fmt, y),
                                          params.updates)
    store = await driver.run(hm.OP_STORE, set_=hm.SET_FREE, slot=0)
    recalls = await driver.recall(fixed.fixed_drive_for(fmt, np.array(workload["recall"])))
    return {"relax": [r.cycles for key in ("free", "hi", "lo") for r in phases[key]],
            "steps": [r.steps for key in ("free", "hi", "lo") for r in phases[key]],
            "learn": phases["learn_cycles"], "store": store, "recall": [r.cycles for r in recalls]}


def reused_phases(cfg: Config, free_converged: np.ndarray, sign: int) -> list[bool]:
    """Per relaxation of a minibatch, in the driver's order (free, hi, lo; train_minibatch): whether
    its first step reads the kept sums (cycles.sums_kept; fixed.tol_lsb = 0, so a converged free
    phase ended exactly). The nudged phase after a free phase does, unless the centered nudge's
    minus phase, which follows a RESTORE."""
    from memprop.rtl import cycles

    kept = [cycles.sums_kept(cfg, bool(c) and cfg.fixed.tol_lsb == 0) for c in free_converged]
    centered = cfg.train.nudge == "centered"
    hi = kept if centered or sign > 0 else [False] * len(kept)
    lo = [False] * len(kept) if centered or sign > 0 else kept
    return [False] * len(kept) + hi + lo


def simulate_board(cfg: Config, states: dict, pats, build_root: Path | None = None) -> dict:
    """Run `measure_commands` under Verilator for each network state; compare with the cycle model."""
    import tempfile

    from memprop.model import weights
    from memprop.rtl import cycles
    from memprop.rtl.schedule import Schedule
    from memprop.sim.engine import run_engine

    fmt = Formats(cfg)
    sch = Schedule(cfg)
    workloads, expect = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, state in states.items():
            path = weights.save(Path(tmp) / f"{name}.npz", state["params"], cfg)
            mb = state["minibatch"]
            workloads.append({"kind": "hwbench", "weights": str(path), "x": mb["x"], "y": mb["y"],
                              "recall": state["recall_inputs"]})
            # the model's prediction of the same commands
            params = state["params"].copy()
            sign = fixed.nudge_sign(cfg, params.updates)
            x, y = np.array(mb["x"]), np.array(mb["y"])
            W, b = params.weights(fmt.device)
            drive = fixed.fixed_drive_for(fmt, x)
            free = fixed.fixed_relax(fmt, W, b, drive)
            step, _ = fixed.eqprop_fixed_update(fmt, params, drive, fixed.fixed_target_for(fmt, y))
            # the engine recalls after the minibatch's LEARN: with the weights it programmed
            W, b = params.weights(fmt.device)
            rec = fixed.fixed_relax(fmt, W, b, fixed.fixed_drive_for(fmt, np.array(state["recall_inputs"])))
            expect.append({"reused": reused_phases(cfg, free.converged, sign),
                           "learn": cycles.learn_cycles(sch, step.pulses_w, step.pulses_b, step.changed),
                           "store": cycles.store_cycles(cfg.network.n),
                           "recall": [cycles.relax_cycles(sch, int(s)) for s in rec.steps]})
        start = time.perf_counter()
        run = run_engine(cfg, [], workloads, build_root=build_root, run_name="hwbench")
        seconds = time.perf_counter() - start
    out = {"simulator": "verilator", "seconds": round(seconds, 1), "cycles_simulated": run.cycles, "states": {}}
    for (name, _), got, want in zip(states.items(), run.results, expect):
        if not got.get("ok"):
            out["states"][name] = {"ok": False, "error": got.get("mismatch")}
            continue
        relax_model = [cycles.relax_cycles(sch, s, r) for s, r in zip(got["steps"], want["reused"])]
        agree = (got["learn"] == want["learn"] and got["store"] == want["store"]
                 and got["recall"] == want["recall"] and got["relax"] == relax_model)
        out["states"][name] = {"ok": agree, "learn": got["learn"], "learn_model": want["learn"],
                               "store": got["store"], "relax": got["relax"], "recall": got["recall"],
                               "recall_model": want["recall"]}
    return out


# -- the demo's cheap version ---------------------------------------------------------------------

def demo_workload(cfg: Config, weights_file: Path, pats) -> dict:
    """The "hwbench" workload on trained weights: one protocol minibatch and four recalls."""
    rng = np.random.default_rng(RECALL_SEED)
    x, y = epoch_samples(cfg, pats.values, rng)
    B = cfg.train.batch_size
    noisy = pattern_sets.corrupt(pats.values[:4], FLIP, rng)
    return {"kind": "hwbench", "weights": str(Path(weights_file).resolve()), "x": x[:B].tolist(),
            "y": y[:B].tolist(), "recall": noisy.tolist()}


def demo_cycles(cfg: Config, measured: dict) -> dict:
    """Per-sample figures from the engine's counter: LEARN, a training sample, a recall."""
    from memprop.rtl import cycles
    from memprop.rtl.learnplan import LearnPlan
    from memprop.rtl.schedule import Schedule

    B = cfg.train.batch_size
    sample = (sum(measured["relax"]) + measured["learn"]) / B + cycles.sample_copy_cycles(cfg)
    plan = LearnPlan(cfg)
    sch = Schedule(cfg)
    return {"learn": measured["learn"], "sample": sample, "recall": float(np.mean(measured["recall"])),
            "batch_size": B, "step": cycles.step_cycles(sch), "learn_lanes": plan.width,
            "draws": draw_rate(plan), "learn_skip": plan.skips,
            "kept_step": cycles.reuse_step_cycles(sch) if cfg.hw.keep_sums else None}


def draw_rate(plan) -> str:
    """How fast the learner's Threefry units draw (docs/rtl.md), or that it draws nothing."""
    if not plan.calls:
        return "no random draws"
    if plan.rng_interval > 1:
        return f"one Threefry draw per {plan.rng_interval} cycles"
    units = plan.rng_units
    return f"{units} Threefry pipeline{'s' if units > 1 else ''}, {units} draw{'s' if units > 1 else ''} a cycle"


def demo_line(c: dict) -> str:
    kept = "" if c.get("kept_step") is None else f", {c['kept_step']} reading the kept sums"
    return (f"engine cycles (measured): LEARN {c['learn']:,} per minibatch of {c['batch_size']} "
            f"({c['learn_lanes']} learning lane{'s' if c['learn_lanes'] != 1 else ''}, {c['draws']}"
            f"{', passing over unchanged units' if c.get('learn_skip') else ''}), "
            f"{c['sample']:,.0f} per training sample, {c['recall']:,.0f} per recall ({c['step']} per step{kept})")


def demo_projection(c: dict, fmax_mhz: float) -> dict:
    sps = fmax_mhz * 1e6 / c["sample"]
    us = c["recall"] / fmax_mhz
    return {"fmax_mhz": fmax_mhz, "train_samples_per_s": sps, "recall_us": us,
            "line": f"at fmax {fmax_mhz:.1f} MHz: {sps:,.0f} training samples/s, {us:.1f} us per recall "
                    "(host link not counted; `memprop bench` compares with the float model)"}


# -- one board -------------------------------------------------------------------------------------

def board_entry(board: str, pats, epochs: int, trials: int, builds: Path, rates: dict, simulate: bool,
                progress=None) -> dict:
    from memprop.boards.build import get_board
    from memprop.rtl import cycles
    from memprop.rtl.learnplan import LearnPlan
    from memprop.rtl.schedule import Schedule

    cfg = get_board(board).default_config()
    sch = Schedule(cfg)
    net = cfg.network
    bar = (lambda what: f"{board}, {what}") if progress else (lambda what: None)
    run = in_situ_training(cfg, pats, epochs, bar(f"in situ, batch {cfg.train.batch_size}"))
    online = in_situ_training(cfg.replace(train={"batch_size": 1}), pats, epochs, bar("in situ, batch 1"))
    if progress:
        progress(f"{board}: in-situ training costed ({epochs} epochs, batch {cfg.train.batch_size} and 1)")
    recall = {"untrained": recall_cost(cfg, run["initial"], pats, trials),
              "trained": recall_cost(cfg, run["final"], pats, trials)}
    first, last = run["epochs"][0], run["epochs"][-1]
    total = sum(e.cycles for e in run["epochs"])
    samples = sum(e.samples for e in run["epochs"])
    total1 = sum(e.cycles for e in online["epochs"])
    samples1 = sum(e.samples for e in online["epochs"])
    build = build_record(board, cfg, builds)
    fmax = build["fmax_mhz"]

    def per_s(cycles_per_sample):
        return None if fmax is None else fmax * 1e6 / cycles_per_sample

    train_sps = per_s(total / samples)
    train_sps1 = per_s(total1 / samples1)
    flt = rates
    entry = {
        "board": board, "n": net.n, "topology": net.topology if net.topology != "band" else f"band {net.band}",
        "synapses": sch.products, "device": cfg.device.preset, "batch_size": cfg.train.batch_size,
        "lanes": cfg.hw.lanes, "learn_lanes": LearnPlan(cfg).width, "threefry": cfg.hw.threefry, "fold": cfg.hw.fold,
        "fingerprint": cfg.fingerprint, "fmax_mhz": fmax, "fmax_source": build,
        "step_cycles": cycles.step_cycles(sch),
        # hw.keep_sums: a step that reads the kept sums, and the share of training steps that did
        "reuse_step_cycles": cycles.reuse_step_cycles(sch) if cfg.hw.keep_sums else None,
        "reused_steps_batch1": (sum(e.reused for e in online["epochs"])
                                / max(sum(e.steps for e in online["epochs"]), 1)),
        "learn_cycles": {"untrained": first.learn / first.updates, "trained": last.learn / last.updates},
        "learn_cycles_batch1": {"untrained": online["epochs"][0].learn / online["epochs"][0].updates,
                                "trained": online["epochs"][-1].learn / online["epochs"][-1].updates},
        "sample_cycles": {"untrained": first.cycles / first.samples, "trained": last.cycles / last.samples},
        "sample_cycles_batch1": {"untrained": online["epochs"][0].cycles / online["epochs"][0].samples,
                                 "trained": online["epochs"][-1].cycles / online["epochs"][-1].samples},
        "steps_per_sample": {"untrained": first.steps / first.samples, "trained": last.steps / last.samples},
        "recall_cycles": {k: v["cycles_mean"] for k, v in recall.items()},
        "recall_accuracy": {k: v["accuracy"] for k, v in recall.items()},
        "activity": {"untrained": activity(cfg, run["initial"], run["first_minibatch"]),
                     "trained": activity(cfg, run["final"], _last_minibatch(cfg, pats, run))},
        "training": {"epochs": epochs, "samples": samples, "cycles": total, "samples_batch1": samples1,
                     "cycles_batch1": total1, "per_epoch": [e.to_dict() for e in run["epochs"]]},
        "train_samples_per_s": train_sps, "train_samples_per_s_batch1": train_sps1,
        "recall_us": None if fmax is None else recall["trained"]["cycles_mean"] / fmax,
        "float_samples_per_s": flt["protocol"]["samples_per_s"],
        "float_samples_per_s_batch1": flt["batch1"]["samples_per_s"],
        "ratio": None if train_sps is None else train_sps / flt["protocol"]["samples_per_s"],
        "ratio_batch1": None if train_sps1 is None else train_sps1 / flt["batch1"]["samples_per_s"],
        "dsp_ceiling": {
            "protocol": dsp_ceiling(fmax, build.get("dsp_available"), sch.products,
                                    sum(e.steps for e in run["epochs"]), samples, flt["protocol"]["samples_per_s"],
                                    sum(e.learn + e.store for e in run["epochs"])),
            "batch1": dsp_ceiling(fmax, build.get("dsp_available"), sch.products,
                                  sum(e.steps for e in online["epochs"]), samples1, flt["batch1"]["samples_per_s"],
                                  sum(e.learn + e.store for e in online["epochs"]))},
    }
    if simulate:
        states = {"untrained": {"params": run["initial"], "minibatch": run["first_minibatch"],
                                "recall_inputs": recall["untrained"]["inputs"]},
                  "trained": {"params": run["final"], "minibatch": _last_minibatch(cfg, pats, run),
                              "recall_inputs": recall["trained"]["inputs"]}}
        entry["simulation"] = simulate_board(cfg, states, pats)
        if progress:
            progress(f"{board}: engine simulated (Verilator)")
    return entry


def activity(cfg: Config, params: fixed.FixedParams, minibatch: dict) -> dict:
    """Activations that change in a relaxation step, on average, per phase, over one protocol
    minibatch (the fixed-point model, exactly the engine's steps): how sparse the network's
    activity is. An event-driven engine would add W·Δa instead of recomputing W·a; in a dense
    network one changed activation still changes every unit's field (README, session 15)."""
    fmt = Formats(cfg)
    x, y = np.asarray(minibatch["x"]), np.asarray(minibatch["y"])
    drive, target = fixed.fixed_drive_for(fmt, x), fixed.fixed_target_for(fmt, y)
    changed = {"free": [], "nudged": []}

    def traced(fmt_, W, b, drive_, target_=None, sign=0, v_start=None, max_steps=None):
        out = fixed.fixed_relax(fmt_, W, b, drive_, target_, sign, v_start, max_steps, trace=True)
        a = fixed.activation(fmt_, np.asarray(out.trace))             # (steps + 1, batch, N)
        per_step = (a[1:] != a[:-1]).sum(axis=2)                      # (steps, batch)
        taken = np.arange(per_step.shape[0])[:, None] < out.steps[None, :]
        changed["free" if sign == 0 else "nudged"].extend(per_step[taken].tolist())
        return out

    fixed.eqprop_fixed_update(fmt, params.copy(), drive, target, relax=traced)
    return {phase: float(np.mean(counts)) if counts else 0.0 for phase, counts in changed.items()}


def _last_minibatch(cfg: Config, pats, run: dict) -> dict:
    """A protocol minibatch for the trained network (fresh noise, the first patterns)."""
    rng = np.random.default_rng(RECALL_SEED + 1)
    x, y = epoch_samples(cfg, pats.values, rng)
    B = cfg.train.batch_size
    return {"x": x[:B].tolist(), "y": y[:B].tolist()}


def run_hardware(pats, epochs: int, repeats: int, trials: int, builds: Path = DEFAULT_BUILDS,
                 simulate: bool = False, boards=BOARDS, progress=None) -> dict:
    """The hardware section: float model rates once per network, then every board."""
    from memprop.boards.build import get_board

    rates, entries = {}, []
    for board in boards:
        cfg = get_board(board).default_config()
        key = cfg.network.model_dump_json()
        if key not in rates:
            rates[key] = float_rates(cfg, pats, epochs, repeats)
            if progress:
                progress(f"float model timed on the {board} network")
        entries.append(board_entry(board, pats, epochs, trials, builds, rates[key], simulate, progress))
    return {"epochs": epochs, "trials_per_pattern": trials, "builds": str(builds), "hardware": entries,
            "float_model": list(rates.values())}


#: The issue's targets for the ULX3S: projected training vs the float model (batch 1, protocol).
TARGET_RATIO_BATCH1 = 10.0
TARGET_RATIO = 1.0


def markdown(section: dict) -> str:
    """Two tables (cycles; throughput against the float model), and where fmax came from."""
    from memprop.demo import markdown_table

    def num(v, digits=0):
        return "n/a" if v is None else f"{v:,.{digits}f}"

    def pair(d, digits=0):
        return f"{num(d['untrained'], digits)} / {num(d['trained'], digits)}"

    cycles_rows, speed_rows, notes = [], [], []
    for e in section["hardware"]:
        cycles_rows.append([e["board"], f"N = {e['n']} {e['topology']}, B = {e['batch_size']}",
                            f"{e['lanes']} / {e['learn_lanes']} ({e['threefry']}{', fold' if e.get('fold') else ''})",
                            e["step_cycles"] if e.get("reuse_step_cycles") is None
                            else f"{e['step_cycles']} ({e['reuse_step_cycles']} kept sums, "
                                 f"{100 * e['reused_steps_batch1']:.0f} % of steps at batch 1)",
                            pair(e["learn_cycles"]), pair(e["learn_cycles_batch1"]), pair(e["sample_cycles"]),
                            pair(e["recall_cycles"]), pair(e["recall_accuracy"], 3)])
        speed_rows.append([e["board"], num(e["fmax_mhz"], 1), num(e["train_samples_per_s"]),
                           num(e["float_samples_per_s"]), num(e["ratio"], 2), num(e["train_samples_per_s_batch1"]),
                           num(e["float_samples_per_s_batch1"]), num(e["ratio_batch1"], 2), num(e["recall_us"], 1)])
        src = e["fmax_source"]
        if e["fmax_mhz"] is None:
            notes.append(f"- {e['board']}: fmax n/a: {src.get('note')}")
        else:
            notes.append(f"- {e['board']}: fmax {e['fmax_mhz']:.1f} MHz from {src['source']} (built {src['built']})")
            for key, target, what in (("ratio", TARGET_RATIO, "the minibatch protocol"),
                                      ("ratio_batch1", TARGET_RATIO_BATCH1, "minibatch 1")):
                if e[key] is not None and e[key] < target:
                    notes.append(f"  {target:g}x the float model with {what} needs {target / e[key]:.1f}x this "
                                 f"throughput: fmax {e['fmax_mhz'] * target / e[key]:.0f} MHz at these lanes, or "
                                 "more lanes / a sample-parallel relaxation")
                    ceiling = e["dsp_ceiling"]["protocol" if key == "ratio" else "batch1"]
                    if ceiling:
                        verdict = ("beyond this device" if ceiling["ratio"] < target else "within the device's DSPs") \
                            + " at this run's steps (fewer as training goes on: --hw-epochs)"
                        notes.append(f"  DSP ceiling ({ceiling['dsp']} multipliers all busy at {e['fmax_mhz']:.1f} MHz, "
                                     f"{ceiling['steps_per_sample']:.1f} steps x {e['synapses']} synapses a sample, "
                                     f"LEARN free): {ceiling['samples_per_s']:,.0f} samples/s = "
                                     f"{ceiling['ratio']:.2f}x: {target:g}x is {verdict}")
                        learn_verdict = ("the learning unit has to be faster too" if ceiling["ratio_with_learn"] < target
                                         else "a faster relaxation alone would do")
                        notes.append(f"  with this design's LEARN and STORE ({ceiling['learn_cycles_per_sample']:,.0f} "
                                     f"cycles a sample): {ceiling['samples_per_s_with_learn']:,.0f} samples/s = "
                                     f"{ceiling['ratio_with_learn']:.2f}x: {learn_verdict}")
        act = e.get("activity")
        if act:
            notes.append(f"  activations changed a relaxation step (of N = {e['n']}; one protocol minibatch, "
                         f"untrained / trained): free phase {act['untrained']['free']:.1f} / "
                         f"{act['trained']['free']:.1f}, nudged {act['untrained']['nudged']:.1f} / "
                         f"{act['trained']['nudged']:.1f}")
        sim = e.get("simulation")
        if sim:
            verdict = "equal to the cycle model" if all(s["ok"] for s in sim["states"].values()) else "DIFFERENT"
            notes.append(f"  engine under Verilator, untrained and trained: measured cycles {verdict} "
                         f"({sim['cycles_simulated']:,} cycles simulated)")
    cycles_table = markdown_table(
        ["board", "network", "lanes P / W (Threefry)", "cycles / step", "cycles / LEARN", "LEARN, batch 1",
         "cycles / training sample", "cycles / recall", "recall accuracy"], cycles_rows)
    speed_table = markdown_table(
        ["board", "fmax MHz", "train samples/s", "float samples/s", "ratio", "samples/s, batch 1",
         "float, batch 1", "ratio, batch 1", "us / recall"], speed_rows)
    return (cycles_table + "\n\n" + speed_table
            + f"\n\nUntrained / trained: the first / last of {section['epochs']} epochs of in-situ training "
              "(recall: before / after, p = 0.1). Cycles from the exact cycle model; the host link is not counted. "
              "Samples/s = fmax / cycles per sample over the whole run; float = the numpy model on the same network "
              "and epochs, measured in this run.\n" + "\n".join(notes))
