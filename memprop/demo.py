"""`memprop demo`: the main job, end to end, growing with each capability.

Stage 1 (float model): train EqProp on the built-in glyphs and print the recall table.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from memprop.model import patterns as pattern_sets
from memprop.model import recall, training, weights
from memprop.model.config import Config

FLIPS = (0.10, 0.15, 0.20, 0.25)


def markdown_table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def run_demo(out: Path, quick: bool = False) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    pats = pattern_sets.load()
    epochs, trials = (30, 100) if quick else (300, 1000)
    cfg = Config.for_algorithm("eqprop", network={"n": pats.size}, train={"epochs": epochs})
    click.echo(f"[1/1] float model: EqProp, N={pats.size}, {pats.count} patterns "
               f"(mean |r| = {pats.mean_abs_correlation():.3f}), {epochs} epochs")
    params, _ = training.train(cfg, pats)
    weights.save(out / "eqprop_float.npz", params, cfg, patterns=pats.source)
    rows, report = [], {"float": {}}
    for p in FLIPS:
        r = recall.evaluate(params, cfg, pats, p, trials, seed=1)
        rows.append([p, r.accuracy])
        report["float"][str(p)] = r.to_dict()
    table = markdown_table(["flip p", "EqProp (float)"], rows)
    click.echo(table)
    (out / "demo.md").write_text(table + "\n")
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    click.echo(f"wrote {out}/demo.md, demo.json, eqprop_float.npz")
    return report
