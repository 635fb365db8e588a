"""The synapse stream: how a Config's connectivity is laid out in the engine's memories.

Relaxation streams the weight matrix row by row (free units only), P entries per clock.
Rows are packed back to back, so a block of P entries may hold the end of one row and the
start of the next; a row shorter than P is padded with null entries to P so that a block
never holds more than one row end. Only existing synapses (and that padding) are streamed:
band and layered masks cost cycles in proportion to their synapses, not N^2.

With `hw.fold` each symmetric pair of free units is streamed once, in the lower unit's row
(columns j >= i, and every clamped column), at a lane j mod P: its product also goes into
unit j's sum (mac.py, column accumulators). Unit j's column part then comes from rows i < j
only, all streamed before row j ends, and the weight memory holds one copy of each pair.

Pure Python: the RTL generator turns it into ROM images, the host driver into memory
images, the tests into the exact cycle model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from memprop.model.config import Config
from memprop.model.masks import connectivity
from memprop.model.network import units_of
from memprop.model.numerics import Formats


def ceil_log2(n: int) -> int:
    return max((int(n) - 1).bit_length(), 0)


@dataclass(frozen=True)
class Schedule:
    cfg: Config

    @property
    def lanes(self) -> int:
        return self.cfg.hw.lanes

    @property
    def n(self) -> int:
        return self.cfg.network.n

    @cached_property
    def mask(self) -> np.ndarray:
        return connectivity(self.cfg.network)

    @cached_property
    def clamped(self) -> np.ndarray:
        return units_of(self.cfg.network)[0]

    @cached_property
    def outputs(self) -> np.ndarray:
        return units_of(self.cfg.network)[1]

    @cached_property
    def rows(self) -> np.ndarray:
        """Free units, in the order the engine updates them."""
        return np.nonzero(~self.clamped)[0]

    @property
    def fold(self) -> bool:
        """Each symmetric pair streamed once (hw.fold)."""
        return self.cfg.hw.fold

    def row_columns(self, i: int) -> np.ndarray:
        """The columns streamed in row i: all of its synapses, or (fold) j >= i and the clamped ones."""
        cols = np.nonzero(self.mask[i])[0]
        if self.fold:
            cols = cols[(cols >= i) | self.clamped[cols]]
        return cols

    @cached_property
    def stream(self) -> dict[str, np.ndarray]:
        """Per stream position k: valid, row i, column j, last (row ends here)."""
        if self.fold:
            return self._aligned_stream()
        P = self.lanes
        valid, row, col, last = [], [], [], []
        for i in self.rows:
            cols = self.row_columns(int(i))
            length = max(len(cols), P)
            for k in range(length):
                real = k < len(cols)
                valid.append(real)
                row.append(i)
                col.append(int(cols[k]) if real else 0)
                last.append(k == length - 1)
        return _padded(P, valid, row, col, last)

    def _aligned_stream(self) -> dict[str, np.ndarray]:
        """The folded layout: every twin (i, j) at a position of lane j mod P, so that its column
        product needs no rotation (its lane is its column's bank); the other entries (clamped
        columns, the diagonal) anywhere. Rows follow each other with the gap that alignment
        leaves (null entries of the next row), a row ends at its last entry, and a row whose end
        would share a word with the previous row's end starts a word later."""
        P = self.lanes
        valid, row, col, last = [], [], [], []
        end_word = -1
        for i in self.rows:
            i = int(i)
            cols = self.row_columns(i)
            twin = (cols > i) & ~self.clamped[cols]

            def place(start):
                out, p = [], start
                for j, t in zip(cols, twin):
                    if t:
                        p += (int(j) - p) % P
                    out.append(p)
                    p += 1
                return out or [start]              # a row without synapses: one null entry ends it

            start = len(valid)
            at = place(start)
            if at[-1] // P <= end_word:
                at = place((end_word + 1) * P)
            placed = dict(zip(at, cols))             # position -> column; the gaps are null entries
            for p in range(start, at[-1] + 1):
                valid.append(p in placed)
                row.append(i)
                col.append(int(placed.get(p, 0)))
                last.append(p == at[-1])
            end_word = at[-1] // P
        return _padded(P, valid, row, col, last)

    @property
    def length(self) -> int:
        return len(self.stream["valid"])

    @property
    def depth(self) -> int:
        """Words of P entries: the relaxation's blocks per step."""
        return self.length // self.lanes

    @property
    def synapses(self) -> int:
        """Weights streamed per step (both copies of each symmetric pair, one with fold)."""
        return int(self.stream["valid"].sum())

    @property
    def products(self) -> int:
        """Products a step computes: the streamed weights, plus (fold) each twin's column product."""
        return self.synapses + (int(self.twins.sum()) if self.fold else 0)

    @cached_property
    def twins(self) -> np.ndarray:
        """Per stream position (fold): the entry also feeds its column's sum (free j > i)."""
        st = self.stream
        return st["valid"] & (st["col"] > st["row"]) & ~self.clamped[st["col"]] if self.fold \
            else np.zeros(self.length, bool)

    @cached_property
    def position(self) -> dict[tuple[int, int], int]:
        """Stream position of every (i, j) entry (the parallel learner's plan uses it)."""
        st = self.stream
        return {(int(i), int(j)): k for k, (i, j, v) in enumerate(zip(st["row"], st["col"], st["valid"])) if v}

    # -- memory images -----------------------------------------------------------------------
    def code_image(self, codes_w: np.ndarray, class_w: np.ndarray) -> dict[str, np.ndarray]:
        """Per stream position: codes and classes of each device ((devices, length) arrays)."""
        st = self.stream
        r, c = st["row"], st["col"]
        if self.fold:
            # one copy of each pair is streamed: the other must be the same device state
            t = self.twins
            for name, a in (("codes", codes_w), ("classes", class_w)):
                if not np.array_equal(a[:, r[t], c[t]], a[:, c[t], r[t]]):
                    raise ValueError(f"hw.fold keeps one copy of each symmetric pair, but these device {name} "
                                     "differ between (i, j) and (j, i)")
        codes = np.where(st["valid"][None], codes_w[:, r, c], 0)
        classes = np.where(st["valid"][None], class_w[:, r, c], 0)
        return {"codes": codes, "classes": classes}

    def codes_from_image(self, codes: np.ndarray, template: np.ndarray) -> np.ndarray:
        """Inverse of code_image for the weights: (devices, N, N) from per-position codes."""
        out = template.copy()
        st = self.stream
        v = st["valid"]
        rows, cols = st["row"][v], st["col"][v]
        out[:, rows, cols] = codes[:, v]
        # a weight to a clamped unit is streamed once (in the free unit's row), and with fold every
        # pair is: mirror it
        once = self.clamped[cols] | self.twins[v]
        out[:, cols[once], rows[once]] = codes[:, v][:, once]
        return out


def _padded(P: int, valid: list, row: list, col: list, last: list) -> dict[str, np.ndarray]:
    """The stream's arrays, padded with null entries to whole words (on the last row)."""
    pad = (-len(valid)) % P
    return {"valid": np.array(valid + [False] * pad, bool), "row": np.array(row + [row[-1] if row else 0] * pad, np.int64),
            "col": np.array(col + [0] * pad, np.int64), "last": np.array(last + [False] * pad, bool)}


def formats(cfg: Config) -> Formats:
    if cfg.numerics != "fixed":
        raise ValueError("the RTL implements the fixed-point model: use a config with numerics='fixed'")
    return Formats(cfg)
