"""`memprop sweep`: the quick run writes valid files; statistics over seeds and checkpoints are what the
report says they are; numbers do not depend on the worker count; the README block is regenerated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from memprop import sweep
from memprop.cli import main
from memprop.model.config import Config
from memprop.model.device import PRESETS


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("sweep")
    result = CliRunner().invoke(main, ["sweep", "--quick", "--out", str(out), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    return out, json.loads((out / "sweep.json").read_text()), result.output


def test_quick_sweep_writes_its_files(quick):
    out, report, output = quick
    for name in sweep.FILES:
        assert (out / name).stat().st_size > 0, name
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in output and "sweep.md" in output


def valid(acc: float, plan: sweep.Plan) -> bool:
    """A run's accuracy: the mean of its checkpoints, each successes out of 16 x (trials / K)."""
    step = 1 / (16 * (plan.trials // plan.checkpoints) * plan.checkpoints)
    return 0.0 <= acc <= 1.0 and abs(acc / step - round(acc / step)) < 1e-6


def test_every_run_is_the_average_of_its_checkpoints(quick):
    _, report, _ = quick
    plan = sweep.QUICK
    pr = report["protocol"]
    assert report["quick"] is True
    assert (pr["epochs"], pr["trials"], pr["flip"], pr["count"], pr["n"]) == (plan.epochs, plan.trials, 0.1, 16, 100)
    assert pr["checkpoints"] == list(plan.checkpoint_epochs) and pr["seeds"] == list(plan.seeds)
    for name, run in report["runs"].items():
        cfg = Config.create(**run["config"])
        assert cfg.fingerprint == run["fingerprint"], name
        assert cfg.train.epochs == plan.epochs and cfg.train.algo == "eqprop"
        assert len(run["checkpoints"]) == plan.checkpoints
        assert run["accuracy"] == pytest.approx(np.mean(run["checkpoints"]))
        assert len(run["per_class"]) == 16 and np.mean(run["per_class"]) == pytest.approx(run["accuracy"])
        assert valid(run["accuracy"], plan) and run["seconds"] > 0 and run["cpu_seconds"] > 0
        seed = int(name.split("seed=")[1])
        assert cfg.train.seed == seed
        if name.startswith("fixed/"):
            assert cfg.numerics == "fixed" and cfg.device.fab_seed == seed      # each seed its own chip
            assert run["formats"]["levels"] == int(name.split("/L=")[1].split("/")[0])
            assert run["formats"]["fv"] == int(name.split("fv=")[1].split("/")[0])
            assert (cfg.device.stuck or 0.0) == float(name.split("stuck=")[1].split("/")[0])
        else:
            assert cfg.numerics == "float"


def test_statistics_over_seeds(quick):
    _, report, _ = quick
    plan = sweep.QUICK
    runs = report["runs"]
    for d in report["defaults"]:
        names = [pt["run"] for pt in report["points"] if pt["preset"] == d["preset"] and pt["stuck"] == 0
                 and pt["levels"] == PRESETS[d["preset"]].levels and pt["state_frac"] == 8 and pt["nudge"] == "positive"]
        acc = [runs[n]["accuracy"] for n in names]
        assert len(acc) == len(plan.seeds)
        assert d["fixed"]["mean"] == pytest.approx(np.mean(acc)) and d["fixed"]["seeds"] == acc
        assert d["fixed"]["sd"] == pytest.approx(np.std(acc, ddof=1))
        assert d["fixed"]["min"] == min(acc) and d["fixed"]["max"] == max(acc)
        glyphs = np.mean([runs[n]["per_class"] for n in names], axis=0)
        assert d["fixed"]["per_glyph"] == pytest.approx(glyphs.tolist())
        assert d["fixed"]["lost"] == [sweep.GLYPHS[i] for i, g in enumerate(glyphs) if g < sweep.LOST]
        floats = [runs[f"float/positive/seed={s}"] for s in plan.seeds]
        assert d["float"]["mean"] == pytest.approx(np.mean([r["accuracy"] for r in floats]))
        ex = [r["ex_situ"][f"{d['preset']}/stuck=0"]["accuracy"] for r in floats]
        assert d["ex_situ"]["mean"] == pytest.approx(np.mean(ex))
    assert [d["preset"] for d in report["defaults"]] == list(PRESETS)


def test_stuck_sweep_and_centered_rows(quick):
    _, report, _ = quick
    plan = sweep.QUICK
    sk = report["stuck_sweep"]
    assert sk["preset"] == plan.stuck_preset and sk["fractions"] == list(plan.stuck)
    for key in ("in_situ", "ex_situ", "ex_situ_fault_aware"):
        assert len(sk[key]) == len(plan.stuck) and all(len(s["seeds"]) == len(plan.seeds) for s in sk[key])
    for pt in report["points"]:
        if pt["stuck"]:
            cfg = Config.create(**report["runs"][pt["run"]]["config"])
            assert cfg.device.stuck == pt["stuck"] and cfg.device.preset == plan.stuck_preset
            assert report["runs"][pt["run"]]["formats"]["stuck_classes"]
    float_run = report["runs"]["float/positive/seed=0"]
    assert set(float_run["ex_situ"]) == ({f"{p}/stuck=0" for p in PRESETS}
                                         | {f"{plan.stuck_preset}/stuck={s:g}{a}" for s in plan.stuck if s
                                            for a in ("", "/fault-aware")})
    rows = report["centered"]["rows"]
    assert [r["nudge"] for r in rows] == ["positive", "centered"]
    for r in rows:
        assert r["difference"] == pytest.approx(r["fixed"]["mean"] - r["float"]["mean"])
    assert (rows[1]["beta"], rows[1]["lr"]) == (sweep.CENTERED_BETA, sweep.CENTERED_LR)
    for name in ("float/centered/beta=0.25/lr=0.003/seed=0", "fixed/ideal/L=2048/fv=8/stuck=0/centered/beta=0.25/lr=0.003/seed=0"):
        centered = Config.create(**report["runs"][name]["config"])
        assert (centered.train.nudge, centered.train.beta, centered.train.lr) == ("centered", 0.25, 0.003)


def test_levels_sweep_points(quick):
    _, report, _ = quick
    plan = sweep.QUICK
    lv = report["levels_sweep"]
    assert lv["levels"] == list(plan.levels) and list(lv["accuracy"]) == list(plan.level_presets)
    # linear-64 and linear-256 are the same device at equal L: one run per seed for both
    shared = [pt for pt in report["points"] if pt["preset"] == "linear-256" and pt["levels"] == 64]
    assert shared and all(pt["run"].startswith("fixed/linear-64/L=64/") for pt in shared)
    for point in report["points"]:
        cfg = Config.create(**report["runs"][point["run"]]["config"])
        assert (cfg.device.levels or PRESETS[cfg.device.preset].levels) == point["levels"]
        assert cfg.fixed.state_frac == point["state_frac"] and cfg.train.nudge == point["nudge"]
    rram = Config.create(**report["runs"]["fixed/rram-nonlinear/L=97/fv=8/stuck=0/positive/seed=0"]["config"])
    assert report["runs"]["fixed/rram-nonlinear/L=97/fv=8/stuck=0/positive/seed=0"]["formats"]["classes"] == \
        PRESETS["rram-nonlinear"].d2d_classes                        # variation on by default
    assert rram.device.d2d_classes is None
    assert report["timing"]["jobs"] == 2 and report["timing"]["wall_seconds"] > 0


def test_quick_sweep_markdown_names_the_presets_and_tables(quick):
    out, report, _ = quick
    md = (out / "sweep.md").read_text()
    for name, preset in PRESETS.items():
        assert f"| {name} |" in md
        assert preset.source in md
    for title in ("## Presets at their own levels", "## Stuck devices", "## Nudging: float vs fixed point",
                  "## Accuracy vs conductance levels L", "## Accuracy vs state width"):
        assert title in md
    assert f"**{sweep.QUICK.epochs} epochs**" in md and "(--quick)" in md and "mean ± sd over 2 seeds" in md
    ideal = next(d for d in report["defaults"] if d["preset"] == "ideal")
    assert f"| ideal | 2048 | 10 | stochastic | {sweep.cell(ideal['fixed'])} |" in md
    assert "| reram-array-om | 48 | 1 | carry |" in md
    assert "| network | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | A | B | C | D | E | F |" in md


def test_cell_names_lost_glyphs():
    stats = sweep.over_seeds([{"accuracy": 0.9375, "per_class": [1.0] * 14 + [0.0, 1.0]},
                              {"accuracy": 1.0, "per_class": [1.0] * 16}])
    assert stats["lost"] == ["E"] and stats["mean"] == pytest.approx(0.96875)
    assert sweep.cell(stats) == "0.9688 ± 0.0442 (lost E)"
    assert sweep.cell(sweep.over_seeds([{"accuracy": 1.0, "per_class": [1.0] * 16}])) == "1.0000 ± 0.0000"


def test_readme_block_is_regenerated(quick, tmp_path):
    _, report, _ = quick
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n\n{sweep.README_BEGIN}\nold numbers\n{sweep.README_END}\n\nafter\n")
    sweep.update_readme(readme, report)
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("# x\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert sweep.readme_block(report) in text
    sweep.update_readme(readme, report)
    assert readme.read_text() == text                                # idempotent
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    with pytest.raises(ValueError, match="no '<!-- memprop sweep: begin -->'"):
        sweep.update_readme(plain, report)


def test_results_do_not_depend_on_the_number_of_workers(quick, tmp_path):
    """A job's numbers depend only on its own config and seeds: a one-worker run of a smaller plan
    reproduces the two-worker quick run's numbers for the networks they share."""
    _, report, _ = quick
    plan = sweep.Plan(epochs=sweep.QUICK.epochs, trials=sweep.QUICK.trials, checkpoints=sweep.QUICK.checkpoints,
                      every=sweep.QUICK.every, seeds=(0,), levels=(64,), level_presets=("soft-bounds",), state_fracs=(8,),
                      stuck=(0.0,), stuck_preset="ideal", presets=("ideal",))
    small = sweep.run_sweep(tmp_path, jobs=1, plan=plan, progress=False)
    assert set(small["runs"]) == {"fixed/soft-bounds/L=64/fv=8/stuck=0/positive/seed=0",
                                  "fixed/ideal/L=2048/fv=8/stuck=0/positive/seed=0",
                                  "fixed/ideal/L=2048/fv=8/stuck=0/centered/beta=0.25/lr=0.003/seed=0",
                                  "float/positive/seed=0", "float/centered/beta=0.25/lr=0.003/seed=0"}
    for name, run in small["runs"].items():
        ref = report["runs"][name]
        for key in ("fingerprint", "accuracy", "per_class", "checkpoints", "final_loss", "final_steps"):
            assert run[key] == ref[key], (name, key)
    assert small["runs"]["float/positive/seed=0"]["ex_situ"]["ideal/stuck=0"] == \
        report["runs"]["float/positive/seed=0"]["ex_situ"]["ideal/stuck=0"]


def test_bad_arguments(tmp_path):
    result = CliRunner().invoke(main, ["sweep", "--jobs", "0"])
    assert result.exit_code == 2 and "--jobs" in result.output
    result = CliRunner().invoke(main, ["sweep", "--quick", "--readme", str(tmp_path / "missing.md")])
    assert result.exit_code == 2 and "--readme" in result.output
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    result = CliRunner().invoke(main, ["sweep", "--quick", "--out", str(tmp_path), "--readme", str(plain)])
    assert result.exit_code != 0 and result.output.startswith("Error: ") and "memprop sweep: begin" in result.output
    with pytest.raises(ValueError, match="must include 'ideal'"):
        sweep.run_sweep(Path("unused"), plan=sweep.Plan(1, 1, 1, 1, (0,), (16,), ("ideal",), (8,), (0.0,),
                                                        presets=("linear-64",)))
    with pytest.raises(ValueError, match="split evenly"):
        sweep.run_sweep(Path("unused"), plan=sweep.Plan(2, 3, 2, 1, (0,), (16,), ("ideal",), (8,), (0.0,)))
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        sweep.run_sweep(Path("unused"), jobs=0)


def test_full_plan_covers_the_brief():
    plan = sweep.FULL
    assert len(plan.seeds) >= 3 and plan.checkpoints >= 3 and plan.trials == 1000
    assert plan.stuck == (0.0, 0.05, 0.1, 0.2) and plan.stuck_preset == "rram-nonlinear"
    assert 256 in plan.levels and {"soft-bounds", "rram-nonlinear"} <= set(plan.level_presets)
    assert set(plan.presets) == set(PRESETS)
    jobs, points = sweep.plan_jobs(plan)
    assert len(jobs) == len(set(points.values())) + 2 * len(plan.seeds)     # + float, positive and centered
    own = {p: PRESETS[p].levels for p in PRESETS}
    keys = ({(p, own[p], 8, 0.0, "positive") for p in PRESETS}
            | {(p, lv, 8, 0.0, "positive") for p in plan.level_presets for lv in plan.levels}
            | {("ideal", 2048, fv, 0.0, "positive") for fv in plan.state_fracs}
            | {(plan.stuck_preset, own[plan.stuck_preset], 8, s, "positive") for s in plan.stuck}
            | {(plan.centered_preset, own[plan.centered_preset], 8, 0.0, "centered")})
    assert set(points) == {(*k, seed) for k in keys for seed in plan.seeds}
    fixed = [j for j in jobs if j.numerics == "fixed"]
    assert len(fixed) == len(set(points.values())) <= len(points) - len(plan.seeds)   # linear-256@64 = linear-64
