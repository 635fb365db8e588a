"""`memprop demo`, classification stage: the digits classifier from float to the engine's Verilog.

Float training (the seed's settings), in-situ fixed-point training on the board's classifier
design (`memprop build --board BOARD --task digits`: its layers, devices, lanes and rounding), then
the trained devices in the engine under cocotb: test images and one training minibatch, bit-exact
with the fixed-point model. `--quick` uses three classes, a small hidden layer and the board's
recall lanes.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from memprop.demo import markdown_table
from memprop.model import classify, weights
from memprop.model.tasks import load_task


def run_classification_demo(out: Path, board: str, quick: bool, simulator: str = "verilator") -> dict:
    from memprop.boards.build import get_board
    from memprop.sim.engine import run_engine

    start = time.perf_counter()
    subset = {"classes": (0, 1, 2), "per_class": 40} if quick else {}
    hidden = (16,) if quick else None
    epochs = 2 if quick else classify.DEFAULT_EPOCHS
    task = load_task("digits", **subset)
    spec = get_board(board)
    hw = spec.default_config()
    if quick or not spec.classifier:
        fixed_cfg = classify.classifier_config(task, hidden, epochs=epochs, numerics="fixed",
                                               device={"preset": hw.device.preset}, hw={"lanes": hw.hw.lanes})
    else:     # the design `memprop build --board BOARD --task digits` builds
        fixed_cfg = spec.classifier_config("digits")
        hidden = tuple(fixed_cfg.network.layers[1:-1])
        hw = fixed_cfg
    cfgs = {"float": classify.classifier_config(task, hidden, epochs=epochs), "fixed": fixed_cfg}
    click.secho(f"[+] classification: digits ({task.n_classes} classes, {len(task.y_train)} training images), "
                f"network {'-'.join(map(str, cfgs['float'].network.layers))}, float and in situ on "
                f"{hw.device.preset} devices", bold=True)
    report = {"task": task.summary(), "layers": list(cfgs["float"].network.layers), "epochs": epochs}
    record = {**task.summary(), "per_class_limit": subset.get("per_class"), "data": None}
    for name, cfg in cfgs.items():
        params, _ = classify.train_classifier(cfg, task)
        path = weights.save(out / f"digits_{name}.npz", params, cfg, task=record)
        report[name] = classify.evaluate(params, cfg, task.x_test, task.y_test, task.n_classes).to_dict()
        report[f"{name}_weights"] = str(path)
    rows = [[name, report[name]["accuracy"], report[name]["error_rate"]] for name in cfgs]
    table = markdown_table(["digits classifier", "test accuracy", "error rate"], rows)
    click.echo(table)
    images = 20
    # the minibatch is the next epoch's: per-layer rates decayed `epochs` times, as the model would
    run = run_engine(cfgs["fixed"], [], [{"kind": "classification", "weights": report["fixed_weights"],
                                          "images": images, "decay_steps": epochs}],
                     simulator=simulator, run_name="demo-classify")
    result = run.results[0] if run.results else {}
    report["simulation"] = {"simulator": simulator, "passed": run.passed, "mismatches": len(run.mismatches),
                            "images": result.get("images"), "cycles_per_image": result.get("cycles_per_image"),
                            "minibatches": result.get("minibatches"), "cycles": run.cycles}
    line = (f"{result.get('images')} test images + 1 training minibatch (per-layer rates, decayed {epochs}x) "
            f"on the engine ({simulator}): "
            f"{len(run.mismatches)} mismatches, {result.get('cycles_per_image', 0):.0f} cycles per image")
    click.echo(line)
    if not run.passed:
        raise click.ClickException("the engine differs from the model on the classifier: " +
                                   "; ".join(str(m.get("mismatch")) for m in run.mismatches)[:2000])
    report["seconds"] = time.perf_counter() - start
    report["markdown"] = table + "\n\n" + line + "\n"
    return report
