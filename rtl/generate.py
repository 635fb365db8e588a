"""Verilog and a parameter sheet for one Config: what `memprop rtl` writes."""

from __future__ import annotations

import json
from pathlib import Path

from amaranth.back import verilog

from memprop.model.config import Config

from . import cycles
from .engine import Engine, step_latency
from .stream import default_backend

TOP = "memprop_engine"


def parameters(engine: Engine) -> dict:
    """The integers of the generated design, for hardware engineers and the host driver."""
    sch, lay = engine.schedule, engine.layout
    return {
        "top": TOP,
        "fingerprint": engine.cfg.fingerprint,
        "config": json.loads(engine.cfg.to_json()),
        "numerics": engine.fmt.summary(),
        "lanes": engine.cfg.hw.lanes,
        "stream": {"entries": sch.length, "synapses": sch.synapses, "words": sch.depth,
                   "rows": int(len(sch.rows))},
        "memory": {"entry_bits": lay.entry_bits, "code_bits": lay.code_bits, "class_bits": lay.class_bits,
                   "devices_per_weight": lay.devices, "batch_slots": lay.batch,
                   "code_memory": engine.code_memory_backend(), "stream": default_backend(sch)},
        "cycles": {"per_step": cycles.step_cycles(sch), "step_latency": step_latency(engine.cfg.hw.lanes),
                   "store": cycles.store_cycles(engine.cfg.network.n),
                   "restore": cycles.restore_cycles(engine.cfg.network.n)},
    }


def generate(cfg: Config, out: Path, name: str = TOP) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    engine = Engine(cfg, primitives=True)
    text = verilog.convert(engine, name=name, emit_src=False)
    (out / f"{name}.v").write_text(text)
    params = parameters(engine)
    (out / f"{name}.json").write_text(json.dumps(params, indent=2))
    return params
