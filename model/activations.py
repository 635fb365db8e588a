"""Activation functions rho, their derivatives and value ranges (float model).

The hard activations are the hardware's choice: in the bounded dynamics the state never
leaves [lo, hi], so rho(v) = v and rho'(v) = 1 and no multiplier or table is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Activation:
    name: str
    lo: float
    hi: float
    f: Callable[[np.ndarray], np.ndarray]
    df: Callable[[np.ndarray], np.ndarray]

    @property
    def threshold(self) -> float:
        """Readout threshold: a unit reads as +1 when its state is above the middle of the range."""
        return 0.5 * (self.lo + self.hi)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Map a +-1 pattern to the activation's range ({lo, hi})."""
        return np.where(x > 0, self.hi, self.lo)


def _hard(lo: float, hi: float, name: str) -> Activation:
    # The derivative is 1 on the closed interval: a saturated unit still feels its field,
    # which the bounded dynamics needs to leave the bound again (as in Scellier & Bengio).
    return Activation(
        name, lo, hi,
        f=lambda v: np.clip(v, lo, hi),
        df=lambda v: ((v >= lo) & (v <= hi)).astype(np.float64),
    )


ACTIVATIONS: dict[str, Activation] = {
    "hard_tanh": _hard(-1.0, 1.0, "hard_tanh"),
    "hard_sigmoid": _hard(0.0, 1.0, "hard_sigmoid"),
    "tanh": Activation("tanh", -1.0, 1.0, f=np.tanh, df=lambda v: 1.0 - np.tanh(v) ** 2),
}


def get(name: str) -> Activation:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None
