"""Derived fixed-point formats: every width, shift and bound of docs/numerics.md, once.

`Formats(cfg)` is the only place that turns a Config into integers. The fixed-point model
and the RTL generator both read it, so they cannot disagree about a shift or a width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np

from .masks import connectivity
from .rounding import round_half_up  # noqa: F401  (the spec's rounding; re-exported)


def floor_log2(x: Fraction) -> int:
    """floor(log2(x)) of a positive fraction, exactly."""
    n, d = x.numerator, x.denominator
    e = n.bit_length() - d.bit_length()
    if (n < d << e) if e >= 0 else (n << -e < d):
        e -= 1
    return e


#: A decaying learning rate's pulse shift saturates here (docs/numerics.md, section 5).
LR_SHIFT_MAX = 31
#: Fraction bits of a synapse's carry under fixed.rounding "carry" (section 5): the remainder of its
#: pulse count, kept to 1/256 pulse. Every LR_SHIFT must be at least this.
CARRY_FRAC = 8


def bitlen_signed(bound: int) -> int:
    """Two's-complement width that holds every integer in [-bound, bound]."""
    return max(int(bound).bit_length() + 1, 2)


def round_shift(r: np.ndarray, shift: int) -> np.ndarray:
    """Round half up: (r + 2^(shift-1)) >> shift (arithmetic). The one relaxation rounding."""
    if shift == 0:
        return r
    return (r + (1 << (shift - 1))) >> shift


def tanh_tables(state_codes: np.ndarray, fv: int, fa: int, fd: int) -> tuple[np.ndarray, np.ndarray]:
    """ACT_LUT and DER_LUT for tanh, round half up (docs/numerics.md, section 4)."""
    x = state_codes / 2.0**fv
    act = np.floor(np.tanh(x) * 2.0**fa + 0.5).astype(np.int64)
    der = np.floor((1.0 - np.tanh(x) ** 2) * 2.0**fd + 0.5).astype(np.int64)
    return act, der


