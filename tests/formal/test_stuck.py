"""The stuck-device property, on device tables with a stuck class (the presets have none yet).

A device class whose UP and DOWN tables keep every code is stuck: the proof then declares
`learner.stuck_device_never_changes`. With c2c noise left on for that class the property must
fail (noise would move a stuck device), without it it must be proven.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from memprop import formal
from memprop.model import device
from memprop.model.config import Config

pytestmark = [pytest.mark.usefixtures("formal_tools"), pytest.mark.slow]


def _stuck_tables(monkeypatch):
    build = device.build_tables

    def with_stuck_class(cfg):
        t = build(cfg)
        codes = np.arange(t.levels)
        up, down = t.up.copy(), t.down.copy()
        up[0], down[0] = codes, codes          # class 0: stuck
        return dataclasses.replace(t, up=up, down=down)

    monkeypatch.setattr(device, "build_tables", with_stuck_class)


@pytest.mark.parametrize("preset, proven", [("linear-64", True), ("rram-nonlinear", False)])
def test_stuck_device_property(tmp_path, monkeypatch, preset, proven):
    _stuck_tables(monkeypatch)
    cfg = Config.for_algorithm("eqprop", numerics="fixed", network={"n": 4}, train={"batch_size": 2},
                               fixed={"state_frac": 3, "weight_frac": 3}, device={"preset": preset}, hw={"lanes": 2})
    learner = [p for p in formal.default_proofs() if p.name == "learner"]
    report = formal.run(learner, [(preset, cfg)], out_dir=tmp_path, covers=False)
    (stuck,) = [r for r in report.results if r.name == "learner.stuck_device_never_changes"]
    assert stuck.status == ("proven" if proven else "failed"), stuck.line()
