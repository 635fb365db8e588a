"""PNG figures of `memprop reproduce`.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot): no global figure state,
no display needed, safe in worker processes and tests.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LABELS = {"hebbian": "Hebbian", "storkey": "Storkey", "rbp": "RBP", "eqprop": "EqProp"}
COLORS = {"eqprop": "tab:blue", "rbp": "tab:orange"}  # the Frontiers Figure 3 colours


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)


def _mosaic(values: np.ndarray, shape: tuple[int, int], ncols: int) -> np.ma.MaskedArray:
    """Glyphs (K x N, +-1) tiled into one image, one masked pixel of gap between glyphs."""
    rows, cols = shape
    nrows = math.ceil(len(values) / ncols)
    # masked_all leaves the data under the mask uninitialised (np.empty): matplotlib still scales
    # those values, and garbage such as 1e300 overflowed there now and then (the CI flake of
    # `reproduce --quick`). The gaps hold zeros, masked.
    size = (nrows * (rows + 1) - 1, ncols * (cols + 1) - 1)
    image = np.ma.masked_array(np.zeros(size), mask=np.ones(size, dtype=bool))
    for k, glyph in enumerate(values):
        r, c = divmod(k, ncols)
        image[r * (rows + 1):r * (rows + 1) + rows, c * (cols + 1):c * (cols + 1) + cols] = glyph.reshape(shape)
    return image


def _show_glyphs(ax, values: np.ndarray, shape: tuple[int, int], ncols: int) -> None:
    """+1 black on white, gaps light grey (the seeds' glyph pictures)."""
    cmap = colormaps["binary"].with_extremes(bad="0.85")
    ax.imshow(_mosaic(values, shape, ncols), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def patterns_figure(values: np.ndarray, shape: tuple[int, int], correlation: np.ndarray, path: Path) -> None:
    """All glyphs and their Pearson correlation matrix (Frontiers Figure 1)."""
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    _show_glyphs(left, values, shape, ncols=math.ceil(math.sqrt(len(values))))
    left.set_title(f"{len(values)} patterns, N = {values.shape[1]}")
    image = right.imshow(correlation, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    right.set_title("Pearson correlation")
    right.set_xlabel("pattern")
    right.set_ylabel("pattern")
    fig.colorbar(image, ax=right, shrink=0.9)
    _save(fig, path)


def band_sweep_figure(ks: list[int], synapses: list[int], flips: list[float],
                      accuracy: dict[str, list[list[float]]], path: Path) -> None:
    """Accuracy vs K outer diagonals cut, one panel per rule, one line per p (Frontiers Figure 2)."""
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, len(accuracy), sharey=True, squeeze=False)[0]
    for ax, (algo, by_flip) in zip(axes, accuracy.items()):
        for p, acc in zip(flips, by_flip):
            ax.plot(ks, acc, marker="o", label=f"p = {p:.2f}")
        ax.set_title(LABELS[algo])
        ax.set_xlabel("K (outer diagonals cut)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        top = ax.secondary_xaxis("top")
        top.set_xticks(ks, labels=[str(s) for s in synapses], rotation=45, fontsize=7)
        top.set_xlabel("synapses N² − K(K+1)")
    axes[0].set_ylabel("accuracy")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper")
    _save(fig, path)


def epochs_figure(epochs: list[int], accuracy: dict[str, list[float]], flip: float,
                  thresholds: tuple[float, ...], path: Path) -> None:
    """Checkpoint accuracy vs training epoch for each trained rule (Frontiers Figure 3)."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for algo, acc in accuracy.items():
        ax.plot(epochs, acc, marker=".", color=COLORS.get(algo), label=LABELS[algo])
    for t in thresholds:
        ax.axhline(t, color="0.6", linestyle="--", linewidth=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"mean accuracy (p = {flip:.2f})")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    _save(fig, path)


def reconstructions_figure(rows: list[tuple[str, np.ndarray]], shape: tuple[int, int], path: Path) -> None:
    """Corrupted inputs, each rule's reconstructions and the targets, one row each (Frontiers Figure 4)."""
    ncols = len(rows[0][1])
    fig = Figure(figsize=(1.6 + 1.1 * ncols, 1.1 * len(rows)), layout="constrained")
    for ax, (label, values) in zip(fig.subplots(len(rows), 1, squeeze=False)[:, 0], rows):
        _show_glyphs(ax, values, shape, ncols)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    _save(fig, path)
