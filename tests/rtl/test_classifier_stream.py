"""A classifier's synapse stream stores only what the relaxation reads: inputs are clamped, so a
weight to an input unit is one stream entry (in the hidden unit's row), never a second copy."""

from __future__ import annotations

import numpy as np
import pytest

from memprop.model import classify
from memprop.model.tasks import load_task
from memprop.rtl import hostmap as hm
from memprop.rtl.schedule import Schedule
from memprop.model.numerics import Formats


@pytest.mark.parametrize("hidden, lanes", [((16,), 4), ((12, 8), 3), ((100,), 16)])
def test_clamped_inputs_are_streamed_once(hidden, lanes):
    task = load_task("digits", classes=(0, 1, 2), per_class=5)
    cfg = classify.classifier_config(task, hidden, numerics="fixed", device={"preset": "linear-64"},
                                     hw={"lanes": lanes})
    layers = cfg.network.layers
    sch = Schedule(cfg)
    st = sch.stream
    rows, cols = st["row"][st["valid"]], st["col"][st["valid"]]
    n_in = layers[0]
    assert not np.any(rows < n_in)                                  # no input row is streamed
    pairs_with_inputs = n_in * layers[1]
    between_free = sum(a * b for a, b in zip(layers[1:-1], layers[2:]))
    assert sch.synapses == pairs_with_inputs + 2 * between_free      # free-free pairs: both rows need them
    entries = {(int(i), int(j)) for i, j in zip(rows, cols)}
    assert len(entries) == sch.synapses                              # no entry twice
    assert all((j, i) not in entries for i, j in entries if j < n_in)
    # the code memory is the stream: one word of P entries per block, padding only where rows end
    row_lengths = [int(np.count_nonzero(sch.mask[i])) for i in sch.rows]
    padded = sum(max(length, lanes) for length in row_lengths)
    assert sch.length == padded + (-padded) % lanes and sch.depth == sch.length // lanes
    # the host writes exactly the stream
    layout = hm.Layout(Formats(cfg))
    codes = np.zeros((2, cfg.network.n, cfg.network.n), np.int64)
    assert len(layout.image(codes, codes)) == sch.length
    pos = sch.position
    for i in range(n_in, n_in + layers[1]):                         # an input weight's one entry per hidden unit
        assert all((i, j) in pos and (j, i) not in pos for j in range(n_in))
