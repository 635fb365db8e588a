"""`memprop recipe` (the recall recipe's ablation) and `memprop train --recipe / --init-state`."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from memprop.cli import main
from memprop.model import weights
from memprop.recipe import FLIPS, RECIPE, STEPS, TARGET_GAP, VARIANTS, recipe_config


def test_recipe_quick_writes_the_ablation(tmp_path):
    result = CliRunner().invoke(main, ["recipe", "--quick", "--jobs", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "recipe.json").read_text())
    rows = report["ablation"]
    assert [r["step"] for r in rows if r["numerics"] == "float"] == [*range(1, len(STEPS) + 1),
                                                                     *range(-1, -len(VARIANTS) - 1, -1)]
    assert [r["variant"] for r in rows] == [r["step"] < 0 for r in rows]
    fixed = [r for r in rows if r["numerics"] == "fixed"]
    assert len(fixed) == 1 and fixed[0]["step"] == len(STEPS)
    for row in rows:
        g = row["generated"]
        assert len(g["gap_mean"]) == len(FLIPS) and g["runs"] == 1
        assert all(lo <= m <= hi for lo, m, hi in zip(g["gap_min"], g["gap_mean"], g["gap_max"]))
        assert row["hex16"] is not None
        assert row["meets_target"] == all(x <= TARGET_GAP for x in g["gap_max"][:3])
    for run in report["runs"].values():
        assert all(abs(b - a - gap) < 1e-12 for a, b, gap in zip(run["accuracy"], run["bound"], run["gap"]))
    text = (tmp_path / "recipe.md").read_text()
    assert "| ingredients (cumulative) |" in text and "(the recipe)" in text
    assert text.count("\n|") >= len(rows) + 2
    # the recipe (float, fixed) and the alternatives train twice as long
    assert [r["epochs"] for r in rows] == [3] * (len(STEPS) - 2) + [6, 6, 6] + [6] * len(VARIANTS)
    assert "alternative: round 1's recipe" in text
    # a second run taking every network over from the first gives the same report
    again = CliRunner().invoke(main, ["recipe", "--quick", "--jobs", "2", "--out", str(tmp_path / "again"),
                                      "--reuse", str(tmp_path / "recipe.json")])
    assert again.exit_code == 0, again.output
    second = json.loads((tmp_path / "again" / "recipe.json").read_text())
    assert len(second["reused"]["runs"]) == len(report["runs"])
    for key in ("ablation", "runs", "per_class"):
        assert second[key] == report[key]


def test_the_recipe_is_hardware_ready():
    """Fixed point (ideal device) accepts it, and it needs no new topology: the engine runs it as is."""
    cfg = recipe_config(100, numerics="fixed")
    assert cfg.numerics == "fixed" and cfg.network.n == 100 + RECIPE["hidden"] and cfg.network.hidden == 16
    assert cfg.network.input_gain == 0.5 and cfg.train.train_flip == 0.25 and cfg.train.lr == 0.005
    assert cfg.train.epochs == 600 and cfg.train.max_step == 0.0025
    assert cfg.train.lr_decay == 0.5 and cfg.train.lr_decay_every == 200      # halved after epochs 200 and 400


def test_train_with_the_recipe_and_a_seed_initial_state(tmp_path):
    out = tmp_path / "w.npz"
    result = CliRunner().invoke(main, ["train", "--algo", "eqprop", "--recipe", "--epochs", "1", "--patterns",
                                       "generated:1", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    params, cfg, _ = weights.load(out)
    assert cfg.network.hidden == 16 and cfg.network.n == 116 and cfg.train.train_flip == 0.25
    assert cfg.train.epochs == 1 and cfg.train.lr_decay_every == 1
    result = CliRunner().invoke(main, ["eval", "--weights", str(out), "--patterns", "generated:1", "--flip", "0.2",
                                       "--trials", "5", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"accuracy", "accuracy_mse", "bound", "per_class_bound"} <= set(report)
    assert 0.0 <= report["accuracy"] <= 1.0 and 0.9 <= report["bound"] <= 1.0
    half = tmp_path / "half.npz"
    result = CliRunner().invoke(main, ["train", "--algo", "rbp", "--init-state", "half", "--epochs", "1", "--out",
                                       str(half), "--quiet"])
    assert result.exit_code == 0, result.output
    assert weights.load(half)[1].network.init_state == "half"
    result = CliRunner().invoke(main, ["train", "--algo", "rbp", "--recipe", "--out", str(tmp_path / "x.npz")])
    assert result.exit_code != 0 and "--recipe is an EqProp recipe" in result.output
    assert np.isfinite(params.W).all()
