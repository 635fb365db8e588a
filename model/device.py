"""Memristive synapses: presets, the tables the RTL holds in ROM, and pulse programming.

A device's state is a conductance level code c in [0, L-1]: the number of potentiation
pulses along its potentiation curve G(c). One potentiation pulse moves c to c+1; one
depression pulse follows the device's depression curve from the current conductance and
lands on the nearest code below (at least one level). The model tabulates, per device
class, GMAP (code -> weight contribution at scale 2^-fw), UP and DOWN; the hardware uses
these tables as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Literal

import numpy as np

#: Pulses per update: draws 2 + 2p + device must stay below 64 (docs/numerics.md, section 5).
MAX_PULSES = 31

Mode = Literal["single", "differential"]
Curve = Literal["linear", "exponential", "soft_bounds"]


@dataclass(frozen=True)
class Preset:
    """A device model with its parameters written down and where they come from."""

    name: str
    mode: Mode
    levels: int
    curve: Curve
    nl_up: float = 0.0          # exponential: nonlinearity of potentiation (A_p = (L-1)/nl_up)
    nl_down: float = 0.0        # exponential: nonlinearity of depression (A_d = (L-1)/|nl_down|)
    alpha: float = 0.0          # soft bounds: fraction of the distance to the bound moved per pulse
    w_scale: float = 1.0        # weight of a full-range conductance
    c2c: float = 0.0            # chance of a +-1 level error per pulse (cycle to cycle)
    d2d: float = 0.0            # sigma of each device's conductance-range gain (device to device)
    source: str = ""


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("ideal", "single", 2048, "linear",
           source="reference: one exact 11-bit linear weight per synapse, step 2^-10; no device effects"),
    Preset("linear-256", "differential", 256, "linear",
           source="idealised 8-bit linear device pair (G+ - G-), e.g. the linear limit of aihwkit's ConstantStep"),
    Preset("linear-64", "differential", 64, "linear",
           source="idealised 6-bit linear device pair; the 64-state PCM/RRAM programming regime"),
    Preset("soft-bounds", "differential", 256, "soft_bounds", alpha=1 / 64,
           source="soft-bounds device (step proportional to the distance to the bound), as aihwkit's "
                  "SoftBoundsDevice; alpha = 1/64 puts 98% of the range within 255 pulses"),
    Preset("rram-nonlinear", "differential", 97, "exponential", nl_up=2.4, nl_down=-4.88, c2c=0.01, d2d=0.05,
           source="Ag:a-Si RRAM as parameterised in NeuroSim (Chen et al., IEEE TCAD 2018): 97 levels, "
                  "nonlinearity +2.4 (LTP) / -4.88 (LTD); here A = (L-1)/|NL| in G(P) = B(1-exp(-P/A)) + Gmin, "
                  "an approximation of NeuroSim's NL-to-A table; c2c and d2d are our assumed values"),
)}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown device preset {name!r}; choose one of {sorted(PRESETS)}") from None


# -- curves -------------------------------------------------------------------------------------

def potentiation_curve(p: Preset, levels: int) -> np.ndarray:
    """Normalised conductance G(c) in [0, 1] for c = 0 .. L-1."""
    c = np.arange(levels, dtype=np.float64)
    top = levels - 1
    if p.curve == "linear" or top == 0:
        return c / max(top, 1)
    if p.curve == "exponential":
        a = top / p.nl_up
        return (1.0 - np.exp(-c / a)) / (1.0 - np.exp(-top / a))
    q = 1.0 - p.alpha
    return (1.0 - q**c) / (1.0 - q**top)


def depressed(p: Preset, g: np.ndarray, levels: int) -> np.ndarray:
    """Conductance after one depression pulse from normalised conductance g."""
    top = levels - 1
    if p.curve == "linear":
        return g - 1.0 / max(top, 1)
    if p.curve == "exponential":
        # Depression curve Gd(P) = 1 - (1 - exp(-(top - P)/A)) / (1 - exp(-top/A)), P = top at G = 1.
        a = top / abs(p.nl_down)
        norm = 1.0 - np.exp(-top / a)
        pulses_from_top = -a * np.log(np.clip(1.0 - (1.0 - g) * norm, 1e-300, None))
        return 1.0 - (1.0 - np.exp(-(pulses_from_top + 1.0) / a)) / norm
    return (1.0 - p.alpha) * g  # soft bound at Gmin = 0: the step shrinks with the conductance


# -- tables -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceTables:
    """What the hardware holds: per class m, GMAP[m], UP[m], DOWN[m] (all int64, length L)."""

    preset: Preset
    levels: int
    devices: int                  # 1 (single) or 2 (differential)
    gmap: np.ndarray              # (M, L) weight contribution at scale 2^-fw
    up: np.ndarray                # (M, L) next code after a potentiation pulse
    down: np.ndarray              # (M, L) next code after a depression pulse
    class_gain: np.ndarray        # (M,) conductance-range gain of each class
    c2c: float
    c2c_threshold: int            # round(c2c * 2^16)
    max_pulses: int
    pulse_weight: float           # mean |dW| of one pulse applied to a weight
    mid: int                      # code programmed for a zero weight
    scale: int                    # 2^fw: table values per weight unit

    @property
    def classes(self) -> int:
        return self.gmap.shape[0]

    @property
    def w_max(self) -> int:
        """Largest |w| any code (pair) can produce."""
        if self.devices == 1:
            return int(np.max(np.abs(self.gmap)))
        return int(np.max(self.gmap) - np.min(self.gmap))

    def weight(self, codes: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Weight values (int, scale 2^-fw) of device codes shaped (devices, ...)."""
        w = self.gmap[classes[0], codes[0]]
        if self.devices == 2:
            w = w - self.gmap[classes[1], codes[1]]
        return w


