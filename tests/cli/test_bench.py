"""`memprop bench`: the command runs and bench.json has its fields (no timing assertions)."""

from __future__ import annotations

import json
import statistics

from click.testing import CliRunner

from memprop.cli import main


def test_bench_runs_and_writes_json(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--epochs", "1", "--repeats", "2", "--trials", "3",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "| EqProp on hex16 | float | fixed (ideal) | fixed / float |" in out
    assert "Training time ratio fixed / float = " in out and "wrote" in out
    report = json.loads((tmp_path / "bench.json").read_text())
    assert (report["epochs"], report["repeats"], report["trials_per_pattern"]) == (1, 2, 3)
    assert report["eval_samples"] == 16 * 3 and report["device"] == "ideal" and report["target_ratio"] == 2.0
    for model in ("float", "fixed"):
        s, runs = report[model], report["runs"][model]
        for key in ("train_seconds", "train_cpu_seconds", "epoch_ms", "mean_steps", "eval_seconds",
                    "trials_per_second", "accuracy", "fingerprint"):
            assert key in s, (model, key)
        assert len(runs["train_seconds"]) == len(runs["eval_seconds"]) == 2
        assert s["train_seconds"] == statistics.median(runs["train_seconds"]) > 0
        assert s["trials_per_second"] == report["eval_samples"] / s["eval_seconds"]
        assert 0.0 <= s["accuracy"] <= 1.0
    assert report["ratio"] == report["fixed"]["train_seconds"] / report["float"]["train_seconds"]
    assert report["meets_target"] == (report["ratio"] <= 2.0)
    assert report["float"]["fingerprint"] != report["fixed"]["fingerprint"]
    assert {"python", "numpy", "cpus", "load_average_before"} <= set(report["environment"])


def test_bench_without_out_prints_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["bench", "--epochs", "1", "--repeats", "1", "--trials", "1",
                                       "--device", "linear-64"])
    assert result.exit_code == 0, result.output
    assert "fixed (linear-64)" in result.output
    assert not list(tmp_path.iterdir())


def test_bench_bad_device_is_a_one_line_error():
    result = CliRunner().invoke(main, ["bench", "--device", "nope", "--epochs", "1", "--repeats", "1"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: invalid config: device: unknown device preset 'nope'; choose one of "
        "['ideal', 'linear-256', 'linear-64', 'reram-array-om', 'rram-nonlinear', 'soft-bounds']"]