@dataclass(frozen=True)
class Formats:
    """All integers of the spec for one Config (fixed numerics)."""

    cfg: "object"

    # -- formats ----------------------------------------------------------------------------
    @property
    def fv(self) -> int:
        return self.cfg.fixed.state_frac

    @property
    def fa(self) -> int:
        return self.cfg.fixed.state_frac

    @property
    def fw(self) -> int:
        return self.cfg.fixed.weight_frac

    @property
    def hard(self) -> bool:
        return self.cfg.network.activation != "tanh"

    @property
    def fd(self) -> int:
        return 0 if self.hard else self.cfg.fixed.deriv_frac

    @property
    def lo(self) -> int:
        act = self.cfg.network.activation
        if act == "hard_sigmoid":
            return 0
        return -(1 << self.fv) if act == "hard_tanh" else -(1 << (self.fv + 2))

    @property
    def hi(self) -> int:
        return (1 << self.fv) if self.hard else (1 << (self.fv + 2))

    @property
    def data_lo(self) -> int:
        """State code of a -1 pixel (the activation range's low end)."""
        return 0 if self.cfg.network.activation == "hard_sigmoid" else -(1 << self.fv)

    @property
    def data_hi(self) -> int:
        return 1 << self.fv

    @property
    def threshold(self) -> int:
        """Readout: a unit reads +1 when v > threshold."""
        return (self.data_lo + self.data_hi) // 2

    @property
    def state_bits(self) -> int:
        return bitlen_signed(max(abs(self.lo), abs(self.hi)))

    # -- constants --------------------------------------------------------------------------
    @property
    def eps_shift(self) -> int:
        return int(round(-math.log2(self.cfg.network.eps)))

    @property
    def beta_shift(self) -> int:
        return int(round(-math.log2(self.cfg.train.beta)))

    @property
    def k_frac(self) -> int:
        """k' = max(k, 0): extra fractional bits for beta = 2^-k."""
        return max(self.beta_shift, 0)

    @property
    def k_mul(self) -> int:
        """m = max(-k, 0): beta > 1 multiplies the nudge by 2^m."""
        return max(-self.beta_shift, 0)

    @property
    def g_in(self) -> int:
        return int(self.cfg.network.input_gain * 2 ** (self.fw + self.fa))

    @property
    def s(self) -> int:
        """s = F - fv with F = fw + fa + fd: aligns the state to the field's scale."""
        return self.fw + self.fa + self.fd - self.fv

    @property
    def round_shift(self) -> int:
        """R = s + k' + e: the one rounding shift of the relaxation."""
        return self.s + self.k_frac + self.eps_shift

    # -- tables -----------------------------------------------------------------------------
    @cached_property
    def state_codes(self) -> np.ndarray:
        return np.arange(self.lo, self.hi + 1, dtype=np.int64)

    @cached_property
    def act_lut(self) -> np.ndarray:
        """Activation of every state code lo..hi (index v - lo)."""
        if self.hard:
            return self.state_codes.copy()
        return tanh_tables(self.state_codes, self.fv, self.fa, self.cfg.fixed.deriv_frac)[0]

    @cached_property
    def der_lut(self) -> np.ndarray:
        """rho'(v) at scale 2^-fd for every state code (all ones for hard activations)."""
        if self.hard:
            return np.ones_like(self.state_codes)
        return tanh_tables(self.state_codes, self.fv, self.fa, self.cfg.fixed.deriv_frac)[1]

    @property
    def a_max(self) -> int:
        return int(np.max(np.abs(self.act_lut)))

    @property
    def d_max(self) -> int:
        return int(np.max(self.der_lut))

    # -- device and learning ----------------------------------------------------------------
    @cached_property
    def device(self):
        from .device import build_tables

        return build_tables(self.cfg)

    @property
    def w_max(self) -> int:
        return self.device.w_max

    @cached_property
    def mask(self) -> np.ndarray:
        return connectivity(self.cfg.network)

    @cached_property
    def degree_max(self) -> int:
        return int(self.mask.sum(axis=1).max())

    def lr_constants(self, lr: float) -> tuple[int, int]:
        """(LR_MUL, LR_SHIFT): LR_MUL / 2^LR_SHIFT ~ lr / (beta' B dw 2^(2 fa)), LR_MUL in [128, 255].

        beta' = 2 beta for centered nudging (the float model divides its contrast by 2 beta), else
        beta. Computed exactly from the binary values of lr, beta and dw, rounded half up.
        """
        tr = self.cfg.train
        beta = Fraction(tr.beta) * (2 if tr.nudge == "centered" else 1)
        scale = Fraction(lr) / (beta * tr.batch_size * Fraction(self.device.pulse_weight) * 2 ** (2 * self.fa))
        shift = 7 - floor_log2(scale)
        mul = round_half_up(scale * 2**shift)
        if mul == 256:
            mul, shift = 128, shift - 1
        if not 1 <= shift <= 31:
            raise ValueError(f"learning rate {lr} needs a pulse shift of {shift}, outside 1..31")
        return mul, shift

    @cached_property
    def lr_fixed(self) -> tuple[int, int]:
        """(LR_MUL, LR_SHIFT) of train.lr: every synapse's unless train.layer_lr sets per-layer rates."""
        return self.lr_constants(self.cfg.train.lr)

    # -- per-layer learning rates and their decay (docs/numerics.md, section 5) ------------------
    @cached_property
    def lr_layers(self) -> tuple[tuple[int, int], ...]:
        """(LR_MUL_l, LR_SHIFT_l) per weight layer l (input side first); one entry without layer_lr."""
        rates = self.cfg.train.layer_lr
        return tuple(self.lr_constants(r) for r in rates) if rates else (self.lr_fixed,)

    @property
    def uniform_lr(self) -> bool:
        """One (LR_MUL, LR_SHIFT) for every synapse: what a learner with a single constant implements."""
        return len(set(self.lr_layers)) == 1 and self.lr_layers[0] == self.lr_fixed

    @property
    def decay_shift(self) -> int:
        """log2(1 / lr_decay): LR_SHIFT grows by this after every epoch (0: no decay)."""
        return int(round(-math.log2(self.cfg.train.lr_decay)))

    @cached_property
    def unit_layer(self) -> np.ndarray:
        """Layer index of every unit (all 0 unless layered)."""
        layers = self.cfg.network.layers if self.cfg.network.layered else (self.cfg.network.n,)
        return np.repeat(np.arange(len(layers)), layers)

    @cached_property
    def synapse_layer(self) -> np.ndarray:
        """(N, N) weight layer of each synapse {i, j}: the lower of its two units' layers."""
        if len(self.lr_layers) == 1:
            return np.zeros((self.cfg.network.n,) * 2, dtype=np.int64)
        return np.minimum(self.unit_layer[:, None], self.unit_layer[None, :])

    @cached_property
    def bias_layer(self) -> np.ndarray:
        """(N,) the weight layer whose rate a unit's bias learns at: the layer below the unit."""
        if len(self.lr_layers) == 1:
            return np.zeros(self.cfg.network.n, dtype=np.int64)
        return np.maximum(self.unit_layer - 1, 0)

    def learn_shifts(self, layer: np.ndarray, decay_steps: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(LR_MUL, LR_SHIFT) of each synapse of the given weight layers after `decay_steps` epochs.

        The shift grows by decay_shift per epoch and saturates at LR_SHIFT_MAX (the rate stops
        decaying there; the stochastic draw has 32 bits for the diagonal's extra shift).
        """
        if decay_steps < 0:
            raise ValueError(f"decay_steps must be >= 0, got {decay_steps}")
        mul = np.array([m for m, _ in self.lr_layers], dtype=np.int64)[layer]
        shift = np.array([s for _, s in self.lr_layers], dtype=np.int64)[layer]
        return mul, np.minimum(shift + decay_steps * self.decay_shift, LR_SHIFT_MAX)

    @property
    def max_pulses(self) -> int:
        return self.device.max_pulses

    # -- proven bounds (docs/numerics.md, section 6) ------------------------------------------
    @property
    def acc_bound(self) -> int:
        return self.degree_max * self.w_max * self.a_max + self.w_max * (1 << self.fa) + self.g_in

    @property
    def acc_bits_min(self) -> int:
        return bitlen_signed(self.acc_bound)

    @property
    def acc_bits(self) -> int:
        return self.cfg.fixed.acc_bits or self.acc_bits_min

    @property
    def v_max(self) -> int:
        return max(abs(self.lo), abs(self.hi))

    @property
    def r_bound(self) -> int:
        g = self.d_max * self.acc_bound
        return (g << self.k_frac) + (self.v_max << (self.s + self.k_frac)) + ((2 * self.v_max) << (self.s + self.k_mul))

    @property
    def r_bits(self) -> int:
        return bitlen_signed(self.r_bound)

    @property
    def corr_bound(self) -> int:
        """|C| of a weight or bias over one minibatch."""
        return 2 * self.cfg.train.batch_size * self.a_max * max(self.a_max, 1 << self.fa)

    def __post_init__(self) -> None:
        if self.cfg.fixed.acc_bits is not None and self.cfg.fixed.acc_bits < self.acc_bits_min:
            raise ValueError(
                f"fixed.acc_bits={self.cfg.fixed.acc_bits} is too narrow: N={self.cfg.network.n} with "
                f"{self.degree_max} neighbours, |w| <= {self.w_max}, |a| <= {self.a_max} needs "
                f"{self.acc_bits_min} bits")
        if self.r_bound >= 2**53:
            raise ValueError(f"update intermediate needs {self.r_bits} bits; the model's exact range is 53")
        lowest_shift = min(shift for _, shift in self.lr_layers)
        if self.cfg.fixed.rounding == "carry" and lowest_shift < CARRY_FRAC:
            raise ValueError(f"fixed.rounding='carry' keeps {CARRY_FRAC} fraction bits of a pulse: LR_SHIFT "
                             f"{lowest_shift} is below that; lower the learning rate")
        if max(shift for _, shift in self.lr_layers) + 1 > 32:
            raise ValueError("stochastic rounding needs more than 32 random bits; raise the learning rate")

    def summary(self) -> dict:
        """The integers a hardware engineer needs, for docs and the RTL parameter JSON."""
        mul, shift = self.lr_fixed
        return {"fv": self.fv, "fa": self.fa, "fw": self.fw, "fd": self.fd, "state_bits": self.state_bits,
                "lo": self.lo, "hi": self.hi, "eps_shift": self.eps_shift, "beta_shift": self.beta_shift,
                "g_in": self.g_in, "round_shift": self.round_shift, "acc_bits": self.acc_bits,
                "acc_bits_min": self.acc_bits_min, "r_bits": self.r_bits, "w_max": self.w_max,
                "a_max": self.a_max, "degree_max": self.degree_max, "lr_mul": mul, "lr_shift": shift,
                "lr_layers": [list(c) for c in self.lr_layers], "decay_shift": self.decay_shift,
                "max_pulses": self.max_pulses, "carry_frac": CARRY_FRAC, "max_pulse_step": self.device.max_pulse_step,
                "levels": self.device.levels, "devices_per_weight": self.device.devices,
                "classes": self.device.classes, "stuck_classes": list(self.device.stuck_classes),
                "c2c": [int(c) for c in self.device.c2c_table]}