def build_tables(cfg) -> DeviceTables:
    """Tabulate the configured preset (with the config's overrides) for the fixed-point model."""
    dev = cfg.device
    p = get_preset(dev.preset)
    p = replace(p, levels=dev.levels or p.levels,
                c2c=p.c2c if dev.c2c is None else dev.c2c,
                d2d=p.d2d if dev.d2d is None else dev.d2d)
    levels, fw = p.levels, cfg.fixed.weight_frac
    g = potentiation_curve(p, levels)
    up = np.minimum(np.arange(levels) + 1, levels - 1)
    after = depressed(p, g, levels)
    nearest = np.abs(after[:, None] - g[None, :]).argmin(axis=1)
    down = np.maximum(np.minimum(nearest, np.arange(levels) - 1), 0)
    classes = dev.d2d_classes if p.d2d > 0 else 1
    if classes > 1:
        quantiles = [(m + 0.5) / classes for m in range(classes)]
        gains = np.array([max(1.0 + p.d2d * NormalDist().inv_cdf(q), 0.05) for q in quantiles])
    else:
        gains = np.ones(1)
    if p.mode == "single":
        if p.curve == "linear":
            step = 2.0 * p.w_scale / levels          # ideal: exact 2^-10 steps around zero
            values = (np.arange(levels) - levels // 2) * step
        else:
            values = 2.0 * p.w_scale * (g - g[levels // 2])
    else:
        values = p.w_scale * g
    gmap = np.floor(gains[:, None] * values[None, :] * 2.0**fw + 0.5).astype(np.int64)
    pulse_weight = float(np.mean(np.diff(values)))  # one pulse moves one device
    max_pulses = dev.max_pulses or max(1, int(round(cfg.train.max_step / pulse_weight)))
    if max_pulses > MAX_PULSES:
        raise ValueError(f"train.max_step={cfg.train.max_step} is {max_pulses} pulses of this device "
                         f"(one pulse = {pulse_weight:.4g}); at most {MAX_PULSES} fit the random-draw index: "
                         f"lower max_step or set device.max_pulses")
    return DeviceTables(
        preset=p, levels=levels, devices=1 if p.mode == "single" else 2, gmap=gmap,
        up=np.tile(up, (len(gains), 1)), down=np.tile(down, (len(gains), 1)), class_gain=gains,
        c2c=p.c2c, c2c_threshold=int(round(p.c2c * 2**16)), max_pulses=max_pulses,
        pulse_weight=pulse_weight, mid=levels // 2, scale=1 << fw)


def fabricate(tables: DeviceTables, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Per-device class map (devices, *shape), fixed at 'fabrication' from the device seed."""
    if tables.classes == 1:
        return np.zeros((tables.devices, *shape), dtype=np.int64)
    rng = np.random.default_rng(seed)
    return rng.integers(0, tables.classes, size=(tables.devices, *shape))


def program(tables: DeviceTables, target: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Write-verify programming: codes whose weight is nearest to `target` (float, weight units).

    Single device: the nearest code. Differential: the pair split symmetrically around the
    mid code, each device the nearest to its half of the target. This is how float-trained
    weights are exported to the hardware.
    """
    target = np.asarray(target, dtype=np.float64) * tables.scale
    codes = np.zeros((tables.devices, *target.shape), dtype=np.int64)
    for m in range(tables.classes):
        row = tables.gmap[m].astype(np.float64)
        if tables.devices == 1:
            sel = classes[0] == m
            codes[0][sel] = _nearest(row, target[sel])
            continue
        for dev, sign in ((0, 1.0), (1, -1.0)):
            sel = classes[dev] == m
            codes[dev][sel] = _nearest(row, row[tables.mid] + sign * 0.5 * target[sel])
    return codes


def _nearest(row: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Index of the nearest table entry for each wanted value (tables are monotonic)."""
    if want.size == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.clip(np.searchsorted(row, want), 1, len(row) - 1)
    left, right = row[idx - 1], row[idx]
    return np.where(np.abs(want - left) <= np.abs(right - want), idx - 1, idx).astype(np.int64)
