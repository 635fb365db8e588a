"""A byte-wide CRC step as flat XORs: shared by the host link (CRC-16) and CHECKSUM (CRC-32).

A CRC step without its initial value is linear over GF(2), so output bit i is the XOR of a
fixed set of input bits. The sets are found by running the bitwise reference on unit
vectors, so the hardware follows the reference by construction.
"""

from __future__ import annotations

from typing import Callable

from amaranth import Cat, Const


def linear_taps(step: Callable[[int, int], int], crc_bits: int) -> list[list[int]]:
    """taps[i]: the input bits (crc bits 0..crc_bits-1, then byte bits) whose XOR is output bit i.
    `step(crc, byte)` is the linear part of one byte of the CRC."""
    taps = [[] for _ in range(crc_bits)]
    for k in range(crc_bits + 8):
        crc, byte = (1 << k, 0) if k < crc_bits else (0, 1 << (k - crc_bits))
        out = step(crc, byte)
        for i in range(crc_bits):
            if out >> i & 1:
                taps[i].append(k)
    return taps


def xor_step(taps: list[list[int]], crc, byte):
    """One CRC step on Amaranth values (`crc` may be an int constant): each output bit a flat XOR."""
    return xor_of(taps, Cat(Const(crc, len(taps)) if isinstance(crc, int) else crc, byte))


def zero_check_taps(step: Callable[[int, int], int], crc_bits: int) -> tuple[list[list[int]], list[list[int]]]:
    """When does one step end at 0? `step(crc, byte) == 0` exactly when `byte` equals e(crc) and
    g(crc) is 0, both linear in crc alone. Returns (e_taps, g_taps): e_taps[i] are the crc bits
    whose XOR is bit i of e, each entry of g_taps a set of crc bits whose XOR must be 0. So the
    check of a frame's last byte is a byte compare against a value computed a cycle earlier
    from the CRC register (the link's CRC check was its longest path on the iCE40).

    With A crc + B byte the step (B injective: a CRC step loses no byte bit), take 8 rows R where
    B is invertible: byte = B_R^-1 A_R crc =: e(crc); the rest must vanish: (B e + A) crc = 0."""
    A = [step(1 << j, 0) for j in range(crc_bits)]            # column j of A, as an int over rows
    B = [step(0, 1 << i) for i in range(8)]                   # column i of B
    rows = lambda cols, r: sum(((c >> r) & 1) << j for j, c in enumerate(cols))   # noqa: E731
    A_rows = [rows(A, r) for r in range(crc_bits)]            # row r of A: bit j = A[r][j]
    B_rows = [rows(B, r) for r in range(crc_bits)]            # row r of B: bit i = B[r][i]
    # Gauss-Jordan on [B_rows | A_rows] to find 8 pivot rows and solve B_R byte = A_R crc
    aug = [(B_rows[r], A_rows[r]) for r in range(crc_bits)]
    pivots: list[tuple[int, int, int]] = []                   # (byte bit, b part, a part) reduced
    rest = []
    for b, a in aug:
        for bit, pb, pa in pivots:
            if b >> bit & 1:
                b, a = b ^ pb, a ^ pa
        if b:
            bit = b.bit_length() - 1
            pivots = [(q, pb ^ b, pa ^ a) if pb >> bit & 1 else (q, pb, pa) for q, pb, pa in pivots]
            pivots.append((bit, b, a))
        else:
            rest.append(a)                                    # 0 = a . crc must hold
    if len(pivots) != 8:
        raise ValueError("the step is not injective in the byte")
    e_taps = [[] for _ in range(8)]
    for bit, b, a in pivots:
        assert b == 1 << bit
        e_taps[bit] = [j for j in range(crc_bits) if a >> j & 1]
    g_taps = [[j for j in range(crc_bits) if a >> j & 1] for a in rest if a]
    return e_taps, g_taps


def xor_of(taps: list[list[int]], value):
    """Each entry of `taps` as the XOR of those bits of the Amaranth `value`."""
    out = []
    for bit_taps in taps:
        x = Const(0, 1)
        for k in bit_taps:
            x = x ^ value[k]
        out.append(x)
    return Cat(*out)
