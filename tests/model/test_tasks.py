"""Classification task data: the digits split, MNIST IDX files written by the tests, and bad files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from memprop.model import tasks
from memprop.model.tasks import TaskDataError, load_task, read_idx, write_idx


def fake_mnist(directory, train_per_class=12, test_per_class=4, size=(28, 28), gz=True, seed=0):
    """Four IDX files in MNIST's layout: class c is a bright bar in row band c (learnable, not random)."""
    r = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)

    def images(per_class):
        labels = np.repeat(np.arange(10), per_class)
        r.shuffle(labels)
        x = r.integers(0, 40, (len(labels), *size)).astype(np.uint8)
        band = max(size[0] // 10, 1)
        for k, c in enumerate(labels):
            x[k, c * band:(c + 1) * band, :] = r.integers(200, 256, (band, size[1]))
        return x, labels.astype(np.uint8)

    suffix = ".gz" if gz else ""
    for part, per_class in (("train", train_per_class), ("t10k", test_per_class)):
        x, y = images(per_class)
        write_idx(directory / f"{part}-images-idx3-ubyte{suffix}", x)
        write_idx(directory / f"{part}-labels-idx1-ubyte{suffix}", y)
    return directory


# -- IDX -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    a = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    if dtype == np.uint8:
        a = np.abs(a).astype(dtype)
    path = write_idx(tmp_path / name, a)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(path)
    assert back.dtype.kind == a.dtype.kind and back.shape == a.shape
    np.testing.assert_array_equal(back, a)


def test_idx_header_is_mnists(tmp_path):
    """0x00 0x00, type 0x08 (unsigned byte), 3 dimensions, big-endian sizes: as LeCun's page says."""
    path = write_idx(tmp_path / "x", np.zeros((7, 28, 28), np.uint8))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x08, 3])
    assert int.from_bytes(raw[4:8], "big") == 7 and int.from_bytes(raw[8:12], "big") == 28
    assert len(raw) == 16 + 7 * 28 * 28


@pytest.mark.parametrize("corrupt, message", [
    (lambda raw: b"\x01\x02" + raw[2:], "bad magic"),
    (lambda raw: raw[:2] + b"\x07" + raw[3:], "unknown IDX data type"),
    (lambda raw: raw[:-5], "truncated"),
    (lambda raw: raw + b"\x00", "longer than its header"),
    (lambda raw: raw[:6], "header truncated"),
    (lambda raw: b"", "bad magic"),
    (lambda raw: gzip.compress(raw)[:-9], "cannot read"),
])
def test_corrupt_idx_files_give_one_line_errors(tmp_path, corrupt, message):
    path = write_idx(tmp_path / "x.idx", np.ones((3, 4, 4), np.uint8))
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(TaskDataError, match=message) as info:
        read_idx(path)
    assert "\n" not in str(info.value)


# -- MNIST from IDX files ------------------------------------------------------------------------------

def test_mnist_from_generated_idx_files(tmp_path):
    data = fake_mnist(tmp_path / "mnist")
    task = load_task("mnist", data)
    assert task.features == 784 and task.shape == (28, 28) and task.n_classes == 10
    assert len(task.y_train) == 120 and len(task.y_test) == 40
    assert task.x_train.min() >= 0.0 and task.x_train.max() <= 1.0
    sub = load_task("mnist", data, classes=(0, 1, 2, 3, 4), per_class=6)
    assert sub.classes == (0, 1, 2, 3, 4)
    assert np.bincount(sub.y_train).tolist() == [6] * 5            # 6 of each, labels re-indexed 0..4
    assert np.bincount(sub.y_test).tolist() == [4] * 5              # every test image of the chosen classes
    again = load_task("mnist", data, classes=(0, 1, 2, 3, 4), per_class=6)
    np.testing.assert_array_equal(sub.x_train, again.x_train)       # a fixed (seeded) subset
    binary = load_task("mnist", data, binarize=True)
    assert set(np.unique(binary.x_train)) <= {0.0, 1.0} and binary.binarized


def test_mnist_plain_files_and_the_dot_names_of_some_mirrors(tmp_path):
    data = fake_mnist(tmp_path / "plain", gz=False)
    plain = load_task("mnist", data)
    (data / "train-images-idx3-ubyte").rename(data / "train-images.idx3-ubyte")
    renamed = load_task("mnist", data)
    np.testing.assert_array_equal(plain.x_train, renamed.x_train)


