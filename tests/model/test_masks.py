"""Connectivity masks: band counts (Frontiers: N^2 - K(K+1)), diagonal handling, layered structure."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memprop.model.config import NetworkConfig
from memprop.model.masks import band_mask, connectivity, layer_slices, layered_mask


@st.composite
def n_and_k(draw):
    n = draw(st.integers(min_value=1, max_value=80))
    k = draw(st.integers(min_value=0, max_value=n - 1))
    return n, k


@settings(max_examples=200, deadline=None)
@given(n_and_k())
def test_band_mask_count_symmetry_and_diagonal(nk):
    n, k = nk
    mask = band_mask(n, k)
    assert mask.shape == (n, n)
    assert mask.dtype == bool
    assert int(mask.sum()) == n * n - k * (k + 1)
    assert np.array_equal(mask, mask.T)
    assert np.all(np.diag(mask))
    # exactly the k outermost diagonals on each side are cut
    i, j = np.indices((n, n))
    assert np.array_equal(mask, np.abs(i - j) <= n - 1 - k)


def test_band_mask_small_example():
    # N=4, K=1: only the corners (0,3) and (3,0) go: 16 - 2 = 14 entries
    expected = np.ones((4, 4), dtype=bool)
    expected[0, 3] = expected[3, 0] = False
    assert np.array_equal(band_mask(4, 1), expected)
    assert band_mask(4, 0).all()


@pytest.mark.parametrize("n, k", [(5, 5), (5, 7), (5, -1), (1, 1)])
def test_band_mask_rejects_out_of_range_cut(n, k):
    with pytest.raises(ValueError, match="0 <= k < n"):
        band_mask(n, k)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=2, max_value=60), st.data())
def test_connectivity_diagonal_follows_self_connections(n, data):
    k = data.draw(st.integers(min_value=0, max_value=n - 1))
    topo = {"topology": "band", "band": k} if k else {}
    without = connectivity(NetworkConfig(n=n, **topo))
    with_self = connectivity(NetworkConfig(n=n, self_connections=True, **topo))
    assert not np.any(np.diag(without))
    assert np.all(np.diag(with_self))
    assert int(without.sum()) == n * n - k * (k + 1) - n
    assert int(with_self.sum()) == n * n - k * (k + 1)
    off = ~np.eye(n, dtype=bool)
    assert np.array_equal(without[off], with_self[off])
    assert np.array_equal(without, without.T)


def _layer_index(layers):
    return np.repeat(np.arange(len(layers)), layers)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=9), min_size=2, max_size=6))
def test_layered_mask_adjacent_layers_only(layers):
    layers = tuple(layers)
    mask = layered_mask(layers)
    n = sum(layers)
    assert mask.shape == (n, n)
    assert np.array_equal(mask, mask.T)
    li = _layer_index(layers)
    gap = np.abs(li[:, None] - li[None, :])
    # adjacent layers fully connected ...
    assert np.all(mask[gap == 1])
    # ... no lateral connections (same layer, diagonal included) and no skip connections
    assert not np.any(mask[gap == 0])
    assert not np.any(mask[gap >= 2])
    assert int(mask.sum()) == 2 * sum(a * b for a, b in zip(layers[:-1], layers[1:]))


def test_layered_mask_example_and_slices():
    mask = layered_mask((2, 1, 2))
    expected = np.array([
        [0, 0, 1, 0, 0],
        [0, 0, 1, 0, 0],
        [1, 1, 0, 1, 1],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 0, 0],
    ], dtype=bool)
    assert np.array_equal(mask, expected)
    assert layer_slices((2, 1, 2)) == [slice(0, 2), slice(2, 3), slice(3, 5)]


def test_connectivity_layered_is_the_layered_mask():
    # no lateral connections: not even self-connections, whatever self_connections says
    for self_conn in (False, True):
        net = NetworkConfig(n=7, topology="layered", layers=(3, 2, 2), self_connections=self_conn)
        assert np.array_equal(connectivity(net), layered_mask((3, 2, 2)))
