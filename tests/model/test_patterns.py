"""Pattern sets: the built-in glyphs, the .npy and text loaders, and every rejected input."""

from __future__ import annotations

import numpy as np
import pytest

from memprop.model import patterns as P
from memprop.model.patterns import PatternError, PatternSet


def test_builtin_set_is_16_distinct_correlated_binary_glyphs():
    s = P.load()
    assert isinstance(s, PatternSet)
    assert s.values.shape == (16, 100) and s.count == 16 and s.size == 100
    assert s.shape == (10, 10)
    assert s.values.dtype == np.int8
    assert set(np.unique(s.values).tolist()) == {-1, 1}
    assert len(np.unique(s.values, axis=0)) == 16
    assert s.min_hamming() > 0
    # the seeds' glyphs are substantially correlated (measured mean |r| = 0.415)
    assert s.mean_abs_correlation() > 0.3
    r = s.correlation()
    assert r.shape == (16, 16)
    np.testing.assert_allclose(r, r.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(r), 1.0)
    assert P.load("hex16").values.tobytes() == s.values.tobytes()
    assert P.load(None).source == "hex16"


def test_text_round_trip_of_the_builtin_set():
    s = P.load()
    again = P.parse_text(s.to_text())
    assert np.array_equal(again.values, s.values) and again.shape == s.shape


def test_correlation_and_hamming_small_example():
    s = P.from_array(np.array([[1, 1, -1, -1], [1, -1, 1, -1], [1, 1, 1, -1]]))
    r = s.correlation()
    assert r[0, 1] == pytest.approx(0.0)
    assert r[0, 2] == pytest.approx(np.corrcoef([1, 1, -1, -1], [1, 1, 1, -1])[0, 1])
    assert s.min_hamming() == 1
    assert s.mean_abs_correlation() == pytest.approx(np.mean(np.abs([r[0, 1], r[0, 2], r[1, 2]])))


PM = np.array([[1, -1, 1, -1, 1, 1, -1, -1, 1], [-1, -1, 1, 1, 1, -1, -1, 1, 1]], dtype=np.int8)


@pytest.mark.parametrize("name, arr", [
    ("pm1", PM),
    ("pm1_float", PM.astype(np.float64)),
    ("zero_one", (PM > 0).astype(np.int64)),
    ("bool", PM > 0),
    ("images", PM.reshape(2, 3, 3)),
])
def test_npy_loaders(tmp_path, name, arr):
    path = tmp_path / f"{name}.npy"
    np.save(path, arr)
    s = P.load(path)
    assert np.array_equal(s.values, PM)
    assert s.values.dtype == np.int8
    assert s.shape == (3, 3)
    assert s.source == str(path)


def test_npy_non_square_gets_a_row_shape(tmp_path):
    arr = np.array([[1, -1, 1, -1, 1, 1], [-1, -1, 1, 1, 1, -1]])
    np.save(tmp_path / "p.npy", arr)
    assert P.load(tmp_path / "p.npy").shape == (1, 6)
    np.save(tmp_path / "q.npy", arr.reshape(2, 2, 3))
    assert P.load(tmp_path / "q.npy").shape == (2, 3)


def test_text_format(tmp_path):
    text = "\n".join([
        "#..#",
        ".##.",
        "",
        "",                # several blank lines between glyphs are fine
        "####",
        "   #..#   ",      # surrounding whitespace is ignored
        "",
    ])
    path = tmp_path / "g.txt"
    path.write_text(text)
    s = P.load(path)
    assert s.shape == (2, 4)
    assert s.values.tolist() == [[1, -1, -1, 1, -1, 1, 1, -1], [1, 1, 1, 1, 1, -1, -1, 1]]
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(text.replace("\n", "\r\n").encode())
    assert np.array_equal(P.load(crlf).values, s.values)


def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        np.save(path, content)
    return path


