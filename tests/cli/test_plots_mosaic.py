"""The glyph mosaic's gaps are defined values (masked zeros), not uninitialised memory that
matplotlib scales and that overflowed now and then (the `reproduce --quick` CI flake)."""

from __future__ import annotations

import warnings

import numpy as np

from memprop import plots


def test_mosaic_gaps_are_masked_zeros():
    values = np.array([[1, -1, 1, -1], [-1, 1, 1, 1], [1, 1, -1, -1]])
    image = plots._mosaic(values, (2, 2), ncols=2)
    assert np.all(image.data[image.mask] == 0)
    assert image.mask.sum() == image.size - values.size
    np.testing.assert_array_equal(image[:2, :2].filled(9), values[0].reshape(2, 2))


def test_glyph_figure_draws_without_warnings(tmp_path):
    rng = np.random.default_rng(0)
    rows = [("a", np.where(rng.random((6, 100)) < 0.5, -1, 1)), ("b", np.ones((6, 100), dtype=np.int8))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.reconstructions_figure(rows, (10, 10), tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 0