def test_mismatched_mnist_files_are_refused(tmp_path):
    data = fake_mnist(tmp_path / "m")
    write_idx(data / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(TaskDataError, match="120 train images but 5 labels"):
        load_task("mnist", data)
    data = fake_mnist(tmp_path / "d")
    write_idx(data / "t10k-images-idx3-ubyte.gz", np.zeros((40, 784), np.uint8))
    with pytest.raises(TaskDataError, match="3-dimensional"):
        load_task("mnist", data)
    data = fake_mnist(tmp_path / "s")
    write_idx(data / "t10k-images-idx3-ubyte.gz", np.zeros((40, 20, 20), np.uint8))
    with pytest.raises(TaskDataError, match="differ in size"):
        load_task("mnist", data)
    data = fake_mnist(tmp_path / "l")
    write_idx(data / "t10k-labels-idx1-ubyte.gz", np.full(40, 12, np.uint8))
    with pytest.raises(TaskDataError, match="labels outside 0..9"):
        load_task("mnist", data)
    (data / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(TaskDataError, match="no t10k-labels-idx1-ubyte"):
        load_task("mnist", data)
    with pytest.raises(TaskDataError, match="not a directory"):
        load_task("mnist", tmp_path / "nowhere")
    with pytest.raises(TaskDataError, match="needs --data"):
        load_task("mnist")


def test_bad_subsets_are_refused(tmp_path):
    data = fake_mnist(tmp_path / "m")
    with pytest.raises(TaskDataError, match="fewer than --per-class 13"):
        load_task("mnist", data, per_class=13)
    with pytest.raises(TaskDataError, match=r"\[11\] not among"):
        load_task("digits", classes=(0, 11))
    with pytest.raises(TaskDataError, match="at least 2 classes"):
        load_task("digits", classes=(3,))
    with pytest.raises(TaskDataError, match="listed twice"):
        tasks.parse_classes("1,1")
    with pytest.raises(TaskDataError, match="comma-separated integers"):
        tasks.parse_classes("1,a")
    with pytest.raises(TaskDataError, match="unknown task"):
        load_task("cifar")
    with pytest.raises(TaskDataError, match="--data is for --task mnist"):
        load_task("digits", data)


# -- digits --------------------------------------------------------------------------------------------

def test_digits_split_is_scikit_learns_stratified_split():
    from sklearn.model_selection import train_test_split

    task = load_task("digits")
    assert task.features == 64 and task.n_classes == 10 and task.shape == (8, 8)
    assert len(task.y_train) == 1347 and len(task.y_test) == 450
    images, labels = tasks.load_digits_data()
    train, test = train_test_split(np.arange(len(labels)), test_size=0.25, stratify=labels, random_state=0)
    np.testing.assert_array_equal(tasks.digits_split(len(labels))[1], np.sort(test))
    np.testing.assert_array_equal(task.x_test, images[np.sort(test)] / 16.0)
    np.testing.assert_array_equal(task.y_train, labels[np.sort(train)])
    share = np.bincount(task.y_test) / np.bincount(labels)
    assert np.all(np.abs(share - 0.25) < 0.02)                                     # stratified
    assert task.x_train.min() == 0.0 and task.x_train.max() == 1.0


def test_digits_file_is_scikit_learns_load_digits():
    """The fast path reads the CSV scikit-learn ships: the same data as sklearn.datasets.load_digits."""
    from sklearn.datasets import load_digits

    images, labels = tasks.load_digits_data()
    bunch = load_digits()
    np.testing.assert_array_equal(images, bunch.data)
    np.testing.assert_array_equal(labels, bunch.target)


def test_digit_subset_relabels_classes():
    task = load_task("digits", classes=(7, 3), per_class=20)
    assert task.classes == (7, 3) and np.bincount(task.y_train).tolist() == [20, 20]
    images, labels = tasks.load_digits_data()
    sevens = {row.tobytes() for row in images[labels == 7] / 16.0}
    assert all(row.tobytes() in sevens for row in task.x_train[task.y_train == 0])
