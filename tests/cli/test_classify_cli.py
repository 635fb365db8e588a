"""`memprop train --task` / `memprop eval` on classifiers: JSON keys, the recorded task, clean errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memprop.model import weights
from tests.cli.test_cli import assert_clean_error, assert_ok, run
from tests.model.test_tasks import fake_mnist

SMALL = ("--classes", "0,1,2", "--per-class", "40", "--hidden", "12", "--epochs", "2", "--quiet")


@pytest.fixture(scope="module")
def digits_weights(tmp_path_factory):
    out = tmp_path_factory.mktemp("cls") / "digits.npz"
    result = assert_ok(run("train", "--task", "digits", *SMALL, "--out", out))
    assert "digits classifier 64-12-3" in result.output and "test accuracy" in result.output
    return out


def test_eval_json_has_the_classification_keys(digits_weights):
    result = assert_ok(run("eval", "--weights", digits_weights, "--json"))
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    for key in ("task", "numerics", "accuracy", "error_rate", "per_class", "confusion"):
        assert key in report
    assert report["task"] == "digits" and report["numerics"] == "float" and report["classes"] == [0, 1, 2]
    confusion = np.array(report["confusion"])
    assert confusion.shape == (3, 3) and confusion.sum() == report["samples"]
    assert report["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert report["error_rate"] == pytest.approx(1 - report["accuracy"])
    assert report["per_class"] == pytest.approx((np.diag(confusion) / confusion.sum(axis=1)).tolist())
    assert report["accuracy"] > 0.9
    again = json.loads(assert_ok(run("eval", "--weights", digits_weights, "--json", "--task", "digits")).output)
    assert again == report
    _, cfg, meta = weights.load(digits_weights)
    assert meta["task"]["task"] == "digits" and meta["task"]["classes"] == [0, 1, 2]
    assert cfg.train.layer_lr == (0.1, 0.05) and cfg.train.lr_decay == 0.5


def test_eval_refuses_a_mismatched_task(digits_weights, tmp_path):
    assert_clean_error(run("eval", "--weights", digits_weights, "--task", "mnist"),
                       r"classifier for task 'digits' \(3 classes, 64 inputs\), not 'mnist'")
    pattern_file = tmp_path / "pat.npz"
    assert_ok(run("train", "--algo", "hebbian", "--out", pattern_file))
    assert_clean_error(run("eval", "--weights", pattern_file, "--task", "digits"),
                       "associative memory trained on patterns, not a classifier")
    assert_clean_error(run("eval", "--weights", digits_weights, "--flip", "0.1"), "for pattern networks")
    assert_clean_error(run("eval", "--weights", pattern_file), "Missing option '--flip'")


@pytest.mark.parametrize("device", ["ideal", "rram-nonlinear"])
def test_fixed_point_classifier_round_trip(tmp_path, device):
    out = tmp_path / "fixed.npz"
    assert_ok(run("train", "--task", "digits", *SMALL, "--numerics", "fixed", "--device", device, "--out", out))
    report = json.loads(assert_ok(run("eval", "--weights", out, "--json")).output)
    assert report["numerics"] == "fixed" and report["device"] == device
    assert report["accuracy"] > 0.8


def test_mnist_from_idx_files_and_its_errors(tmp_path):
    data = fake_mnist(tmp_path / "mnist", train_per_class=8, test_per_class=3, size=(10, 10))
    out = tmp_path / "m.npz"
    assert_ok(run("train", "--task", "mnist", "--data", data, "--classes", "0,1,2,3,4", "--per-class", "6",
                  "--hidden", "10", "--epochs", "2", "--binarize", "--quiet", "--out", out))
    report = json.loads(assert_ok(run("eval", "--weights", out, "--json")).output)
    assert report["task"] == "mnist" and report["classes"] == [0, 1, 2, 3, 4] and report["samples"] == 15
    assert report["binarized"] is True and report["layers"] == [100, 10, 5]
    moved = tmp_path / "elsewhere"
    data.rename(moved)
    assert_clean_error(run("eval", "--weights", out), "not a directory")
    assert_ok(run("eval", "--weights", out, "--data", moved))
    (moved / "train-labels-idx1-ubyte.gz").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x50garbage")
    assert_clean_error(run("train", "--task", "mnist", "--data", moved, "--out", out), "truncated")
    assert_clean_error(run("train", "--task", "mnist", "--out", out), "needs --data")


@pytest.mark.parametrize("args, message", [
    (("--task", "digits", "--algo", "rbp"), "trains with EqProp"),
    (("--task", "digits", "--lr", "0.1"), "--layer-lr"),
    (("--task", "digits", "--band", "3"), "for pattern networks"),
    (("--algo", "eqprop", "--hidden", "10"), "--hidden applies to --task"),
    (("--algo", "eqprop", "--classes", "1,2", "--binarize"), "--classes, --binarize apply to --task"),
    (("--task", "digits", "--hidden", "10,x"), "comma-separated"),
    (("--task", "digits", "--hidden", "10,0"), "positive integers"),
    (("--task", "digits", "--layer-lr", "0.1"), "2 weight layers"),
    (("--task", "digits", "--classes", "3"), "at least 2 classes"),
    (("--task", "digits", "--classes", "0,1", "--per-class", "500"), "fewer than --per-class 500"),
    (("--task", "digits", "--device", "ideal"), "--device applies to --numerics fixed"),
    (("--task", "digits", "--numerics", "fixed", "--lr-decay", "0.3"), "power of two"),
    (("--task", "digits", "--data", "."), "--data is for --task mnist"),
    ((), "Missing option '--algo'"),
])
def test_bad_task_options_are_one_line_errors(tmp_path, args, message):
    assert_clean_error(run("train", *args, "--out", tmp_path / "x.npz"), message)
