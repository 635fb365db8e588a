"""Counter-based RNG (docs/numerics.md, section 5): Threefry-2x32-13 known answers, purity, statistics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memprop.model import rng

M32 = 0xFFFFFFFF
u32 = st.integers(0, M32)

# Random123 kat_vectors, "threefry2x32 13": counter (2 words), key (2 words) -> output (2 words).
KAT = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x9D1C5EC6, 0x8BD50731)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0xFD36D048, 0x2D17272C)),
    ((0x243F6A88, 0x85A308D3), (0x13198A2E, 0x03707344), (0xBA3E4725, 0xF27D669E)),
]


def threefry_reference(c0: int, c1: int, k0: int, k1: int, rounds: int = 13) -> tuple[int, int]:
    """Threefry-2x32 written again with Python ints, straight from Salmon et al. (SC 2011)."""
    rot = (13, 15, 26, 6, 17, 29, 16, 24)
    ks = (k0, k1, 0x1BD11BDA ^ k0 ^ k1)
    x0, x1 = (c0 + ks[0]) & M32, (c1 + ks[1]) & M32
    for r in range(rounds):
        x0 = (x0 + x1) & M32
        x1 = (((x1 << rot[r % 8]) | (x1 >> (32 - rot[r % 8]))) & M32) ^ x0
        if r % 4 == 3:                      # key injection every 4 rounds
            i = r // 4 + 1
            x0 = (x0 + ks[i % 3]) & M32
            x1 = (x1 + ks[(i + 1) % 3] + i) & M32
    return x0, x1


@pytest.mark.parametrize("ctr, key, expected", KAT)
def test_random123_known_answers(ctr, key, expected):
    out = rng.threefry2x32(*ctr, *key)
    assert (int(out[0]), int(out[1])) == expected
    assert threefry_reference(*ctr, *key) == expected      # the reference below is itself right


def test_known_answers_vectorised():
    """The same vectors as one broadcast call: lanes do not interact."""
    c0, c1 = (np.array([ctr[i] for ctr, _, _ in KAT], dtype=np.uint32) for i in (0, 1))
    k0, k1 = (np.array([key[i] for _, key, _ in KAT], dtype=np.uint32) for i in (0, 1))
    x0, x1 = rng.threefry2x32(c0, c1, k0, k1)
    assert [(int(a), int(b)) for a, b in zip(x0, x1)] == [e for _, _, e in KAT]


@settings(max_examples=200, deadline=None)
@given(u32, u32, u32, u32)
def test_threefry_matches_an_independent_python_implementation(c0, c1, k0, k1):
    out = rng.threefry2x32(c0, c1, k0, k1)
    assert (int(out[0]), int(out[1])) == threefry_reference(c0, c1, k0, k1)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**40), t=st.integers(0, 2**20), s=st.integers(0, 4096 * 4096 + 4096), d=st.integers(0, 63))
def test_rand_is_the_spec_counter_and_key(seed, t, s, d):
    """rand(t, s, d) = word d mod 2 of Threefry((t, (s << 5) + d // 2), (seed mod 2^32, 0x6D656D70))."""
    expected = threefry_reference(t & M32, ((s << 5) + d // 2) & M32, seed & M32, 0x6D656D70)[d % 2]
    assert int(rng.rand(seed, t, s, d)) == expected


def test_one_call_gives_two_draws():
    """Draws 2k and 2k + 1 are the two output words of one call (the hardware makes one call)."""
    s = np.arange(50) * 101
    for k in (0, 1, 31):
        x0, x1 = rng.threefry2x32(9, rng.call_counter(s, k), 4, 0x6D656D70)
        assert np.array_equal(rng.rand(4, 9, s, 2 * k), x0)
        assert np.array_equal(rng.rand(4, 9, s, 2 * k + 1), x1)


def test_rand_is_a_pure_function():
    """Same arguments, same value, whatever else is computed in the same call or before it."""
    s = np.arange(1000)
    a = rng.rand(7, 3, s, 0)
    rng.rand(7, 4, s, 5)                                   # unrelated draws in between
    b = rng.rand(7, 3, s, 0)
    assert np.array_equal(a, b)
    # lane independence: any subset, in any order, gives the same words
    perm = np.random.default_rng(0).permutation(1000)[:137]
    assert np.array_equal(rng.rand(7, 3, s[perm], 0), a[perm])
    assert all(int(rng.rand(7, 3, int(k), 0)) == int(a[k]) for k in perm[:10])
    # every argument matters
    assert not np.array_equal(rng.rand(8, 3, s, 0), a)
    assert not np.array_equal(rng.rand(7, 2, s, 0), a)
    assert not np.array_equal(rng.rand(7, 3, s, 1), a)
    assert not np.array_equal(rng.rand(7, 3, s + 1, 0), a)


def test_draw_index_limit():
    rng.rand(0, 0, 5, 63)
    with pytest.raises(ValueError, match="draw index"):
        rng.rand(0, 0, 5, 64)


def _chi_square(values: np.ndarray, bins: int) -> float:
    counts = np.bincount(values, minlength=bins)
    expected = len(values) / bins
    return float(((counts - expected) ** 2 / expected).sum())


def test_top_bits_are_uniform():
    """Chi-square of the top 8 bits of 2^16 draws over synapses, and over updates.

    256 bins, 255 degrees of freedom: mean 255, sd 22.6; the bound 255 + 6 sd = 391 is
    exceeded by a uniform source with probability ~1e-7 (the draws are fixed, so no flakes).
    """
    n = 1 << 16
    over_s = rng.top_bits(rng.rand(1, 0, np.arange(n), 0), 8)
    over_t = np.array([int(rng.rand(1, t, 12345, 3)) >> 24 for t in range(0, 4096)])
    assert over_s.min() >= 0 and over_s.max() < 256
    assert _chi_square(over_s, 256) < 391
    assert _chi_square(over_t, 256) < 391                   # over updates t (4096 draws)
    # each of the 32 bits is a fair coin (sd of the mean 0.002: bound 6 sd)
    words = rng.rand(1, 0, np.arange(n), 0).astype(np.uint64)
    for bit in range(32):
        assert abs(((words >> np.uint64(bit)) & np.uint64(1)).mean() - 0.5) < 0.012
    # the check has teeth: a source that folds the top 55 values into one fails it
    biased = np.minimum(over_s, 200)
    assert _chi_square(biased, 256) > 391


def test_top_bits_helper():
    u = np.array([0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 0], dtype=np.uint32)
    assert rng.top_bits(u, 1).tolist() == [1, 1, 0, 0]
    assert rng.top_bits(u, 4).tolist() == [15, 8, 7, 0]
    assert rng.top_bits(u, 0).tolist() == [0, 0, 0, 0]
    assert rng.top_bits(u, 32).tolist() == [0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 0]


@pytest.mark.parametrize("d1, d2", [(0, 1), (1, 2), (0, 63), (5, 6)])
def test_different_draw_indices_are_uncorrelated(d1, d2):
    """Draws d and d' of the same synapse and update: correlation ~ 0 (|r| < 5/sqrt(n)), and their
    high bits agree half of the time (as independent coins)."""
    n = 1 << 15
    s = np.arange(n)
    a = rng.rand(3, 17, s, d1).astype(np.float64)
    b = rng.rand(3, 17, s, d2).astype(np.float64)
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(n)
    assert abs(((a >= 2**31) == (b >= 2**31)).mean() - 0.5) < 5 * 0.5 / np.sqrt(n)
    # neighbouring synapses are uncorrelated too (the counter is s << 5 | d // 2)
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 5 / np.sqrt(n)
