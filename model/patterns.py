"""Binary pattern sets: the built-in 16 hex glyphs and user files (.npy or text glyphs).

Every loader returns +-1 patterns or raises `PatternError` with a one-line reason that
names the file and what is wrong with it (non-binary value, ragged glyph, duplicate...).
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

BUILTIN = "hex16"


class PatternError(ValueError):
    """A pattern file or array that cannot be used; the message says why."""


@dataclass(frozen=True)
class PatternSet:
    values: np.ndarray          # (K, N) int8 in {-1, +1}
    shape: tuple[int, int]      # glyph rows x columns, for pictures
    source: str

    @property
    def count(self) -> int:
        return self.values.shape[0]

    @property
    def size(self) -> int:
        return self.values.shape[1]

    def correlation(self) -> np.ndarray:
        """Pearson correlation matrix between patterns (0 where a pattern is constant)."""
        x = self.values.astype(np.float64)
        x = x - x.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(x, axis=1)
        safe = np.where(norm > 0, norm, 1.0)
        r = (x @ x.T) / np.outer(safe, safe)
        r[norm == 0, :] = 0.0
        r[:, norm == 0] = 0.0
        np.fill_diagonal(r, 1.0)
        return r

    def mean_abs_correlation(self) -> float:
        r = self.correlation()
        off = ~np.eye(self.count, dtype=bool)
        return float(np.abs(r[off]).mean()) if self.count > 1 else 0.0

    def min_hamming(self) -> int:
        d = (self.values[:, None, :] != self.values[None, :, :]).sum(-1)
        d[np.eye(self.count, dtype=bool)] = self.size
        return int(d.min())

    def to_text(self) -> str:
        rows, cols = self.shape
        glyphs = []
        for p in self.values:
            grid = p.reshape(rows, cols)
            glyphs.append("\n".join("".join("#" if v > 0 else "." for v in row) for row in grid))
        return "\n\n".join(glyphs) + "\n"


def load(path: str | Path | None = None) -> PatternSet:
    """The built-in set (path None or 'hex16'), a .npy array, or a text file of glyphs."""
    if path is None or str(path) == BUILTIN:
        text = resources.files("memprop.model").joinpath("data/hex16.txt").read_text()
        return parse_text(text, source=BUILTIN)
    p = Path(path)
    if not p.exists():
        raise PatternError(f"{p}: no such pattern file")
    if p.suffix == ".npy":
        try:
            with open(p, "rb") as fh:  # our own handle: closed even when numpy fails half-way
                arr = np.load(fh, allow_pickle=False)
                if not isinstance(arr, np.ndarray):  # an .npz archive under a .npy name
                    arr.close()
                    arr = None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise PatternError(f"{p}: not a readable .npy array ({exc})") from None
        if arr is None:
            raise PatternError(f"{p}: an .npz archive, not a .npy array of patterns")
        return from_array(arr, source=str(p))
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        raise PatternError(f"{p}: not a text glyph file (expected '#' and '.' rows, or a .npy array)") from None
    return parse_text(text, source=str(p))


def parse_text(text: str, source: str = "<text>") -> PatternSet:
    """Glyphs of '#' (on) and '.' (off), one blank line between glyphs, all the same size."""
    blocks, current, start = [], [], None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            if current:
                blocks.append((start, current))
                current = []
            continue
        bad = set(line) - {"#", "."}
        if bad:
            raise PatternError(f"{source}:{lineno}: unexpected character(s) {''.join(sorted(bad))!r}; "
                               "glyph rows use only '#' and '.'")
        if not current:
            start = lineno
        current.append(line)
    if current:
        blocks.append((start, current))
    if not blocks:
        raise PatternError(f"{source}: no glyphs found")
    rows, cols = len(blocks[0][1]), len(blocks[0][1][0])
    patterns = []
    for index, (lineno, block) in enumerate(blocks):
        widths = {len(r) for r in block}
        if len(widths) != 1:
            raise PatternError(f"{source}:{lineno}: glyph {index} is ragged (row widths {sorted(widths)})")
        if (len(block), len(block[0])) != (rows, cols):
            raise PatternError(f"{source}:{lineno}: glyph {index} is {len(block)}x{len(block[0])}, "
                               f"the first glyph is {rows}x{cols}")
        patterns.append([1 if c == "#" else -1 for c in "".join(block)])
    return _checked(np.array(patterns, dtype=np.int8), (rows, cols), source)


def from_array(arr: np.ndarray, source: str = "<array>", shape: tuple[int, int] | None = None) -> PatternSet:
    """A K x N (or K x rows x cols) array of {-1, +1} or {0, 1}."""
    arr = np.asarray(arr)
    if arr.ndim == 3:
        shape = shape or (arr.shape[1], arr.shape[2])
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2:
        raise PatternError(f"{source}: expected a K x N array of patterns, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.int8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise PatternError(f"{source}: patterns must be numbers, got dtype {arr.dtype}")
    values = set(np.unique(arr).tolist())
    if values <= {-1, 1}:
        pm = arr.astype(np.int8)
    elif values <= {0, 1}:
        pm = np.where(arr > 0, 1, -1).astype(np.int8)
    else:
        extra = sorted(v for v in values if v not in (-1, 0, 1))[:3] or sorted(values)
        raise PatternError(f"{source}: patterns must be binary ({{-1,+1}} or {{0,1}}); found values {extra}")
    if shape is None:
        side = math.isqrt(pm.shape[1])
        shape = (side, side) if side * side == pm.shape[1] else (1, pm.shape[1])
    return _checked(pm, shape, source)


def _checked(values: np.ndarray, shape: tuple[int, int], source: str) -> PatternSet:
    k, n = values.shape
    if k < 1 or n < 2:
        raise PatternError(f"{source}: need at least one pattern of at least 2 units, got {k} x {n}")
    _, first, counts = np.unique(values, axis=0, return_index=True, return_counts=True)
    if np.any(counts > 1):
        dup = int(first[np.argmax(counts > 1)])
        twins = [i for i in range(k) if np.array_equal(values[i], values[dup])]
        raise PatternError(f"{source}: duplicate patterns {twins} (each pattern must be distinct)")
    return PatternSet(values=values, shape=shape, source=source)


def check_size(patterns: PatternSet, n: int, what: str = "the network") -> None:
    if patterns.size != n:
        raise PatternError(f"{patterns.source}: patterns have {patterns.size} units but {what} has {n}")


def corrupt(x: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Flip each +-1 value independently with probability p."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"flip probability must be in [0, 1], got {p}")
    flips = rng.random(x.shape) < p
    return np.where(flips, -x, x).astype(x.dtype)
