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
    bits = Cat(Const(crc, len(taps)) if isinstance(crc, int) else crc, byte)
    out = []
    for bit_taps in taps:
        x = Const(0, 1)
        for k in bit_taps:
            x = x ^ bits[k]
        out.append(x)
    return Cat(*out)
