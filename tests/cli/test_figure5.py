"""`memprop reproduce`, classification: Figure 5 and the full test-set table, quick and deterministic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memprop.figure5 import OUTPUTS, QUICK, run_classification
from tests.cli.test_cli import assert_clean_error, run
from tests.model.test_tasks import fake_mnist


def without_timing(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    report.pop("timing")
    for t in report["tasks"].values():
        for r in t["results"].values():
            r.pop("seconds")
    return report


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("figure5")
    return out, run_classification(out, quick=True, jobs=2)


def test_quick_outputs_and_numbers(quick):
    out, report = quick
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "classification.json").read_text())["tasks"].keys() == {"digits"}
    digits = report["tasks"]["digits"]
    assert digits["task"]["classes"] == [0, 1, 2] and digits["layers"] == [64, 16, 3]
    assert set(digits["results"]) == {"float", *QUICK.presets}
    for r in digits["results"].values():
        acc = r["accuracy"]
        assert len(acc["values"]) == len(QUICK.seeds) and acc["min"] <= acc["mean"] <= acc["max"]
        confusion = np.array(r["confusion"])
        assert confusion.sum() == digits["task"]["test"] * len(QUICK.seeds)
        assert r["error_rate"]["mean"] == pytest.approx(1 - acc["mean"])
        assert len(r["per_class"]["mean"]) == 3
        f5 = r["figure5"]
        assert f5["epochs"] == list(range(QUICK.epochs + 1)) and f5["monitor"]["size"] == QUICK.monitor
        assert len(f5["train_error"]["mean"]) == len(f5["test_error"]["mean"]) == QUICK.epochs + 1
    assert digits["results"]["float"]["accuracy"]["mean"] > 0.8
    assert set(digits["results"]["float"]["ex_situ"]) == set(QUICK.presets)
    text = (out / "classification.md").read_text()
    assert "Figure 5" in text and "fixed point, ideal (in situ)" in text and "Per class" in text


def test_the_numbers_do_not_depend_on_the_worker_count(quick, tmp_path):
    _, report = quick
    again = run_classification(tmp_path, quick=True, jobs=1)
    assert without_timing(again) == without_timing(report)


def test_mnist_is_added_when_data_is_given(tmp_path):
    data = fake_mnist(tmp_path / "mnist", train_per_class=22, test_per_class=3, size=(10, 10))
    report = run_classification(tmp_path / "out", quick=True, data=str(data), jobs=2)
    mnist = report["tasks"]["mnist"]
    assert mnist["task"]["classes"] == [0, 1, 2, 3, 4] and mnist["task"]["train"] == 5 * 20
    assert list(mnist["results"]) == ["float"]            # the seed's experiment: float
    assert mnist["results"]["float"]["figure5"]["monitor"]["size"] == QUICK.monitor


def test_reproduce_refuses_bad_mnist_files_before_any_work(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clean_error(run("reproduce", "--quick", "--data", tmp_path / "empty", "--out", tmp_path / "o"),
                       "no train-images-idx3-ubyte")
    assert not (tmp_path / "o").exists()
