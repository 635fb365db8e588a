"""Classification tasks: scikit-learn's 8x8 digits (offline) and MNIST from the user's IDX files.

A `Task` holds a fixed train/test split with inputs scaled to the hard sigmoid's range
[0, 1] (or binarised to {0, 1}, which the hardware's clamped input units hold exactly) and
labels re-indexed 0..K-1 over the selected classes. Every choice (split, subset) is a pure
function of its seeds, so the same arguments give the same task.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TASKS = ("digits", "mnist")
SPLIT_SEED = 0                # class subsets (--per-class) are a random choice fixed by this seed
#: The digits' fixed stratified split: scikit-learn's train_test_split(test_size=0.25, stratify, random_state=0),
#: stored as its 450 test indices (no scikit-learn import, and the same split whatever its version).
DIGITS_TEST = Path(__file__).with_name("data") / "digits_test.txt"
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MNIST_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
               "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


class TaskDataError(ValueError):
    """Task data that is missing, corrupt, truncated or inconsistent; the message says which."""


@dataclass(frozen=True)
class Task:
    """A classification task: inputs in [0, 1], labels 0..K-1 (index into `classes`)."""

    name: str
    x_train: np.ndarray          # (samples, features) float64 in [0, 1]
    y_train: np.ndarray          # (samples,) int64 in 0..K-1
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[int, ...]     # original label of each class index
    shape: tuple[int, int]       # image shape (rows, cols)
    binarized: bool = False
    source: str = ""

    @property
    def features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def summary(self) -> dict:
        """What the task is, for weight files and reports (checked again by `eval`)."""
        return {"task": self.name, "classes": list(self.classes), "features": self.features,
                "train": len(self.y_train), "test": len(self.y_test), "binarized": self.binarized,
                "source": self.source}


# -- IDX files (the MNIST format: http://yann.lecun.com/exdb/mnist/) ---------------------------------

def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file, plain or gzip: magic 0x0000 | dtype | ndim, ndim big-endian uint32 dims, data."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise TaskDataError(f"{path}: cannot read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise TaskDataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = raw[2], raw[3]
    if dtype not in IDX_DTYPES:
        raise TaskDataError(f"{path}: unknown IDX data type 0x{dtype:02x}")
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise TaskDataError(f"{path}: IDX header truncated or with {ndim} dimensions")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    item = np.dtype(IDX_DTYPES[dtype])
    want = int(np.prod(dims, dtype=np.int64)) * item.itemsize
    body = len(raw) - 4 - 4 * ndim
    if body != want:
        what = "truncated" if body < want else "longer than its header says"
        raise TaskDataError(f"{path}: {what}: {body} data bytes, dimensions {dims} need {want}")
    return np.frombuffer(raw, item, offset=4 + 4 * ndim).reshape(dims)


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write an IDX file (gzip when the name ends in .gz); the tests make their MNIST with it."""
    path = Path(path)
    array = np.asarray(array)
    code = next((k for k, v in IDX_DTYPES.items() if np.dtype(v).kind == array.dtype.kind
                 and np.dtype(v).itemsize == array.dtype.itemsize), None)
    if code is None:
        raise ValueError(f"IDX has no type for {array.dtype}")
    big = array.astype(np.dtype(IDX_DTYPES[code]))
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    data = header + big.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _find(directory: Path, stem: str) -> Path:
    """MNIST's file names, plain or gzipped, also with the '.' instead of '-' some mirrors use."""
    for name in (stem, stem.replace("-idx", ".idx")):
        for suffix in ("", ".gz"):
            candidate = directory / f"{name}{suffix}"
            if candidate.exists():
                return candidate
    raise TaskDataError(f"{directory}: no {stem}[.gz]; --data must hold the four MNIST IDX files")


def load_mnist(directory: str | Path) -> dict[str, np.ndarray]:
    """The four MNIST files, checked against each other: 28 x 28 (any equal size) uint8 images."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TaskDataError(f"{directory}: not a directory (--data must name the folder of the MNIST IDX files)")
    arrays = {key: read_idx(_find(directory, stem)) for key, stem in MNIST_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        where = _find(directory, MNIST_FILES[f"{part}_images"])
        if images.ndim != 3:
            raise TaskDataError(f"{where}: images must be 3-dimensional (count, rows, cols), got {images.shape}")
        if images.dtype != np.uint8:
            raise TaskDataError(f"{where}: images must be unsigned bytes, got {images.dtype}")
        if labels.ndim != 1:
            raise TaskDataError(f"{_find(directory, MNIST_FILES[f'{part}_labels'])}: labels must be "
                                f"1-dimensional, got {labels.shape}")
        if len(images) != len(labels):
            raise TaskDataError(f"{where}: {len(images)} {part} images but {len(labels)} labels")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise TaskDataError(f"{directory}: {part} labels outside 0..9")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise TaskDataError(f"{directory}: train images {arrays['train_images'].shape[1:]} and test images "
                            f"{arrays['test_images'].shape[1:]} differ in size")
    return arrays


# -- scikit-learn's digits ----------------------------------------------------------------------------

def load_digits_data() -> tuple[np.ndarray, np.ndarray]:
    """(images 1797 x 64 in 0..16, labels): scikit-learn's bundled copy of the UCI 8x8 digits.

    Reads the CSV scikit-learn ships, without importing scikit-learn (its import alone takes
    seconds); falls back to `sklearn.datasets.load_digits` if the file has moved.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise TaskDataError("--task digits needs scikit-learn (pip install scikit-learn)")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    if path.exists():
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
        return table[:, :-1], table[:, -1]
    from sklearn.datasets import load_digits  # pragma: no cover - a scikit-learn that moved its file

    bunch = load_digits()
    return bunch.data.astype(np.int64), bunch.target.astype(np.int64)


