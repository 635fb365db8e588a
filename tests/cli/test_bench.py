"""`memprop bench`: the command runs and bench.json has its fields (no timing assertions)."""

from __future__ import annotations

import json
import statistics

import numpy as np

import pytest

from click.testing import CliRunner

from memprop.cli import main


def test_bench_runs_and_writes_json(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--epochs", "1", "--repeats", "2", "--trials", "3",
                                       "--no-hardware", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "| EqProp on hex16 | float | fixed (ideal) | fixed / float |" in out
    assert "Training time ratio fixed / float = " in out and "wrote" in out
    assert (tmp_path / "bench.md").read_text().startswith("| EqProp on hex16 |")
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
    speed = report["float_speed"]
    assert speed["speedup"] == report["float-reference"]["train_seconds"] / report["float"]["train_seconds"]
    assert len(report["runs"]["float-reference"]["train_seconds"]) == 2
    assert "Float speed-up over the original loop" in out
    assert speed["kernel"] in ("compiled", "fast")
    if speed["kernel"] == "compiled":       # numba installed: the numpy loop is timed beside it
        assert speed["compiled_over_numpy_loop"] == (report["float-numpy"]["train_seconds"]
                                                     / report["float"]["train_seconds"])
        assert report["float-numpy"]["accuracy"] == report["float"]["accuracy"]
        loops = report["fixed-numpy"]            # the fixed-point model's numpy loops: same results
        assert loops["ratio"] == loops["train_seconds"] / report["float-numpy"]["train_seconds"]
        assert loops["accuracy"] == report["fixed"]["accuracy"] and "Without numba" in out


def test_bench_without_out_prints_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["bench", "--epochs", "1", "--repeats", "1", "--trials", "1",
                                       "--device", "linear-64", "--no-hardware"])
    assert result.exit_code == 0, result.output
    assert "fixed (linear-64)" in result.output
    assert not list(tmp_path.iterdir())


