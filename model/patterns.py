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
GENERATED = "generated:"   # 'generated:SEED': 16 correlated 10 x 10 glyphs, min Hamming 14 (`generate`)


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
    """The built-in set (path None or 'hex16'), a generated set ('generated:SEED'), a .npy array,
    or a text file of glyphs."""
    if path is None or str(path) == BUILTIN:
        text = resources.files("memprop.model").joinpath("data/hex16.txt").read_text()
        return parse_text(text, source=BUILTIN)
    if str(path).startswith(GENERATED):
        seed = str(path)[len(GENERATED):]
        if not seed.isdigit():
            raise PatternError(f"{path}: a generated set is named {GENERATED}SEED with an integer SEED >= 0")
        return generate(seed=int(seed))
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


# -- generated glyph sets ------------------------------------------------------------------------

def _segments(rows: int, cols: int) -> list[np.ndarray]:
    """2-pixel strokes of a segment display on a rows x cols grid (a margin of one pixel)."""
    top, mid, bot = 0, rows // 2 - 1, rows - 3
    left, right, centre = 1, cols - 3, cols // 2 - 1
    strokes = []

    def box(r0, r1, c0, c1):
        m = np.zeros((rows, cols), bool)
        m[r0:r1, c0:c1] = True
        return m

    for r in (top, mid, bot):                                  # horizontal bars, full and halves
        strokes += [box(r, r + 2, left, right + 2), box(r, r + 2, left, centre + 2),
                    box(r, r + 2, centre, right + 2)]
    for c in (left, right, centre):                            # vertical bars, upper and lower halves
        strokes += [box(top, mid + 2, c, c + 2), box(mid, bot + 2, c, c + 2)]
    for r0, r1, c0, c1 in ((top, mid, left, centre), (top, mid, centre, right),
                           (mid, bot, left, centre), (mid, bot, centre, right)):
        for flip in (False, True):                             # the diagonals of each quarter
            m = np.zeros((rows, cols), bool)
            length = max(r1 - r0, c1 - c0) + 2
            for t in range(length):
                r = r0 + round(t * (r1 - r0 + 1) / (length - 1))
                c = c0 + round(t * (c1 - c0 + 1) / (length - 1))
                if flip:
                    c = c0 + c1 + 1 - c
                m[min(r, rows - 1):min(r + 2, rows), min(c, cols - 1):min(c + 1, cols)] = True
            strokes.append(m)
    return strokes


def generate(count: int = 16, rows: int = 10, cols: int = 10, min_hamming: int = 14, seed: int = 0,
             strokes: tuple[int, int] = (3, 6), tries: int = 100_000) -> PatternSet:
    """`count` correlated glyphs: random unions of segment-display strokes, min Hamming >= `min_hamming`.

    Glyphs share strokes (bars, halves, diagonals) the way digits and letters do, so the set is
    correlated like hex16; a candidate is kept when it is at least `min_hamming` pixels from every
    glyph kept so far. The same seed gives the same set.
    """
    if count < 1 or rows < 6 or cols < 6 or min_hamming < 0:
        raise PatternError(f"cannot generate {count} glyphs of {rows} x {cols} with min Hamming {min_hamming}")
    rng = np.random.default_rng(seed)
    library = _segments(rows, cols)
    kept: list[np.ndarray] = []
    for _ in range(tries):
        chosen = rng.choice(len(library), size=rng.integers(strokes[0], strokes[1] + 1), replace=False)
        glyph = np.where(np.any([library[i] for i in chosen], axis=0).ravel(), 1, -1).astype(np.int8)
        if all(int(np.sum(glyph != k)) >= min_hamming for k in kept):
            kept.append(glyph)
            if len(kept) == count:
                name = f"{GENERATED}{seed}" if (count, rows, cols, min_hamming, strokes) == (16, 10, 10, 14, (3, 6)) \
                    else f"generated(count={count}, {rows}x{cols}, min_hamming={min_hamming}, seed={seed})"
                return _checked(np.array(kept), (rows, cols), name)
    raise PatternError(f"found only {len(kept)} of {count} glyphs {min_hamming} pixels apart in {tries} tries")
