"""Counter-based random numbers shared by the model and the RTL (docs/numerics.md, section 5).

Threefry-2x32 with 13 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
SC 2011; the Random123 library): add-rotate-xor only, so the RTL needs no multiplier, and
it passes BigCrush. Being a pure function of (counter, key), it gives every synapse the
same numbers whatever the order or the number of hardware lanes that process it, so
training results do not depend on the lane count P.
"""

from __future__ import annotations

import numpy as np

ROUNDS = 13
ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
PARITY = 0x1BD11BDA
DRAW_BITS = 6  # d < 64 draws per synapse and update
CALL_BITS = DRAW_BITS - 1  # one Threefry call gives draws 2k (word x0) and 2k + 1 (word x1): k < 32
MASK32 = 0xFFFFFFFF


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


#: (r, 32 - r) of every rotation as uint32 scalars, made once.
_SHIFTS = tuple((np.uint32(r), np.uint32(32 - r)) for r in ROTATIONS)


def threefry2x32(c0, c1, k0, k1, rounds: int = ROUNDS) -> tuple[np.ndarray, np.ndarray]:
    """Threefry-2x32: two 32-bit words of counter and key in, two 32-bit words out (broadcast).

    Computed in place on two working arrays (the words wrap modulo 2^32, so the same bits as the
    textbook form `_rotl`/`+` spells; tests/model/test_rng.py pins the Random123 vectors).
    """
    c0, c1, k0, k1 = (np.asarray(v, dtype=np.uint32) for v in (c0, c1, k0, k1))
    ks = (k0, k1, np.uint32(PARITY) ^ k0 ^ k1)
    shape = np.broadcast_shapes(c0.shape, c1.shape, k0.shape, k1.shape)
    x0, x1 = np.empty(shape, dtype=np.uint32), np.empty(shape, dtype=np.uint32)
    tmp = np.empty(shape, dtype=np.uint32)
    with np.errstate(over="ignore"):
        np.add(c0, ks[0], out=x0)
        np.add(c1, ks[1], out=x1)
        for r in range(rounds):
            left, right = _SHIFTS[r % 8]
            x0 += x1
            np.left_shift(x1, left, out=tmp)
            x1 >>= right
            x1 |= tmp
            x1 ^= x0
            if r % 4 == 3:
                inj = r // 4 + 1
                x0 += ks[inj % 3]
                x1 += ks[(inj + 1) % 3]
                x1 += np.uint32(inj)
    if shape == ():                     # scalars in, numpy scalars out (as the plain expressions give)
        return x0[()], x1[()]
    return x0, x1


def call_counter(s, k) -> np.ndarray:
    """Second counter word of call k of synapse s: (s << 5) + k, truncated to 32 bits."""
    s = np.asarray(s, dtype=np.uint64)
    k = np.asarray(k, dtype=np.uint64)
    return (((s << np.uint64(CALL_BITS)) + k) & np.uint64(MASK32)).astype(np.uint32)


def rand(seed: int, t: int, s, d) -> np.ndarray:
    """32-bit draw for update t, synapse index s, draw index d (broadcast over s and d).

    Draw d is output word d mod 2 (x0 for even d, x1 for odd d) of the Threefry call with
    counter (t, (s << 5) + d // 2) and key (seed32, 0x6D656D70 'memp'): one call gives the two
    draws 2k and 2k + 1, so hardware that needs both (the two devices of a pair) makes one call.
    """
    d = np.asarray(d, dtype=np.uint64)
    if np.any(d >= (1 << DRAW_BITS)):
        raise ValueError(f"draw index must be < {1 << DRAW_BITS}")
    x0, x1 = threefry2x32(np.uint32(t & MASK32), call_counter(s, d >> np.uint64(1)), np.uint32(seed & MASK32),
                          np.uint32(0x6D656D70))
    return np.where((d & np.uint64(1)) == 1, x1, x0).astype(np.uint32)


def top_bits(u: np.ndarray, bits: int) -> np.ndarray:
    """The `bits` most significant bits of 32-bit draws, as int64 (uniform in [0, 2^bits))."""
    if bits == 0:
        return np.zeros(np.shape(u), dtype=np.int64)
    return (np.asarray(u, dtype=np.uint32) >> np.uint32(32 - bits)).astype(np.int64)