def test_bench_bad_device_is_a_one_line_error():
    result = CliRunner().invoke(main, ["bench", "--device", "nope", "--epochs", "1", "--repeats", "1"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: invalid config: device: unknown device preset 'nope'; choose one of "
        "['ideal', 'linear-256', 'linear-64', 'reram-array-om', 'rram-nonlinear', 'soft-bounds']"]


def test_bench_reports_classification_cost_per_board(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--epochs", "1", "--repeats", "1", "--trials", "1",
                                       "--no-hardware", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Digits classifier 64-100-10" in result.output and "images/s" in result.output
    section = json.loads((tmp_path / "bench.json").read_text())["classification"]
    assert section["epochs"] == 1 and section["images"] == 450
    for board in section["boards"]:
        assert board["board"] in ("icebreaker", "ulx3s")
        steps = board["steps_per_image"]
        # cycles per image = the cycle model at the mean step count (RELAX = 1 + steps x step cycles)
        assert board["cycles_per_image"] == pytest.approx(1 + steps * board["step_cycles"])
        assert board["images_per_s"] == pytest.approx(board["clock_mhz"] * 1e6 / board["cycles_per_image"])
        assert board["ratio"] == pytest.approx(board["images_per_s"] / board["numpy_images_per_s"])
        # a training sample: its free and nudged relaxations, two STOREs and one LEARN
        assert board["train_sample_cycles"] > board["learn_cycles"] > 0
        assert board["train_sample_cycles"] > board["step_cycles"] * 2
    assert section["boards"][1]["step_cycles"] < section["boards"][0]["step_cycles"]   # 16 lanes vs 4
    # each board costs the classifier `memprop build --task digits` builds for it
    assert [b["layers"] for b in section["boards"]] == [[64, 50, 10], [64, 100, 10]]


# -- the hardware section -------------------------------------------------------------------------

HW_KEYS = {"board", "n", "topology", "lanes", "fmax_mhz", "step_cycles", "learn_cycles", "train_samples_per_s",
           "train_samples_per_s_batch1", "recall_us", "ratio", "ratio_batch1"}


def test_bench_quick_json_has_a_hardware_entry_per_board(tmp_path):
    """--quick --json: stdout is the JSON report; `hardware` lists the board with every required key.
    Without a build record fmax (and what needs it) is null, and the report says how to get one."""
    result = CliRunner().invoke(main, ["bench", "--quick", "--json", "--board", "icebreaker",
                                       "--builds", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (entry,) = report["hardware"]
    assert HW_KEYS <= set(entry)
    assert entry["board"] == "icebreaker" and entry["fmax_mhz"] is None and entry["ratio"] is None
    assert "memprop build --board icebreaker" in entry["fmax_source"]["note"]
    assert entry["learn_cycles"]["untrained"] > 0 and entry["step_cycles"] > 0
    assert entry["float_samples_per_s"] > 0 and entry["float_samples_per_s_batch1"] > 0


def test_projection_uses_the_recorded_fmax_of_the_same_design(tmp_path):
    """fmax comes from build.json when it is this design's (fingerprint, lanes); the projections are
    fmax / cycles per sample, the ratios divide by the float rates measured in the same run."""
    from memprop import hwbench
    from memprop.boards.build import get_board
    from memprop.model import patterns

    cfg = get_board("icebreaker").default_config()
    record = tmp_path / "icebreaker" / "build.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"fmax_mhz": 20.0, "fingerprint": cfg.fingerprint, "lanes": cfg.hw.lanes,
                                  "timing_met": True, "clock_mhz": 12.0,
                                  "utilisation": {"dsp": {"used": 7, "available": 8}}}))
    rates = {"protocol": {"samples_per_s": 100.0}, "batch1": {"samples_per_s": 10.0}}
    e = hwbench.board_entry("icebreaker", patterns.load(), 1, 1, tmp_path, rates, simulate=False)
    assert e["fmax_mhz"] == 20.0 and e["fmax_source"]["source"] == str(record)
    t = e["training"]
    assert e["train_samples_per_s"] == pytest.approx(20e6 * t["samples"] / t["cycles"])
    assert e["train_samples_per_s_batch1"] == pytest.approx(20e6 * t["samples_batch1"] / t["cycles_batch1"])
    assert e["ratio"] == pytest.approx(e["train_samples_per_s"] / 100.0)
    assert e["ratio_batch1"] == pytest.approx(e["train_samples_per_s_batch1"] / 10.0)
    assert e["recall_us"] == pytest.approx(e["recall_cycles"]["trained"] / 20.0)
    # the DSP ceiling: 8 multipliers, each one multiply a cycle, one per synapse per relaxation step
    steps = sum(p["steps"] for p in t["per_epoch"])
    ceiling = e["dsp_ceiling"]["protocol"]
    assert ceiling["samples_per_s"] == pytest.approx(8 * 20e6 * t["samples"] / (steps * e["synapses"]))
    assert ceiling["ratio"] == pytest.approx(ceiling["samples_per_s"] / 100.0)
    # no design beats it, this one (4 lanes, LEARN and latency counted) least of all
    assert ceiling["samples_per_s"] > e["train_samples_per_s"]
    assert e["dsp_ceiling"]["batch1"]["samples_per_s"] > e["train_samples_per_s_batch1"]
    # with this design's LEARN and STORE: the ideal relaxation plus the run's learning cycles, between
    # the engine (whose relaxation is slower) and the ceiling (whose learning is free)
    learning = sum(p["learn"] + p["store"] for p in t["per_epoch"])
    assert ceiling["samples_per_s_with_learn"] == pytest.approx(
        20e6 * t["samples"] / (steps * e["synapses"] / 8 + learning))
    assert e["train_samples_per_s"] < ceiling["samples_per_s_with_learn"] < ceiling["samples_per_s"]
    assert ceiling["ratio_with_learn"] == pytest.approx(ceiling["samples_per_s_with_learn"] / 100.0)
    # a record of another design is not used
    record.write_text(json.dumps({"fmax_mhz": 20.0, "fingerprint": "0" * 16, "lanes": cfg.hw.lanes}))
    assert hwbench.build_record("icebreaker", cfg, tmp_path)["fmax_mhz"] is None
    # nor one of the same computation in other hardware (hw is not in the fingerprint)
    other = json.loads(cfg.to_json())
    other["hw"]["threefry"] = "pipelined"
    record.write_text(json.dumps({"fmax_mhz": 20.0, "fingerprint": cfg.fingerprint, "lanes": cfg.hw.lanes,
                                  "config": other}))
    got = hwbench.build_record("icebreaker", cfg, tmp_path)
    assert got["fmax_mhz"] is None and "threefry 'pipelined', default 'iterative'" in got["note"]
    other["hw"]["threefry"] = cfg.hw.threefry
    record.write_text(json.dumps({"fmax_mhz": 20.0, "fingerprint": cfg.fingerprint, "lanes": cfg.hw.lanes,
                                  "config": other}))
    assert hwbench.build_record("icebreaker", cfg, tmp_path)["fmax_mhz"] == 20.0


def test_float_rates_time_warm_runs_only(monkeypatch):
    """The float model is timed after an untimed warm-up epoch (the first training of a process
    compiles kernels), as the median of at least FLOAT_MIN_REPEATS runs."""
    import time as time_module

    from memprop import hwbench
    from memprop.boards.build import get_board
    from memprop.model import patterns

    calls = []

    def fake_train(cfg, pats, progress=False):
        calls.append((cfg.train.epochs, cfg.train.batch_size))
        if len(calls) == 1:
            time_module.sleep(0.3)            # the cold first run

    monkeypatch.setattr(hwbench.training, "train", fake_train)
    rates = hwbench.float_rates(get_board("ulx3s").default_config(), patterns.load(), 2, 1)
    runs = hwbench.FLOAT_MIN_REPEATS
    assert calls == [(1, 8)] + [(2, 8)] * runs + [(1, 1)] + [(2, 1)] * runs
    for name in ("protocol", "batch1"):
        assert len(rates[name]["seconds"]) == runs and max(rates[name]["seconds"]) < 0.1


def test_minibatch_cost_counts_every_command():
    """Relaxation: one command per phase and sample plus steps x step cycles; two STOREs per sample."""
    import numpy as np

    from memprop import hwbench
    from memprop.model.config import Config
    from memprop.model.fixed import LearnStep
    from memprop.rtl import cycles
    from memprop.rtl import hostmap as hm
    from memprop.rtl.schedule import Schedule

    cfg = Config.for_algorithm("eqprop", network={"n": 10}, numerics="fixed", train={"batch_size": 4},
                               device={"preset": "linear-64"})
    step = LearnStep(np.zeros((10, 10), int), np.zeros(10, int))
    cost = hwbench.minibatch_cost(cfg, step, {"steps": 7.5}, 2)
    sch = Schedule(cfg)
    assert cost.steps == 15
    assert cost.relax == 2 * 2 * cycles.COMMAND_OVERHEAD + 15 * cycles.step_cycles(sch)
    assert cost.store == 2 * 2 * cycles.store_cycles(10) + 2 * 2 * cycles.store_cycles(10)   # 2 unused slots
    # from RELAX_STORE_LANES lanes RELAX stores the 2 samples' fixed points as it goes; the 2 unused
    # slots still take a STORE each for HI and LO
    wide = cfg.replace(hw={"lanes": hm.RELAX_STORE_LANES})
    assert hwbench.minibatch_cost(wide, step, {"steps": 7.5}, 2).store == 2 * 2 * cycles.store_cycles(10)
    layered = wide.replace(network={"topology": "layered", "layers": [4, 4, 2]})     # clamped inputs: STOREs
    assert hwbench.minibatch_cost(layered, step, {"steps": 7.5}, 2).store == 4 * 2 * cycles.store_cycles(10)
    assert cost.learn == cycles.learn_cycles(sch, step.pulses_w, step.pulses_b, step.changed)


def test_minibatch_cost_counts_the_steps_that_read_kept_sums():
    """hw.keep_sums: each sample whose free phase converged starts its nudged phase with a step of
    N rows + L instead of D + L; centered: only the plus phase (the minus one follows a RESTORE)."""
    import numpy as np
    import pytest

    from memprop import hwbench
    from memprop.model.config import Config
    from memprop.model.fixed import LearnStep
    from memprop.rtl import cycles
    from memprop.rtl.schedule import Schedule

    cfg = Config.for_algorithm("eqprop", network={"n": 10}, numerics="fixed", train={"batch_size": 4},
                               device={"preset": "linear-64"}, hw={"keep_sums": True})
    step = LearnStep(np.zeros((10, 10), int), np.zeros(10, int))
    sch = Schedule(cfg)
    plain = hwbench.minibatch_cost(cfg.replace(hw={"keep_sums": False}), step, {"steps": 7.5}, 2)
    kept = hwbench.minibatch_cost(cfg, step, {"steps": 7.5, "free_converged": 2}, 2)
    assert plain.relax - kept.relax == 2 * (cycles.step_cycles(sch) - cycles.reuse_step_cycles(sch)) > 0
    assert cycles.reuse_step_cycles(sch) == 10 + (cycles.step_cycles(sch) - sch.depth)
    with pytest.raises(ValueError, match="tol_lsb = 0"):
        hwbench.minibatch_cost(cfg.replace(fixed={"tol_lsb": 1}), step, {"steps": 7.5, "free_converged": 2}, 2)
    conv = np.array([True, False])
    assert hwbench.reused_phases(cfg, conv, 1) == [False, False, True, False, False, False]
    assert hwbench.reused_phases(cfg, conv, -1) == [False, False, False, False, True, False]
    centered = cfg.replace(train={"nudge": "centered"})
    assert hwbench.reused_phases(centered, conv, -1) == [False, False, True, False, False, False]
    assert hwbench.reused_phases(cfg.replace(hw={"keep_sums": False}), conv, 1) == [False] * 6


def test_activity_counts_the_activations_each_step_changes():
    """hwbench.activity against an independent count: the free phase relaxed 1, 2, ... steps
    (max_steps), activations compared between consecutive step counts, over the steps each sample
    takes. The learning step runs on a copy: the parameters are left as they were."""
    from memprop import hwbench
    from memprop.model import fixed
    from memprop.model.numerics import Formats
    from memprop.model.config import Config
    from memprop.rtl.verify import trained_start

    cfg = Config.for_algorithm("eqprop", numerics="fixed", network={"n": 12}, train={"batch_size": 3})
    fmt = Formats(cfg)
    _, params = trained_start(cfg)
    before = params.copy()
    rng = np.random.default_rng(5)
    x = rng.choice([-1, 1], (3, 12))
    minibatch = {"x": x.tolist(), "y": x.tolist()}
    got = hwbench.activity(cfg, params, minibatch)

    W, b = params.weights(fmt.device)
    drive = fixed.fixed_drive_for(fmt, x)
    full = fixed.fixed_relax(fmt, W, b, drive)
    counts = []
    prev = fixed.activation(fmt, fixed.fixed_relax(fmt, W, b, drive, max_steps=0).v)
    for k in range(1, int(full.steps.max()) + 1):
        now = fixed.activation(fmt, fixed.fixed_relax(fmt, W, b, drive, max_steps=k).v)
        counts += [int((now[i] != prev[i]).sum()) for i in range(3) if k <= full.steps[i]]
        prev = now
    assert got["free"] == pytest.approx(np.mean(counts))
    assert 0 <= got["nudged"] <= 12 and got["free"] > 0
    assert np.array_equal(params.codes_w, before.codes_w) and params.updates == before.updates


def test_the_demo_names_how_fast_the_learner_draws():
    """The demo's cycle line says which Threefry units its LEARN figure came from."""
    from memprop.boards.build import get_board
    from memprop.hwbench import demo_cycles, demo_line, draw_rate
    from memprop.rtl.learnplan import LearnPlan

    ulx3s = get_board("ulx3s").default_config()
    assert draw_rate(LearnPlan(ulx3s)) == "2 Threefry pipelines, 2 draws a cycle"
    assert draw_rate(LearnPlan(ulx3s.replace(hw={"threefry": "quad"}))) == "4 Threefry pipelines, 4 draws a cycle"
    assert draw_rate(LearnPlan(ulx3s.replace(hw={"threefry": "pipelined"}))) == "1 Threefry pipeline, 1 draw a cycle"
    assert draw_rate(LearnPlan(ulx3s.replace(hw={"threefry": "iterative"}))) == "one Threefry draw per 18 cycles"
    assert draw_rate(LearnPlan(get_board("icebreaker").default_config())) == "no random draws"   # nearest rounding
    line = demo_line(demo_cycles(ulx3s, {"relax": [1000] * 8, "learn": 5000, "recall": [1900]}))
    assert ("LEARN 5,000 per minibatch of 8 (16 learning lanes, 2 Threefry pipelines, 2 draws a cycle, "
            "passing over unchanged units)") in line
    plain = demo_line(demo_cycles(ulx3s.replace(hw={"learn_skip": False}),
                                  {"relax": [1000] * 8, "learn": 5000, "recall": [1900]}))
    assert "2 draws a cycle)" in plain and "unchanged" not in plain
    assert "(223 per step, 118 reading the kept sums)" in line       # hw.keep_sums: 100 rows + 18
    assert "reading the kept sums" not in demo_line(demo_cycles(ulx3s.replace(hw={"keep_sums": False}),
                                                               {"relax": [1000] * 8, "learn": 5000, "recall": [1900]}))


def test_simulate_board_expects_what_the_engine_does_after_learn(monkeypatch):
    """simulate_board's model of the hwbench workload (a minibatch with its LEARN, a STORE, then
    recalls): the recalls run on the weights the LEARN programmed, and a nudged phase after an
    exact free fixed point reads the kept sums. A fake engine that answers exactly that passes;
    one that recalls with the weights from before LEARN does not."""
    import numpy as np

    from memprop import hwbench
    from memprop.model import fixed, patterns
    from memprop.model.config import Config
    from memprop.model.numerics import Formats
    from memprop.rtl import cycles
    from memprop.rtl.schedule import Schedule
    from memprop.rtl.verify import make_case

    cfg = Config.for_algorithm("eqprop", network={"n": 10, "max_steps": 40}, numerics="fixed",
                               device={"preset": "linear-64"}, train={"batch_size": 2},
                               hw={"lanes": 4, "keep_sums": True})
    fmt, sch = Formats(cfg), Schedule(cfg)
    case = make_case(cfg, 5)
    x, y = case.drive.x, case.target.values
    recall = np.where(np.random.default_rng(1).random((3, 10)) < 0.5, 1, -1)
    learned = case.params.copy()
    drive, target = fixed.fixed_drive_for(fmt, x), fixed.fixed_target_for(fmt, y)
    step, _ = fixed.eqprop_fixed_update(fmt, learned, drive, target)

    def engine(params):
        """What the engine reports for the workload, from the model: phases in the driver's order."""
        W, b = case.params.weights(fmt.device)
        free = fixed.fixed_relax(fmt, W, b, drive)
        nudged = fixed.fixed_relax(fmt, W, b, drive, target, 1, v_start=free.v)
        reused = [False] * 2 + [bool(c) for c in free.converged]
        steps = [int(s) for s in free.steps] + [int(s) for s in nudged.steps]
        Wr, br = params.weights(fmt.device)
        rec = fixed.fixed_relax(fmt, Wr, br, fixed.fixed_drive_for(fmt, recall))
        return {"ok": True, "steps": steps, "relax": [cycles.relax_cycles(sch, s, r) for s, r in zip(steps, reused)],
                "learn": cycles.learn_cycles(sch, step.pulses_w, step.pulses_b, step.changed),
                "store": cycles.store_cycles(10), "recall": [cycles.relax_cycles(sch, int(s)) for s in rec.steps]}

    answers = {}
    monkeypatch.setattr("memprop.sim.engine.run_engine",
                        lambda *a, **k: type("Run", (), {"cycles": 1, "results": [answers["now"]]})())
    states = {"s": {"params": case.params, "minibatch": {"x": x.tolist(), "y": y.tolist()},
                    "recall_inputs": recall.tolist()}}
    answers["now"] = engine(learned)
    assert any(answers["now"]["relax"][2:][i] < cycles.relax_cycles(sch, answers["now"]["steps"][2 + i])
               for i in range(2)), "the case must reuse the kept sums in a nudged phase"
    assert hwbench.simulate_board(cfg, states, patterns.load())["states"]["s"]["ok"]
    answers["now"] = engine(case.params)
    assert answers["now"]["recall"] != engine(learned)["recall"], "LEARN must change a recall here"
    assert not hwbench.simulate_board(cfg, states, patterns.load())["states"]["s"]["ok"]
