"""cocotb + Verilator: a digits classifier on the engine, bit-exact with the fixed-point model.

Test images clamped on the input units and relaxed (every fixed point, step count, RELAX cycle
count and prediction), then one in-situ training minibatch at the classifier's per-layer rates
(alpha1 = 0.1, alpha2 = 0.05), decayed once as in the second epoch (every device code after LEARN).
"""

from __future__ import annotations

import pytest

from memprop.model import classify, weights
from memprop.model.tasks import load_task
from memprop.rtl.learnplan import LearnPlan
from memprop.rtl.schedule import Schedule
from memprop.sim.engine import run_engine
from tests.sim.test_engine_cocotb import assert_clean, needs


def trained_classifier(tmp_path, hidden, preset, lanes, batch, epochs=1, **task):
    data = load_task("digits", **task)
    cfg = classify.classifier_config(data, hidden, epochs=epochs, batch_size=batch, numerics="fixed",
                                     device={"preset": preset}, hw={"lanes": lanes})
    params, _ = classify.train_classifier(cfg, data, progress=False, monitor=0)
    path = weights.save(tmp_path / "classifier.npz", params, cfg, task={**data.summary(), "per_class_limit":
                                                                       task.get("per_class"), "data": None})
    return cfg, path


@needs("verilator")
def test_small_digits_classifier_on_the_engine(tmp_path):
    # 3 epochs: after 1 the 3-class classifier is at 0.64-0.82 over seeds (0.65 on these 20 images since
    # the two-draws-per-call Threefry), after 3 at 0.85-0.93; the floor checks that it learned at all
    cfg, path = trained_classifier(tmp_path, (8,), "linear-64", 4, 2, epochs=3, classes=(0, 1, 2), per_class=30)
    assert cfg.train.layer_lr == (0.1, 0.05) and len(LearnPlan(cfg).rates) == 2      # the seed's rates, on the engine
    run = run_engine(cfg, [], [{"kind": "classification", "weights": str(path), "images": 20, "decay_steps": 1}],
                     build_root=tmp_path)
    assert_clean(run)
    (report,) = run.results
    assert report["images"] == 20 and report["minibatches"] == 1 and report["batch"] == 2
    assert report["decay_steps"] == 1 and report["pulses"] > 0
    assert report["accuracy"] == report["model_accuracy"] >= 0.8
    assert report["cycles_per_image"] >= Schedule(cfg).depth


@pytest.mark.slow
@needs("verilator")
def test_digits_classifier_ten_classes(tmp_path):
    """The default digits network (64-100-10) on linear-256 devices, P = 16: 20 images and a minibatch."""
    cfg, path = trained_classifier(tmp_path, (100,), "linear-256", 16, 1)
    run = run_engine(cfg, [], [{"kind": "classification", "weights": str(path), "images": 20, "decay_steps": 1}],
                     build_root=tmp_path)
    assert_clean(run)
    assert run.results[0]["images"] == 20 and run.results[0]["minibatches"] == 1


@pytest.mark.slow
@needs("verilator")
def test_icebreaker_digits_classifier(tmp_path):
    """`memprop build --board icebreaker --task digits` as it runs: 64-50-10, codes in SPRAM, nearest
    pulse rounding, P = 4. One epoch of training, so the minibatch still programs pulses."""
    from memprop.boards.build import get_board

    cfg = get_board("icebreaker").classifier_config("digits").replace(train={"epochs": 1})
    data = load_task("digits")
    params, _ = classify.train_classifier(cfg, data, progress=False, monitor=0)
    path = weights.save(tmp_path / "classifier.npz", params, cfg,
                        task={**data.summary(), "per_class_limit": None, "data": None})
    run = run_engine(cfg, [], [{"kind": "classification", "weights": str(path), "images": 20, "decay_steps": 0}],
                     build_root=tmp_path)
    assert_clean(run)
    (report,) = run.results
    assert report["images"] == 20 and report["minibatches"] == 1 and report["pulses"] > 0
    assert report["accuracy"] == report["model_accuracy"]
