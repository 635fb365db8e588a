"""`memprop bench`, classification: what a digits image costs on each board, beside the numpy model.

The engine's cycle counts are exact functions of the schedule and the relaxation steps
(rtl/cycles.py, checked in simulation by the cocotb classification workload), so the cost of
an image is the cycle model applied to the steps the fixed-point model takes on the test set.
Projected images/s are at the board's clock; the numpy float model's images/s are measured in
the same run, and their ratio is reported.
"""

from __future__ import annotations

import time

import numpy as np

from memprop.demo import markdown_table
from memprop.model import classify, fixed
from memprop.model.numerics import Formats
from memprop.model.tasks import load_task
from memprop.rtl import cycles
from memprop.rtl.schedule import Schedule

#: The boards whose classifier designs are costed (boards.build.BOARDS[...].classifier).
BOARDS = ("icebreaker", "ulx3s")


def board_design(board: str, task, hidden):
    """The digits classifier as the board's engine holds it: `memprop build --task digits`'s design
    (its layers, lanes, rounding and clock), or with `hidden` that network on the board's lanes."""
    from memprop.boards.build import get_board

    b = get_board(board)
    if hidden is None and b.classifier:
        return b.classifier_config(task.name), b.classifier["clock_mhz"]
    default = b.default_config()
    cfg = classify.classifier_config(task, hidden, numerics="fixed", device={"preset": default.device.preset},
                                     hw=dict(b.config.get("hw", {})))
    return cfg, b.clock_mhz     # the core clock (board PLL), as the board's build runs it


def float_model(task, layers: tuple[int, ...], epochs: int) -> dict:
    """Train the float classifier of these layers (timed) and time its inference on the test set."""
    cfg = classify.classifier_config(task, tuple(layers[1:-1]), epochs=epochs)
    start = time.perf_counter()
    params, _ = classify.train_classifier(cfg, task, progress=False, monitor=0)
    train_s = time.perf_counter() - start
    return {"cfg": cfg, "params": params, "train_s": train_s}


def run_classification_bench(epochs: int = classify.DEFAULT_EPOCHS, boards: tuple[str, ...] = BOARDS,
                             hidden: tuple[int, ...] | None = None, images: int | None = None) -> dict:
    """Train the float digits classifier (timed), then cost its images on every board's engine
    (a board whose design has other layers gets a float network of its own, trained alike)."""
    task = load_task("digits")
    x, y = (task.x_test, task.y_test) if images is None else (task.x_test[:images], task.y_test[:images])
    models: dict[tuple[int, ...], dict] = {}

    def model_for(layers: tuple[int, ...]) -> dict:
        if layers not in models:
            m = models[layers] = float_model(task, layers, epochs)
            start = time.perf_counter()
            m["result"] = classify.evaluate(m["params"], m["cfg"], x, y, task.n_classes)
            m["images_per_s"] = len(y) / (time.perf_counter() - start)
        return models[layers]

    main_layers = classify.classifier_config(task, hidden).network.layers
    main = model_for(main_layers)
    cfg, params, result, numpy_images = main["cfg"], main["params"], main["result"], main["images_per_s"]
    train_s = main["train_s"]
    out = {"task": "digits", "layers": list(cfg.network.layers), "epochs": epochs, "images": len(y),
           "numpy_float": {"accuracy": result.accuracy, "train_seconds": train_s,
                           "train_samples_per_s": epochs * len(task.y_train) / train_s,
                           "images_per_s": numpy_images, "mean_steps": result.mean_steps},
           "boards": []}
    for board in boards:
        hw, clock_mhz = board_design(board, task, hidden)
        own = model_for(tuple(hw.network.layers))
        params, numpy_images = own["params"], own["images_per_s"]
        fmt = Formats(hw)
        programmed = fixed.FixedParams.from_float(hw, params.W, params.b)
        W, b = programmed.weights(fmt.device)
        relaxed = classify.fixed_relax_layered(fmt, W, b, fixed.fixed_drive_for(fmt, x))
        outputs = slice(hw.network.n - hw.network.layers[-1], hw.network.n)
        accuracy = float(np.mean(np.argmax(relaxed.v[:, outputs], axis=1) == y))
        sch = Schedule(hw)
        per_image = float(np.mean([cycles.relax_cycles(sch, int(s)) for s in relaxed.steps]))
        # one in-situ training sample: free and nudged relaxation, two STOREs, and LEARN (batch 1)
        sample = fixed.FixedParams.from_float(hw, params.W, params.b)
        drive = fixed.fixed_drive_for(fmt, task.x_train[:1])
        target = fixed.fixed_target_for(fmt, classify.one_hot(task.y_train[:1], task.n_classes))
        W, b = sample.weights(fmt.device)
        free = classify.fixed_relax_layered(fmt, W, b, drive)
        nudged = classify.fixed_relax_layered(fmt, W, b, drive, target, 1, v_start=free.v)
        step, _ = classify.fixed_layered_update(fmt, sample, drive, target)
        learn = cycles.learn_cycles(sch, step.pulses_w, step.pulses_b, step.changed)
        train_cycles = (cycles.relax_cycles(sch, int(free.steps[0])) + cycles.relax_cycles(sch, int(nudged.steps[0]))
                        + cycles.sample_copy_cycles(hw) + learn)
        images_per_s = clock_mhz * 1e6 / per_image
        out["boards"].append({
            "board": board, "layers": list(hw.network.layers), "float_accuracy": own["result"].accuracy,
            "numpy_images_per_s": numpy_images, "device": hw.device.preset, "lanes": hw.hw.lanes, "n": hw.network.n,
            "synapses_streamed": sch.synapses, "step_cycles": cycles.step_cycles(sch), "clock_mhz": clock_mhz,
            "steps_per_image": float(np.mean(relaxed.steps)), "cycles_per_image": per_image, "us_per_image": per_image / clock_mhz, "images_per_s": images_per_s,
            "ratio": images_per_s / numpy_images, "accuracy_ex_situ": accuracy,
            "train_sample_cycles": train_cycles, "learn_cycles": learn,
            "train_samples_per_s": clock_mhz * 1e6 / train_cycles})
    return out


def markdown(section: dict) -> str:
    f = section["numpy_float"]
    rows = [["numpy float model (this machine)", "", "", f"{f['mean_steps']:.1f}", "", f"{f['images_per_s']:.0f}",
             "1.00", f"{f['train_samples_per_s']:.0f}"]]
    for b in section["boards"]:
        rows.append([f"{b['board']} ({'-'.join(map(str, b['layers']))}, {b['device']}, P = {b['lanes']}, "
                     f"{b['clock_mhz']:.0f} MHz)",
                     f"{b['step_cycles']}", f"{b['cycles_per_image']:.0f}", f"{b['steps_per_image']:.1f}",
                     f"{b['us_per_image']:.0f}",
                     f"{b['images_per_s']:.0f}", f"{b['ratio']:.2f}", f"{b['train_samples_per_s']:.0f}"])
    return (f"Digits classifier {'-'.join(map(str, section['layers']))} ({section['images']} test images, "
            f"float accuracy {f['accuracy']:.4f}): cycles from the engine's cycle model at the fixed-point "
            "model's relaxation steps (float weights programmed into each board's devices; a board whose "
            "design has other layers runs a float network of those layers, trained alike, and its ÷ numpy "
            "is against that network's numpy images/s).\n\n"
            + markdown_table(["", "cycles per step", "cycles per image", "steps per image", "µs per image",
                              "images/s", "÷ numpy", "training samples/s"], rows))
