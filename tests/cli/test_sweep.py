"""`memprop sweep`: the quick run writes valid files; numbers do not depend on the worker count."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_quick_sweep_results_are_valid(quick):
    _, report, _ = quick
    plan = sweep.QUICK
    pr = report["protocol"]
    assert report["quick"] is True
    assert (pr["epochs"], pr["trials"], pr["flip"], pr["count"], pr["n"]) == (plan.epochs, plan.trials, 0.1, 16, 100)
    step = 1 / (16 * plan.trials)                           # accuracies are successes out of 16 x trials

    def valid(acc: float) -> bool:
        return 0.0 <= acc <= 1.0 and abs(acc / step - round(acc / step)) < 1e-6

    lv = report["levels_sweep"]
    assert lv["levels"] == list(plan.levels)
    assert set(lv["accuracy"]) == set(PRESETS)
    assert all(len(a) == len(plan.levels) and all(map(valid, a)) for a in lv["accuracy"].values())
    # linear-64 and linear-256 are the same device at equal L: one run, the same numbers
    assert lv["accuracy"]["linear-64"] == lv["accuracy"]["linear-256"]
    st = report["state_sweep"]
    assert st["state_frac"] == list(plan.state_fracs) and all(map(valid, st["accuracy"]))
    assert st["state_bits"] == [fv + 2 for fv in plan.state_fracs]          # [-2^fv, 2^fv]
    assert st["acc_bits"] == sorted(st["acc_bits"]) and len(set(st["acc_bits"])) == len(st["acc_bits"])
    float_run = report["runs"]["float"]
    assert [d["preset"] for d in report["defaults"]] == list(PRESETS)
    for d in report["defaults"]:
        assert d["levels"] == PRESETS[d["preset"]].levels
        assert d["float_accuracy"] == float_run["accuracy"]
        assert d["ex_situ_accuracy"] == float_run["ex_situ"][d["preset"]]["accuracy"]
        assert valid(d["fixed_accuracy"]) and valid(d["ex_situ_accuracy"])
    # every run: its stored config rebuilds to its fingerprint, and it is what the point asked for
    for name, run in report["runs"].items():
        cfg = Config.create(**run["config"])
        assert cfg.fingerprint == run["fingerprint"], name
        assert cfg.train.epochs == plan.epochs and cfg.train.algo == "eqprop"
        assert len(run["per_class"]) == 16 and valid(run["accuracy"])
        assert run["seconds"] > 0 and run["cpu_seconds"] > 0
        if name != "float":
            assert cfg.numerics == "fixed"
            assert run["formats"]["levels"] == int(name.split("/L=")[1].split("/")[0])
            assert run["formats"]["fv"] == int(name.split("fv=")[1])
    for point in report["points"]:
        cfg = Config.create(**report["runs"][point["run"]]["config"])
        assert (cfg.device.levels or PRESETS[cfg.device.preset].levels) == point["levels"]
        assert cfg.fixed.state_frac == point["state_frac"]
        same = PRESETS[cfg.device.preset]
        assert (same.mode, same.curve, same.c2c, same.d2d) == tuple(
            getattr(PRESETS[point["preset"]], k) for k in ("mode", "curve", "c2c", "d2d"))
    rram = Config.create(**report["runs"]["fixed/rram-nonlinear/L=97/fv=8"]["config"])
    assert rram.device.d2d_classes == sweep.D2D_CLASSES
    assert report["timing"]["jobs"] == 2 and report["timing"]["wall_seconds"] > 0


def test_quick_sweep_markdown_names_the_presets_and_tables(quick):
    out, report, _ = quick
    md = (out / "sweep.md").read_text()
    for name, preset in PRESETS.items():
        assert f"| {name} |" in md
        assert preset.source in md
    assert "## Accuracy vs conductance levels L" in md and "## Accuracy vs state width" in md
    assert "## Presets at their own levels vs the float model" in md
    assert f"**{sweep.QUICK.epochs} epochs**" in md and "(--quick)" in md
    assert "![Accuracy vs levels and state width](sweep.png)" in md
    ideal = next(d for d in report["defaults"] if d["preset"] == "ideal")
    assert f"| ideal | 2048 | {ideal['fixed_accuracy']:.4f} | {ideal['float_accuracy']:.4f} |" in md


def test_results_do_not_depend_on_the_number_of_workers(quick, tmp_path):
    """A job's numbers depend only on its own config and seeds: a one-worker run of a smaller plan
    reproduces the two-worker quick run's numbers for the networks they share."""
    _, report, _ = quick
    plan = sweep.Plan(epochs=sweep.QUICK.epochs, trials=sweep.QUICK.trials, levels=(64,), state_fracs=(8,),
                      presets=("ideal",))
    small = sweep.run_sweep(tmp_path, jobs=1, plan=plan, progress=False)
    assert set(small["runs"]) == {"fixed/ideal/L=64/fv=8", "fixed/ideal/L=2048/fv=8", "float"}
    for name, run in small["runs"].items():
        ref = report["runs"][name]
        for key in ("fingerprint", "accuracy", "per_class", "final_loss", "final_steps"):
            assert run[key] == ref[key], (name, key)
    assert small["runs"]["float"]["ex_situ"]["ideal"] == report["runs"]["float"]["ex_situ"]["ideal"]


def test_bad_arguments():
    result = CliRunner().invoke(main, ["sweep", "--jobs", "0"])
    assert result.exit_code == 2 and "--jobs" in result.output
    with pytest.raises(ValueError, match="must include 'ideal'"):
        sweep.run_sweep(Path("unused"), plan=sweep.Plan(1, 1, (16,), (8,), presets=("linear-64",)))
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        sweep.run_sweep(Path("unused"), jobs=0)


def test_full_plan_covers_the_brief():
    plan = sweep.FULL
    assert plan.levels == (16, 32, 64, 128, 256) and plan.state_fracs == (4, 5, 6, 8, 10)
    assert plan.trials == 1000 and set(plan.presets) == set(PRESETS)
    jobs, points = sweep.plan_jobs(plan)
    assert len(points) == len(PRESETS) * (len(plan.levels) + 1) + len(plan.state_fracs) - 1 - 3
    assert len(jobs) == len(set(points.values())) + 1            # + the float model
    assert sum(j.numerics == "fixed" for j in jobs) == 26           # linear-64 at L is linear-256 at L