# -- splits and subsets -------------------------------------------------------------------------------

def digits_split(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) of the digits' fixed split (DIGITS_TEST)."""
    words = [w for line in DIGITS_TEST.read_text().splitlines() if not line.startswith("#") for w in line.split()]
    test = np.array(words, dtype=np.int64)
    train = np.setdiff1d(np.arange(count), test)
    return train, np.sort(test)


def parse_classes(text: str | None) -> tuple[int, ...] | None:
    """'0,1,2,3,4' -> (0, 1, 2, 3, 4); None or '' -> None (all classes)."""
    if not text:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise TaskDataError(f"--classes {text!r}: expected comma-separated integers such as 0,1,2,3,4") from None
    if len(set(values)) != len(values):
        raise TaskDataError(f"--classes {text!r}: a class is listed twice")
    return values


def select(x: np.ndarray, y: np.ndarray, classes: tuple[int, ...], per_class: int | None, seed: int,
           what: str) -> tuple[np.ndarray, np.ndarray]:
    """Samples of the given classes (at most per_class of each, a seeded random choice), labels re-indexed."""
    r = np.random.default_rng(seed)
    keep = []
    for c in classes:
        idx = np.nonzero(y == c)[0]
        if per_class is not None:
            if len(idx) < per_class:
                raise TaskDataError(f"class {c} has {len(idx)} {what} samples, fewer than --per-class {per_class}")
            idx = np.sort(r.choice(idx, per_class, replace=False))
        keep.append(idx)
    order = np.sort(np.concatenate(keep))
    index = {c: k for k, c in enumerate(classes)}
    return x[order], np.array([index[int(v)] for v in y[order]], dtype=np.int64)


def load_task(name: str = "digits", data: str | Path | None = None, classes: tuple[int, ...] | None = None,
              per_class: int | None = None, binarize: bool = False) -> Task:
    """The named task with its fixed split; `per_class` limits the training samples of each class."""
    if name not in TASKS:
        raise TaskDataError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    if per_class is not None and per_class < 1:
        raise TaskDataError(f"--per-class must be at least 1, got {per_class}")
    if name == "digits":
        if data is not None:
            raise TaskDataError("--data is for --task mnist; the digits ship with scikit-learn")
        images, labels = load_digits_data()
        train, test = digits_split(len(labels))
        x_train, y_train, x_test, y_test = images[train], labels[train], images[test], labels[test]
        scale, shape, source = 16.0, (8, 8), "scikit-learn digits (UCI 8x8)"
    else:
        if data is None:
            raise TaskDataError("--task mnist needs --data DIR with the MNIST IDX files (they cannot be downloaded here)")
        arrays = load_mnist(data)
        shape = tuple(int(s) for s in arrays["train_images"].shape[1:])
        x_train = arrays["train_images"].reshape(len(arrays["train_images"]), -1)
        x_test = arrays["test_images"].reshape(len(arrays["test_images"]), -1)
        y_train, y_test = arrays["train_labels"].astype(np.int64), arrays["test_labels"].astype(np.int64)
        scale, source = 255.0, f"MNIST IDX files in {Path(data)}"
    present = tuple(int(c) for c in np.unique(y_train))
    classes = present if classes is None else tuple(classes)
    missing = [c for c in classes if c not in present]
    if missing:
        raise TaskDataError(f"--classes: {missing} not among the {name} classes {list(present)}")
    if len(classes) < 2:
        raise TaskDataError(f"a classifier needs at least 2 classes, got {list(classes)}")
    x_train, y_train = select(x_train, y_train, classes, per_class, SPLIT_SEED, "training")
    x_test, y_test = select(x_test, y_test, classes, None, SPLIT_SEED, "test")
    x_train, x_test = x_train / scale, x_test / scale
    if binarize:
        x_train, x_test = (x_train >= 0.5).astype(np.float64), (x_test >= 0.5).astype(np.float64)
    return Task(name, x_train.astype(np.float64), y_train, x_test.astype(np.float64), y_test, classes, shape,
                binarize, source)
