"""`memprop demo`: the main job, end to end.

  1. float model   - train EqProp on the 16 glyphs, recall table
  2. fixed point   - in-situ EqProp with the board's device preset and widths, recall table;
                     the same design with 10 % stuck devices, in situ vs float weights programmed;
                     measured ReRAM (reram-array-om) in situ, stochastic rounding vs carry
  3. simulation    - the engine's Verilog under cocotb + Verilator with the trained devices:
                     recall and a training minibatch, bit-exact against the fixed-point model, and
                     the engine's cycle counter for a minibatch (LEARN included) and recalls;
                     then the digits classification workload (memprop.classdemo)
  4. virtual board - the board design (UART + link + engine) in Verilator behind a
                     pseudo-terminal: `memprop board load` and `board recall` over it, the
                     recall equal to the fixed-point model's
  5. bitstream     - YoWASP yosys + nextpnr for the board, and the trained weights exported
                     as the image the host link loads; at its fmax, the projected training
                     samples/s and recall latency (the full comparison: `memprop bench`)
  formal           - the host link's properties proven by k-induction, and a link without its
                     CRC check caught by them (the whole suite: `memprop formal`)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from memprop.model import patterns as pattern_sets
from memprop.model import recall, training, weights
from memprop.model.config import Config
from memprop.model.fixed import FixedParams

FLIPS = (0.10, 0.15, 0.20, 0.25)


def markdown_table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


STAGES = 5


def multipliers_line(board: str, cfg: Config, utilisation: dict) -> str:
    """How the build made the engine's multipliers: `hw.dsp` on the board's platform (rtl/dsp.py)."""
    from memprop.boards.build import get_board
    from memprop.rtl.dsp import resolve_backend

    backend = resolve_backend(cfg.hw.dsp, get_board(board).make_platform())
    used = utilisation.get("dsp", {}).get("used", "?")
    how = ("MULT18X18D, each with its product register inside the block" if backend == "mult18x18d"
           else "mapped by yosys")
    return f"multipliers: {used} DSP blocks, {how} (hw.dsp = {cfg.hw.dsp!r})"


def _stage(k: int, text: str) -> float:
    click.secho(f"[{k}/{STAGES}] {text}", bold=True)
    return time.perf_counter()


def _stuck_devices(cfg_fixed: Config, params_float, pats, trials: int, stuck: float = 0.1) -> dict:
    """The same design with 10 % stuck devices: in-situ training beside the float weights programmed."""
    cfg = cfg_fixed.replace(device={"stuck": stuck})
    in_situ, _ = training.train(cfg, pats, progress=False)
    programmed = FixedParams.from_float(cfg, params_float.W, params_float.b)
    result = {"stuck": stuck, "in_situ": recall.evaluate(in_situ, cfg, pats, 0.1, trials, seed=1).accuracy,
              "programmed": recall.evaluate(programmed, cfg, pats, 0.1, trials, seed=1).accuracy}
    result["line"] = (f"{100 * stuck:g} % stuck devices ({cfg.device.preset}, p = 0.1): in-situ EqProp "
                      f"{result['in_situ']:.4f}, float weights programmed {result['programmed']:.4f}")
    click.echo(result["line"])
    return result


def _measured_reram(pats, epochs: int, trials: int) -> dict:
    """aihwkit's measured-ReRAM preset (one coarse device per weight) in situ: stochastic rounding against
    truncation with carry, the rounding it needs (docs/numerics.md section 5)."""
    from memprop.sweep import DEFAULT_STATE_FRAC, fixed_config

    cfg = fixed_config(pats.size, "reram-array-om", None, DEFAULT_STATE_FRAC, epochs)
    result = {"epochs": epochs}
    for rounding in ("stochastic", "carry"):
        run = cfg.replace(fixed={"rounding": rounding})
        params, _ = training.train(run, pats, progress=False)
        result[rounding] = recall.evaluate(params, run, pats, 0.1, trials, seed=1).accuracy
    result["line"] = (f"reram-array-om (aihwkit's measured ReRAM, one device per weight, {epochs} epochs, p = 0.1): "
                      f"in situ with stochastic rounding {result['stochastic']:.4f}, with carry {result['carry']:.4f}")
    click.echo(result["line"])
    return result


def run_demo(out: Path, quick: bool = False, board: str | None = None, simulator: str = "verilator",
             skip_bitstream: bool = False, skip_board: bool = False) -> dict:
    from memprop.boards.build import get_board

    out.mkdir(parents=True, exist_ok=True)
    board = board or ("icebreaker" if quick else "ulx3s")
    pats = pattern_sets.load()
    epochs, trials = (30, 100) if quick else (300, 1000)
    report: dict = {"board": board, "quick": quick, "patterns": pats.source}

    t = _stage(1, f"float model: EqProp, N={pats.size}, {pats.count} glyphs (mean |r| "
                  f"{pats.mean_abs_correlation():.3f}), {epochs} epochs")
    cfg_float = Config.for_algorithm("eqprop", network={"n": pats.size}, train={"epochs": epochs})
    params_float, _ = training.train(cfg_float, pats)
    weights.save(out / "eqprop_float.npz", params_float, cfg_float, patterns=pats.source)
    float_results = {str(p): recall.evaluate(params_float, cfg_float, pats, p, trials, seed=1) for p in FLIPS}
    report["float"] = {p: r.accuracy for p, r in float_results.items()}
    report["bound"] = {p: r.bound for p, r in float_results.items()}   # nearest-pattern decoder, same inputs
    report["float_seconds"] = time.perf_counter() - t

    hw = get_board(board).default_config()
    cfg_fixed = hw.replace(train={"epochs": epochs})
    net = cfg_fixed.network
    t = _stage(2, f"fixed point: in-situ EqProp on {cfg_fixed.device.preset} devices ({board} design: "
                  f"N={net.n} {net.topology}{f' K={net.band}' if net.band else ''}, P={cfg_fixed.hw.lanes}"
                  f"{', each symmetric pair streamed once (fold)' if cfg_fixed.hw.fold else ''})")
    params_fixed, _ = training.train(cfg_fixed, pats)
    fixed_file = weights.save(out / "eqprop_fixed.npz", params_fixed, cfg_fixed, patterns=pats.source)
    report["fixed"] = {str(p): recall.evaluate(params_fixed, cfg_fixed, pats, p, trials, seed=1).accuracy
                       for p in FLIPS}
    if net.topology != "dense":
        cfg_float_hw = Config.for_algorithm("eqprop", network={"n": net.n, "topology": net.topology, "band": net.band},
                                            train={"epochs": epochs})
        params_band, _ = training.train(cfg_float_hw, pats)
        report["float_same_topology"] = {str(p): recall.evaluate(params_band, cfg_float_hw, pats, p, trials, seed=1)
                                         .accuracy for p in FLIPS}
    report["fixed_seconds"] = time.perf_counter() - t
    report["stuck_devices"] = _stuck_devices(cfg_fixed, params_band if net.topology != "dense" else params_float,
                                             pats, trials)
    report["measured_reram"] = _measured_reram(pats, min(epochs, 120), trials)
    rows = [[p, report["float"][str(p)]] + ([report["float_same_topology"][str(p)]] if "float_same_topology" in report
                                            else []) + [report["fixed"][str(p)], report["bound"][str(p)]] for p in FLIPS]
    header = ["flip p", "float, dense"] + (["float, same band"] if "float_same_topology" in report else []) + \
        [f"fixed, {cfg_fixed.device.preset}", "nearest-pattern bound"]
    recall_table = markdown_table(header, rows)
    click.echo(recall_table)

    t = _stage(3, f"bit-exact simulation: cocotb + {simulator}, the trained devices loaded into the engine")
    from memprop.sim.engine import run_engine

    sim_trials = 1 if quick else 2
    from memprop import hwbench

    timing = hwbench.demo_workload(cfg_fixed, fixed_file, pats)
    run = run_engine(cfg_fixed, [], [
        {"kind": "recall", "weights": str(fixed_file), "trials": sim_trials, "flip": 0.1, "seed": 7},
        {"kind": "training", "epochs": 1, "minibatches": 1},
        timing,
    ], simulator=simulator, run_name="demo")
    rec = next((r for r in run.results if r.get("workload") == "recall"), {})
    report["simulation"] = {"simulator": simulator, "passed": run.passed, "mismatches": len(run.mismatches),
                            "samples": rec.get("samples"), "accuracy": rec.get("accuracy"), "cycles": run.cycles,
                            "cycles_per_second": round(run.cycles / run.sim_seconds) if run.sim_seconds else None,
                            "seconds": round(run.seconds, 1)}
    sim_line = (f"{rec.get('samples')} recalls + 1 training minibatch: {len(run.mismatches)} mismatches, "
                f"{run.cycles} cycles simulated ({report['simulation']['cycles_per_second']} cycles/s)")
    click.echo(sim_line)
    measured = next((r for r in run.results if r.get("workload") == "hwbench" and r.get("ok")), None)
    if measured:
        report["engine_cycles"] = hwbench.demo_cycles(cfg_fixed, measured)
        click.echo(hwbench.demo_line(report["engine_cycles"]))
    if not run.passed:
        raise click.ClickException("the engine differs from the model: " +
                                   "; ".join(str(m.get("mismatch")) for m in run.mismatches)[:2000])

    from memprop.classdemo import run_classification_demo

    report["classification"] = run_classification_demo(out, board, quick, simulator)

    board_line = ""
    if skip_board:
        click.echo(f"[4/{STAGES}] virtual board: skipped (--no-board)")
    else:
        _stage(4, f"the trained weights on the virtual {board} (its design in Verilator behind a pseudo-terminal)")
        report["board"], board_line = _virtual_board(board, cfg_fixed, params_fixed, pats, quick)
        click.echo(board_line)

    if skip_bitstream:
        click.echo(f"[5/{STAGES}] bitstream: skipped (--no-bitstream)")
    else:
        t = _stage(5, f"bitstream for {board} (YoWASP), and the trained weights as a host-link image")
        from memprop.boards.build import build, placement_line
        from memprop.boards.image import from_weights, write_image
        from memprop.boards.timing import format_slow

        build_report = build(board, cfg_fixed, out / board)
        image, _ = from_weights(params_fixed, cfg_fixed, None, source=str(fixed_file))
        paths = write_image(image, out / "image")
        report["bitstream"] = {k: build_report[k] for k in ("bitstream", "device", "fmax_mhz", "clock_mhz",
                                                             "timing_met", "utilisation", "wall_s")}
        report["image"] = str(paths["image"])
        util = ", ".join(f"{k} {u['used']}/{u['available']}" for k, u in build_report["utilisation"].items()
                         if u.get("available"))
        depth = build_report["logic_depth"]
        report["bitstream"]["logic_depth"] = {k: depth[k] for k in ("max_levels", "deep", "endpoints_deep")}
        click.echo(f"{build_report['bitstream']}: {util}; fmax {build_report['fmax_mhz']} MHz "
                   f"(clock {build_report['clock_mhz']} MHz); image {paths['image']}")
        report["bitstream"]["seeds"] = build_report["seeds"]
        if placements := placement_line(build_report):   # the ULX3S places with three seeds, keeps the fastest
            click.echo(placements)
        report["bitstream"]["multipliers"] = line = multipliers_line(board, cfg_fixed, build_report["utilisation"])
        click.echo(line)
        click.echo(f"logic depth: {depth['max_levels']} LUT levels at most, {depth['endpoints_deep']} endpoints at "
                   f"{depth['deep']} or more (build.json: the deepest register pairs)")
        slow = build_report.get("slow_registers")
        if slow is not None:                       # ECP5: every register input against the board's goal
            report["bitstream"]["slow_registers"] = {k: slow[k] for k in ("target_mhz", "endpoints_failing",
                                                                          "groups_failing", "endpoints_timed")}
            click.echo(format_slow(slow, limit=3)[0] + " (build.json: the slowest register groups)")
        if measured and build_report["fmax_mhz"]:
            report["projection"] = hwbench.demo_projection(report["engine_cycles"], build_report["fmax_mhz"])
            click.echo(report["projection"]["line"])

    click.secho("[formal] SymbiYosys: the host link's properties, and a broken link", bold=True)
    from memprop import formal

    missing = formal.tools_missing()
    if missing:
        formal_line = f"formal: skipped ({', '.join(missing)} missing: pip install -e '.[formal]')"
        click.echo(formal_line)
        report["formal"] = {"skipped": formal_line}
    else:
        try:
            report["formal"] = formal.demo(out / "formal", echo=click.echo)
        except formal.FormalError as exc:
            raise click.ClickException(str(exc)) from None
        if not report["formal"]["ok"]:
            raise click.ClickException("the host link's proofs failed or the broken link went unnoticed: "
                                       f"see {out / 'formal'}")
        link = report["formal"]["link"]
        formal_line = (f"formal: the host link's {link['distinct_properties']} properties proven by k-induction; "
                       f"a link without its CRC check fails {', '.join(report['formal']['mutant_failures'])}")

    (out / "demo.md").write_text("# memprop demo\n\n" + recall_table + "\n\n" + report["stuck_devices"]["line"]
                                 + "\n\n" + report["measured_reram"]["line"]
                                 + "\n\n" + sim_line + "\n" + (f"\n{board_line}\n" if board_line else "")
                                 + "\n" + formal_line + "\n\n## Classification\n\n"
                                 + report["classification"]["markdown"])
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    click.echo(f"wrote {out}/demo.md and demo.json")
    return report


def _virtual_board(board: str, cfg, params, pats, quick: bool, clock_hz: int | None = None) -> tuple[dict, str]:
    """`board load` and `board recall` on the virtual board, checked against the model."""
    from memprop.boards.configs import board_clock_hz
    from memprop.boards.session import BoardSession
    from memprop.boards.virtual import VirtualBoard

    trials = 1 if quick else 2
    clock_hz = clock_hz or board_clock_hz(board)
    with VirtualBoard(cfg, clock_hz=clock_hz, board=board) as vb:
        with BoardSession.open(vb.port) as session:
            load = session.load(params, cfg, source="the fixed-point weights")
            result, stats = session.recall(pats, 0.1, trials, seed=1)
        sim = vb.stats()
    model = recall.evaluate(params, cfg, pats, 0.1, trials, seed=1)
    if result.to_dict() != model.to_dict():
        raise click.ClickException(f"the virtual board recalls {result.per_class}, the model {model.per_class}")
    out = {"port": vb.port, "load": load.to_dict(), "recall": {**result.to_dict(), **stats.to_dict()},
           "equals_model": True, "cycles_simulated": sim.get("cycles")}
    line = (f"virtual board on {vb.port}: loaded {load.words} words ({load.bytes_sent} bytes, "
            f"{load.wire_seconds:.2f} s on the wire at 1 Mbaud, {load.efficiency:.1%} payload), checksum "
            f"{load.checksum:08x}; {stats.recalls} recalls at p=0.1: accuracy {result.accuracy:.4f} = the model's, "
            f"{stats.to_dict()['us_per_recall']} us per recall at {clock_hz / 1e6:g} MHz")
    return out, line
