"""The spec's rounding of derived constants (docs/numerics.md), in a module with no imports of
its own, so that device.py and numerics.py can both use it without an import cycle."""

from __future__ import annotations

import math
from fractions import Fraction


def round_half_up(x: Fraction | float | int) -> int:
    """floor(x + 1/2), exactly: the spec's rounding of every derived constant."""
    return math.floor(Fraction(x) + Fraction(1, 2))