@pytest.mark.parametrize("name, content, message", [
    ("nonbinary.npy", np.array([[0, 1, 2, 1], [1, 0, 1, 0]]), r"must be binary .*found values \[2\]"),
    ("mixed.npy", np.array([[-1, 0, 1, 1], [1, -1, 1, 0]]), r"must be binary"),
    ("fraction.npy", np.array([[0.5, 1.0], [1.0, -1.0]]), r"must be binary .*0\.5"),
    ("nan.npy", np.array([[np.nan, 1.0], [1.0, -1.0]]), r"must be binary"),
    ("strings.npy", np.array([["a", "b"], ["c", "d"]]), r"must be numbers"),
    ("onedim.npy", np.array([1, -1, 1, -1]), r"K x N array.*shape \(4,\)"),
    ("dup.npy", np.array([[1, -1, 1], [1, 1, 1], [1, -1, 1]]), r"duplicate patterns \[0, 2\]"),
    ("tiny.npy", np.array([[1], [-1]]), r"at least 2 units"),
    ("ragged.txt", "##.\n#.\n", r"ragged.txt:1: glyph 0 is ragged"),
    ("ragged2.txt", "##\n#.\n\n#.\n.\n", r":4: glyph 1 is ragged"),
    ("sizes.txt", "#.\n.#\n\n#..\n.#.\n", r":4: glyph 1 is 2x3, the first glyph is 2x2"),
    ("rows.txt", "#.\n.#\n\n#.\n.#\n##\n", r"glyph 1 is 3x2, the first glyph is 2x2"),
    ("chars.txt", "#.\n.#\n\n#x\n.#\n", r"chars.txt:4: unexpected character\(s\) 'x'"),
    ("digits.txt", "10\n01\n", r"unexpected character\(s\) '01'"),
    ("dup.txt", "#.\n.#\n\n##\n..\n\n#.\n.#\n", r"duplicate patterns \[0, 2\]"),
    ("empty.txt", "", r"no glyphs found"),
    ("blank.txt", "\n \n\n", r"no glyphs found"),
    ("garbage.txt", b"\xff\xfe\x00\x81\x90binary\xc3", r"not a text glyph file"),
    ("garbage.npy", b"\x93NUMPY garbage that is not an array", r"not a readable \.npy array"),
    ("random.npy", bytes(range(256)) * 4, r"not a readable \.npy array"),
])
def test_bad_inputs_raise_pattern_error_naming_the_problem(tmp_path, name, content, message):
    path = _write(tmp_path, name, content)
    with pytest.raises(PatternError, match=message) as info:
        P.load(path)
    msg = str(info.value)
    assert msg.startswith(str(path))            # the message names the file ...
    assert "\n" not in msg                      # ... on one line


def test_truncated_npy(tmp_path):
    good = _write(tmp_path, "good.npy", PM)
    data = good.read_bytes()
    for cut in (5, 60, len(data) - 3):
        bad = _write(tmp_path, f"cut{cut}.npy", data[:cut])
        with pytest.raises(PatternError, match="not a readable .npy array"):
            P.load(bad)


def test_npz_archives_under_a_npy_name(tmp_path):
    good = tmp_path / "archive.npz"
    np.savez(good, x=PM)
    renamed = _write(tmp_path, "archive.npy", good.read_bytes())
    with pytest.raises(PatternError, match=r"archive\.npy: an \.npz archive, not a \.npy array"):
        P.load(renamed)
    cut = _write(tmp_path, "cutzip.npy", good.read_bytes()[:40])      # zip magic, then nothing
    with pytest.raises(PatternError, match=r"cutzip\.npy: not a readable \.npy array"):
        P.load(cut)


def test_missing_file(tmp_path):
    with pytest.raises(PatternError, match="no such pattern file"):
        P.load(tmp_path / "nope.txt")
    with pytest.raises(PatternError, match="no such pattern file"):
        P.load(tmp_path / "nope.npy")


def test_from_array_rejects_empty_and_object_arrays():
    with pytest.raises(PatternError, match="at least one pattern"):
        P.from_array(np.zeros((0, 5), dtype=np.int8))
    with pytest.raises(PatternError, match="must be numbers"):
        P.from_array(np.array([[1, -1], [-1, 1]], dtype=object))


def test_check_size():
    s = P.load()
    P.check_size(s, 100)
    with pytest.raises(PatternError, match="hex16: patterns have 100 units but the network has 64"):
        P.check_size(s, 64)


def test_corrupt():
    rng = np.random.default_rng(0)
    x = P.load().values
    assert np.array_equal(P.corrupt(x, 0.0, rng), x)
    assert np.array_equal(P.corrupt(x, 1.0, rng), -x)
    noisy = P.corrupt(np.repeat(x, 50, axis=0), 0.2, rng)
    assert noisy.dtype == x.dtype
    rate = (noisy != np.repeat(x, 50, axis=0)).mean()
    assert abs(rate - 0.2) < 0.01                       # 80,000 pixels: sd 0.0014
    with pytest.raises(ValueError, match="flip probability"):
        P.corrupt(x, 1.5, rng)
