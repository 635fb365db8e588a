"""Connectivity masks: which symmetric weights exist.

Band: cutting the K outermost diagonals on each side leaves N^2 - K(K+1) entries
(diagonal included), the seeds' count. Layered: symmetric connections between adjacent
layers only, no lateral and no skip connections.
"""

from __future__ import annotations

import numpy as np

from .config import NetworkConfig


def band_mask(n: int, k: int) -> np.ndarray:
    """Entries with |i - j| < n - k: the full matrix minus its k outer diagonals each side."""
    if not 0 <= k < n:
        raise ValueError(f"band cut k must satisfy 0 <= k < n, got k={k}, n={n}")
    idx = np.arange(n)
    return np.abs(idx[:, None] - idx[None, :]) < n - k


def layered_mask(layers: tuple[int, ...]) -> np.ndarray:
    n = sum(layers)
    mask = np.zeros((n, n), dtype=bool)
    starts = np.cumsum((0,) + tuple(layers))
    for a, b, c in zip(starts[:-2], starts[1:-1], starts[2:]):
        mask[a:b, b:c] = True
        mask[b:c, a:b] = True
    return mask


def layer_slices(layers: tuple[int, ...]) -> list[slice]:
    starts = np.cumsum((0,) + tuple(layers))
    return [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]


def connectivity(net: NetworkConfig) -> np.ndarray:
    """The network's mask (N x N bool, symmetric); no diagonal unless self-connections are on."""
    if net.topology == "layered":
        mask = layered_mask(net.layers)
    else:
        mask = band_mask(net.n, net.band)
    if not net.self_connections:
        mask = mask & ~np.eye(net.n, dtype=bool)
    return mask
