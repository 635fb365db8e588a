"""Classification on the engine: test images and an in-situ training minibatch, against the model.

The classifier's devices (a fixed-point weight file trained by `memprop train --task ...
--numerics fixed`) are loaded into the engine; every test image is clamped on the input units
and relaxed (RELAX), and its fixed point, step count, cycle count and predicted class are
compared with the fixed-point model. Then one minibatch of training images runs the engine's
in-situ EqProp (free phase, nudged phase, LEARN at the classifier's per-layer rates, decayed as
the workload says) and every device code is compared with the model's. Runs inside the cocotb testbench (`kind: "classification"` workloads) and with any
other transport of the engine driver.
"""

from __future__ import annotations

import numpy as np

from memprop.model import classify, fixed, weights
from memprop.model.config import Config
from memprop.model.numerics import Formats
from memprop.model.tasks import load_task
from memprop.rtl import cycles
from memprop.rtl.driver import EngineDriver
from memprop.rtl.verify import Case, Mismatch, _fixed_points_agree, compare_codes


def task_of(meta: dict, data: str | None = None):
    """The task a weight file records (its test split, its classes, binarised or not)."""
    recorded = meta.get("task")
    if recorded is None:
        raise ValueError("the weight file holds no classifier (train one with memprop train --task ...)")
    return load_task(recorded["task"], (data or recorded.get("data")) if recorded["task"] == "mnist" else None,
                     tuple(recorded["classes"]), recorded.get("per_class_limit"), recorded["binarized"])


def load_classifier(path: str, cfg: Config):
    params, wcfg, meta = weights.load(path)
    if wcfg.numerics != "fixed":
        raise ValueError(f"{path}: float weights; the engine runs a fixed-point classifier's device codes")
    if wcfg.fingerprint != cfg.fingerprint:
        raise ValueError(f"{path}: weights for config {wcfg.fingerprint}, the engine is {cfg.fingerprint}")
    return params, meta


async def check_classification(driver: EngineDriver, cfg: Config, workload: dict) -> dict:
    """`images` test images (inference) and, unless `minibatches` is 0, one training minibatch.

    The minibatch learns at the classifier's per-layer rates after `decay_steps` epochs of decay
    (workload key, default 0: the engine's decay register is written as the model's training
    loop would at the start of epoch decay_steps + 1)."""
    fmt = Formats(cfg)
    params, meta = load_classifier(workload["weights"], cfg)
    task = task_of(meta, workload.get("data"))
    count = min(int(workload.get("images", 20)), len(task.y_test))
    await driver.check_identity()
    await driver.load_params(params)

    x, y = task.x_test[:count], task.y_test[:count]
    drive = fixed.fixed_drive_for(fmt, x)
    W, b = params.weights(fmt.device)
    model = fixed.fixed_relax(fmt, W, b, drive)
    got = await driver.recall(drive)
    outputs = slice(cfg.network.n - cfg.network.layers[-1], cfg.network.n)
    relax_cycles = []
    for s, result in enumerate(got):
        _fixed_points_agree(f"test image {s}", result, model.v[s], model.steps[s])
        want = cycles.relax_cycles(driver.layout.schedule, result.steps)
        if result.cycles != want:
            raise Mismatch(f"test image {s}: RELAX took {result.cycles} cycles, the cycle model says {want}")
        relax_cycles.append(result.cycles)
    predicted = np.array([int(np.argmax(r.v[outputs])) for r in got])
    report = {"images": count, "accuracy": float(np.mean(predicted == y)),
              "model_accuracy": float(np.mean(np.argmax(model.v[:, outputs], axis=1) == y)),
              "cycles_per_image": float(np.mean(relax_cycles)), "steps_per_image": float(np.mean(model.steps)),
              "minibatches": 0}

    if int(workload.get("minibatches", 1)) > 0:
        batch = cfg.train.batch_size
        start = int(workload.get("train_offset", 0))
        xs = task.x_train[start:start + batch]
        ys = classify.one_hot(task.y_train[start:start + batch], task.n_classes)
        drive = fixed.fixed_drive_for(fmt, xs)
        target = fixed.fixed_target_for(fmt, ys)
        W, b = params.weights(fmt.device)
        free = fixed.fixed_relax(fmt, W, b, drive)
        before = params.copy()
        decay_steps = int(workload.get("decay_steps", 0))
        phases = await driver.train_minibatch(drive, target, params.updates, decay_steps=decay_steps)
        for s, result in enumerate(phases["free"]):
            _fixed_points_agree(f"training image {s}, free phase", result, free.v[s], free.steps[s])
        step, _ = fixed.eqprop_fixed_update(fmt, params, drive, target, decay_steps)
        rtl = await driver.read_params(before)
        compare_codes(Case(cfg, 0, before, drive, target), rtl, params)
        want = cycles.learn_cycles(driver.layout.schedule, step.pulses_w, step.pulses_b, step.changed)
        if phases["learn_cycles"] != want:
            raise Mismatch(f"LEARN took {phases['learn_cycles']} cycles, the cycle model says {want}")
        relaxations = sum(r.cycles for ph in ("free", "hi", "lo") for r in phases[ph])
        report.update(minibatches=1, batch=len(xs), decay_steps=decay_steps, learn_cycles=phases["learn_cycles"],
                      train_relax_cycles=relaxations,
                      pulses=int(np.abs(step.pulses_w).sum() + np.abs(step.pulses_b).sum()))
    return report
