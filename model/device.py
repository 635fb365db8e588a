"""Memristive synapses: presets, the tables the RTL holds in ROM, and pulse programming.

A device's state is a conductance level code c in [0, L-1]: the number of potentiation
pulses along its potentiation curve G(c). One potentiation pulse moves c to c+1; one
depression pulse follows the device's depression law from the current conductance and
lands on the nearest code below (at least one level). The model tabulates, per device
class, GMAP (code -> weight contribution at scale 2^-fw), UP and DOWN; the hardware uses
these tables as they are.

Preset parameters carry the names and meanings of IBM aihwkit's pulsed devices
(`aihwkit.simulator.configs.devices.PulsedDevice`): dw_min and its device-to-device spread
dw_min_dtod, the cycle-to-cycle std dw_min_std, the up/down asymmetry up_down (and
up_down_dtod), the bounds w_min/w_max (and w_min_dtod/w_max_dtod), and the fraction of
corrupt (here: stuck) devices. docs/numerics.md, section 5, says how each one becomes a table.

Device classes: variation is quantised into M classes (M equal-probability quantiles of
each spread, combined as a Latin hypercube), plus two stuck classes (at G_min and at
G_max) when stuck devices are configured. Which class each device belongs to is fixed per
chip by the fabrication seed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields, replace
from fractions import Fraction
from statistics import NormalDist
from typing import Literal

import numpy as np

from .rounding import round_half_up

#: Pulses per update: draws 2 + 2p + device must stay below 64 (docs/numerics.md, section 5).
MAX_PULSES = 31
#: Device classes M of a preset with device-to-device variation, unless it says otherwise.
DEFAULT_D2D_CLASSES = 4
#: Seed of the fixed permutations that combine the spreads of the M classes (a Latin hypercube).
_CLASS_PERMUTATION_SEED = 0x6D656D70

Mode = Literal["single", "differential"]
Curve = Literal["linear", "exponential", "soft_bounds"]

#: Preset parameters a DeviceConfig may override (same names, same meanings).
OVERRIDABLE = ("dw_min_dtod", "dw_min_std", "up_down", "up_down_dtod", "w_min_dtod", "w_max_dtod",
               "stuck", "stuck_high", "w_scale")


@dataclass(frozen=True)
class Preset:
    """A device model with its parameters written down and where they come from.

    Response (device units; the network weight of one device unit is w_scale):

    - linear (aihwkit ConstantStep): code c sits at w_min + c * step, step = (w_max - w_min) / (L - 1)
      (single devices: / L, so the mid code is 0 and the step a power of two); depression moves down
      by step * (1 - up_down) / (1 + up_down); hard bounds.
    - soft_bounds (aihwkit SoftBounds): up step alpha_up * (w_max - g), down step alpha_down * (g - w_min),
      w_min/w_max the soft bounds, alpha_up,down = alpha * (1 +- up_down); alpha is given at the
      preset's own levels L0; a levels override keeps (1 - alpha)^(L - 1), the fraction of the range
      the top code reaches, so the curve keeps its shape.
    - exponential (NeuroSim): G(c) = w_min + (w_max - w_min)(1 - exp(-c/A_p)) / (1 - exp(-(L-1)/A_p)),
      A_p = (L-1)/nl_up, depression along the mirrored curve with A_d = (L-1)/|nl_down|.
    """

    name: str
    mode: Mode
    levels: int
    curve: Curve
    w_min: float = 0.0           # lower bound of a device (device units); pairs: G_min = 0
    w_max: float = 1.0           # upper bound (soft bounds: the asymptote)
    w_scale: float = 1.0         # network weight of one device unit (aihwkit: the tile's weight scaling)
    up_down: float = 0.0         # down/up step asymmetry: up (1 + up_down), down (1 - up_down) (linear, soft)
    alpha: float = 0.0           # soft bounds: slope per pulse at the preset's own levels
    nl_up: float = 0.0           # exponential: nonlinearity of potentiation (A_p = (L-1)/nl_up)
    nl_down: float = 0.0         # exponential: nonlinearity of depression (A_d = (L-1)/|nl_down|)
    dw_min_dtod: float = 0.0     # device-to-device spread of the step, relative
    dw_min_dtod_log_normal: bool = False   # the step's spread is log-normal: exp(dw_min_dtod * xi)
    up_down_dtod: float = 0.0    # device-to-device spread of up_down
    w_min_dtod: float = 0.0      # device-to-device spread of w_min, relative to w_min
    w_max_dtod: float = 0.0      # device-to-device spread of w_max, relative to w_max
    dw_min_std: float = 0.0      # cycle-to-cycle std of one step, relative to the step
    d2d_classes: int = 1         # device classes M (1: no device-to-device variation)
    stuck: float = 0.0           # fraction of stuck devices (aihwkit: corrupt_devices_prob)
    stuck_high: float = 0.5      # share of the stuck devices stuck at G_max (the others at G_min)
    rounding: str | None = None  # the pulse rounding it needs to learn in situ (None: the config's)
    source: str = ""

    @property
    def has_d2d(self) -> bool:
        return any(getattr(self, k) > 0 for k in ("dw_min_dtod", "up_down_dtod", "w_min_dtod", "w_max_dtod"))

    def dw_min(self, levels: int | None = None) -> float:
        """Mean potentiation step of the nominal device over its codes (device units)."""
        g = potentiation_curve(self, levels or self.levels)
        return float((g[-1] - g[0]) / (len(g) - 1)) if len(g) > 1 else 0.0


#: Weight of a full-range device in the linear and rram pair presets: the pair spans [-0.5, 0.5], about
#: what the task needs (float-trained hex16 weights: 99 % within 0.3, all within 0.6), with steps half
#: as large as on [-1, 1] (measured on one seed: linear-64 0.935 -> 0.99, glyph E no longer lost).
#: Soft bounds keep [-1, 1]: their pairs work near the top of the curve, where steps are small already.
PAIR_W_SCALE = 0.5

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("ideal", "single", 2048, "linear", w_min=-1.0, w_max=1.0,
           source="reference: one exact 11-bit linear weight per synapse, step 2^-10; no device effects"),
    Preset("linear-256", "differential", 256, "linear", w_scale=PAIR_W_SCALE,
           source="idealised 8-bit linear device pair (G+ - G-), the linear limit of aihwkit's ConstantStepDevice"),
    Preset("linear-64", "differential", 64, "linear", w_scale=PAIR_W_SCALE,
           source="idealised 6-bit linear device pair; the 64-state PCM/RRAM programming regime"),
    Preset("soft-bounds", "differential", 256, "soft_bounds", alpha=1 / 64,
           source="soft-bounds device pair (step proportional to the distance to the bound), aihwkit's "
                  "SoftBoundsDevice; alpha = 1/64 at L = 256 (first/last up step 55x); other L keep the shape"),
    Preset("rram-nonlinear", "differential", 97, "exponential", nl_up=2.4, nl_down=-4.88, w_scale=PAIR_W_SCALE,
           dw_min_dtod=0.05, w_max_dtod=0.05, dw_min_std=0.2, d2d_classes=DEFAULT_D2D_CLASSES,
           source="Ag:a-Si RRAM as parameterised in NeuroSim (Chen et al., IEEE TCAD 2018): 97 levels, "
                  "nonlinearity +2.4 (LTP) / -4.88 (LTD); here A = (L-1)/|NL| in G(P) = B(1-exp(-P/A)) + Gmin, "
                  "an approximation of NeuroSim's NL-to-A table; c2c and d2d spreads are our assumed values"),
    Preset("reram-array-om", "single", 48, "soft_bounds", w_min=-1.0, w_max=1.0, w_scale=0.5, alpha=0.0949,
           dw_min_dtod=0.7829, dw_min_dtod_log_normal=True, up_down_dtod=0.01, w_min_dtod=0.5695,
           w_max_dtod=0.3499, dw_min_std=0.4158, d2d_classes=8, rounding="carry",
           source="aihwkit ReRamArrayOMPresetDevice (IBM aihwkit, simulator/presets/devices.py): a fit to "
                  "measured ReRAM arrays, Gong & Rasch et al., IEDM 2022 ('optimized material'); soft bounds "
                  "with dw_min 0.0949 on [-1, 1] (47 pulses reach 99% of the range: L = 48), its d2d and "
                  "c2c spreads; write noise not modelled; its 13.5% corrupt devices: set device.stuck. One pulse "
                  "moves a weight 9.5% of the way to a bound, so pulses whose signs alternate pull every weight "
                  "to the symmetry point: it learns in situ with truncation and carry (IBM's mixed-precision "
                  "scheme, Nandakumar et al., Front. Neurosci. 2020), rounding='carry'"),
)}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown device preset {name!r}; choose one of {sorted(PRESETS)}") from None


def in_situ_fixed(preset: str | None, fixed: dict | None = None) -> dict:
    """A Config's `fixed` section with the pulse rounding the preset needs to learn in situ
    (`Preset.rounding`), unless the section names a rounding already."""
    fixed = dict(fixed or {})
    if preset and "rounding" not in fixed and get_preset(preset).rounding:
        fixed["rounding"] = get_preset(preset).rounding
    return fixed


def resolve(dev) -> Preset:
    """The configured preset with the DeviceConfig's overrides applied (levels, spreads, stuck)."""
    p = get_preset(dev.preset)
    changes = {k: getattr(dev, k) for k in OVERRIDABLE if getattr(dev, k, None) is not None}
    if dev.levels is not None and dev.levels != p.levels:
        if p.curve == "soft_bounds":   # keep the curve's shape: (1 - alpha)^(L - 1) is constant
            changes["alpha"] = 1.0 - (1.0 - p.alpha) ** ((p.levels - 1) / max(dev.levels - 1, 1))
        changes["levels"] = dev.levels
    if getattr(dev, "d2d", None) is not None:        # one spread for the step and both bounds
        changes.update(dw_min_dtod=dev.d2d, w_min_dtod=dev.d2d, w_max_dtod=dev.d2d)
    p = replace(p, **changes)
    classes = dev.d2d_classes
    if classes is None:
        classes = p.d2d_classes if p.d2d_classes > 1 else DEFAULT_D2D_CLASSES
    return replace(p, d2d_classes=classes if p.has_d2d else 1)


# -- curves (device units) ----------------------------------------------------------------------

@dataclass(frozen=True)
class ClassDevice:
    """One device class: the preset's nominal device with its d2d draws applied."""

    step_gain: float = 1.0       # dw_min of this class / nominal
    w_min: float = 0.0
    w_max: float = 1.0
    up_down: float = 0.0


def nominal(p: Preset) -> ClassDevice:
    return ClassDevice(1.0, p.w_min, p.w_max, p.up_down)


def class_curve(p: Preset, d: ClassDevice, levels: int) -> np.ndarray:
    """Conductance (device units) after c potentiation pulses from code 0, c = 0 .. L-1."""
    c = np.arange(levels, dtype=np.float64)
    top = max(levels - 1, 1)
    span = d.w_max - d.w_min
    if p.curve == "linear":
        up = _linear_step(p, levels) * d.step_gain * (1.0 + d.up_down) / (1.0 + p.up_down)
        return np.minimum(d.w_min + up * c, d.w_max)
    if p.curve == "exponential":
        a = top / (p.nl_up * d.step_gain)
        return d.w_min + span * (1.0 - np.exp(-c / a)) / (1.0 - np.exp(-p.nl_up))
    return d.w_max - span * (1.0 - _soft_slope(p, d, +1)) ** c


def _linear_step(p: Preset, levels: int) -> float:
    """The nominal linear up step: the range in L - 1 steps (single devices: L, so the mid code is 0)."""
    return (p.w_max - p.w_min) / (levels if p.mode == "single" else max(levels - 1, 1))


def _soft_slope(p: Preset, d: ClassDevice, direction: int) -> float:
    """Soft bounds: fraction of the distance to the bound moved by one pulse (up: +1, down: -1)."""
    return min(p.alpha * d.step_gain * (1.0 + direction * d.up_down), 1.0)


def potentiation_curve(p: Preset, levels: int) -> np.ndarray:
    """The nominal device's conductance G(c), device units."""
    return class_curve(p, nominal(p), levels)


def class_depressed(p: Preset, d: ClassDevice, g: np.ndarray, levels: int) -> np.ndarray:
    """Conductance after one depression pulse from conductance g (device units)."""
    top = max(levels - 1, 1)
    if p.curve == "linear":
        down = _linear_step(p, levels) * d.step_gain * (1.0 - d.up_down) / (1.0 + p.up_down)
        return np.maximum(g - down, d.w_min)
    if p.curve == "exponential":
        # Depression curve Gd(P) = 1 - (1 - exp(-(top - P)/A)) / (1 - exp(-top/A)), P = top at G = 1,
        # in the class's normalised range (A of depression from nl_down, scaled by the step gain).
        span = d.w_max - d.w_min
        u = (g - d.w_min) / span
        a = top / (abs(p.nl_down) * d.step_gain)
        norm = 1.0 - np.exp(-abs(p.nl_down))
        pulses_from_top = -a * np.log(np.clip(1.0 - (1.0 - u) * norm, 1e-300, None))
        return d.w_min + span * (1.0 - (1.0 - np.exp(-(pulses_from_top + 1.0) / a)) / norm)
    return g - _soft_slope(p, d, -1) * (g - d.w_min)


def symmetry_point(p: Preset, d: ClassDevice, levels: int) -> float:
    """Single devices: the conductance read as weight 0 (the reference GMAP subtracts).

    Soft bounds: the class's own symmetry point, where up and down steps are equal (aihwkit's
    subtract_symmetry_point, a reference calibrated per device); otherwise the nominal mid code.
    """
    if p.curve == "soft_bounds":
        up, down = _soft_slope(p, d, +1), _soft_slope(p, d, -1)
        return (up * d.w_max + down * d.w_min) / (up + down)
    return float(potentiation_curve(p, levels)[levels // 2])


def depressed(p: Preset, g: np.ndarray, levels: int) -> np.ndarray:
    """The nominal device's conductance after one depression pulse from g."""
    return class_depressed(p, nominal(p), g, levels)


def class_devices(p: Preset) -> list[ClassDevice]:
    """The M device classes: equal-probability quantiles of each spread, combined as a Latin hypercube.

    Spread v of class m is the quantile (perm_v[m] + 1/2) / M of N(0, 1); perm_0 is the identity and
    the others are fixed permutations, so M = 1 is the nominal device and the classes depend on the
    preset only (they are ROM contents, not per-chip).
    """
    M = p.d2d_classes
    z = [NormalDist().inv_cdf((m + 0.5) / M) for m in range(M)] if M > 1 else [0.0]
    perms = [np.arange(M)] + [np.random.default_rng([_CLASS_PERMUTATION_SEED, v]).permutation(M) for v in (1, 2, 3)]
    out = []
    for m in range(M):
        zs = [z[int(perm[m])] for perm in perms]
        gain = math.exp(p.dw_min_dtod * zs[0]) if p.dw_min_dtod_log_normal else max(1.0 + p.dw_min_dtod * zs[0], 0.05)
        w_max = p.w_max * (1.0 + p.w_max_dtod * zs[1])
        w_min = p.w_min * (1.0 + p.w_min_dtod * zs[2])
        if w_max - w_min < 0.05 * (p.w_max - p.w_min):     # aihwkit enforce_consistency: a usable range
            w_max = w_min + 0.05 * (p.w_max - p.w_min)
        up_down = min(max(p.up_down + p.up_down_dtod * zs[3], -0.95), 0.95)
        out.append(ClassDevice(gain, w_min, w_max, up_down))
    return out


def c2c_probability(dw_min_std: float) -> float:
    """Chance that one pulse lands one level off: P(|dw_min_std * xi| >= 1/2), at most 1/2."""
    if dw_min_std <= 0:
        return 0.0
    return min(2.0 * (1.0 - NormalDist().cdf(0.5 / dw_min_std)), 0.5)


# -- tables -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceTables:
    """What the hardware holds: per class m, GMAP[m], UP[m], DOWN[m] (all int64, length L), C2C[m]."""

    preset: Preset
    levels: int
    devices: int                  # 1 (single) or 2 (differential)
    gmap: np.ndarray              # (M', L) weight contribution at scale 2^-fw
    up: np.ndarray                # (M', L) next code after a potentiation pulse
    down: np.ndarray              # (M', L) next code after a depression pulse
    class_devices: tuple          # the M d2d classes (ClassDevice), then the stuck classes
    c2c: float                    # chance of a +-1 level error per pulse (working classes)
    c2c_table: np.ndarray         # (M',) round_half_up(c2c * 2^16) per class; 0 for stuck classes
    stuck_classes: tuple          # class index of stuck-at-G_min and stuck-at-G_max, or ()
    max_pulses: int
    max_pulse_step: int           # largest |dw| of one pulse in the tables (scale 2^-fw)
    pulse_weight: float           # mean |dW| of one potentiation pulse (weight units): the lr scale
    mid: int                      # code programmed for a zero weight
    scale: int                    # 2^fw: table values per weight unit

    @property
    def classes(self) -> int:
        return self.gmap.shape[0]

    @property
    def d2d_classes(self) -> int:
        return self.classes - len(self.stuck_classes)

    @property
    def c2c_threshold(self) -> int:
        """C2C of the working classes (the stuck classes have 0)."""
        return int(self.c2c_table[0])

    @property
    def w_max(self) -> int:
        """Largest |w| any code (pair) can produce."""
        if self.devices == 1:
            return int(np.max(np.abs(self.gmap)))
        return int(np.max(self.gmap) - np.min(self.gmap))

    def is_stuck(self, classes: np.ndarray) -> np.ndarray:
        return np.isin(classes, self.stuck_classes) if self.stuck_classes else np.zeros(np.shape(classes), bool)

    def weight(self, codes: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Weight values (int, scale 2^-fw) of device codes shaped (devices, ...)."""
        if self.gmap.shape[0] == 1:       # one class (every device nominal): a 1-D look-up is enough
            w = self.gmap[0][codes[0]]
            if self.devices == 2:
                w -= self.gmap[0][codes[1]]
            return w
        w = self.gmap[classes[0], codes[0]]
        if self.devices == 2:
            w = w - self.gmap[classes[1], codes[1]]
        return w


def build_tables(cfg) -> DeviceTables:
    """Tabulate the configured preset (with the config's overrides) for the fixed-point model.

    Tabulating a 2048-level device takes tens of milliseconds, and every Formats of a Config
    asks for it: the tables are built once per (preset, weight format, c2c, pulse limit) and
    shared, with read-only arrays so that no caller can change another's tables.
    """
    return _tables(resolve(cfg.device), cfg.fixed.weight_frac, cfg.device.c2c, cfg.device.max_pulses,
                   cfg.train.max_step)


@functools.lru_cache(maxsize=32, typed=True)
def _tables(p: Preset, fw: int, c2c_override: float | None, max_pulses_override: int | None,
            max_step: float) -> DeviceTables:
    tables = _tabulate(p, fw, c2c_override, max_pulses_override, max_step)
    for name in ("gmap", "up", "down", "c2c_table"):
        getattr(tables, name).setflags(write=False)
    return tables


def _tabulate(p: Preset, fw: int, c2c_override: float | None, max_pulses_override: int | None,
              max_step: float) -> DeviceTables:
    """build_tables' work: GMAP, UP, DOWN and C2C of every class of the resolved preset."""
    levels = p.levels
    codes = np.arange(levels)
    top = levels - 1
    ref = potentiation_curve(p, levels)
    single = p.mode == "single"
    reference = symmetry_point(p, nominal(p), levels) if single else 0.0   # single: GMAP subtracts it
    devices = class_devices(p)
    gmap, up, down = [], [], []
    for d in devices:
        g = class_curve(p, d, levels)
        after = class_depressed(p, d, g, levels)
        nearest = np.abs(after[:, None] - g[None, :]).argmin(axis=1)
        down.append(np.maximum(np.minimum(nearest, codes - 1), 0))
        up.append(np.minimum(codes + 1, top))
        gmap.append(_quantise(p.w_scale * (g - (symmetry_point(p, d, levels) if single else 0.0)), fw))
    stuck_classes: tuple = ()
    if p.stuck > 0:
        stuck_classes = (len(devices), len(devices) + 1)
        for value in (ref[0], ref[top]):                   # stuck at G_min, stuck at G_max
            gmap.append(np.full(levels, _quantise(p.w_scale * (value - reference), fw)))
            up.append(codes.copy())
            down.append(codes.copy())
    gmap, up, down = (np.array(t, dtype=np.int64) for t in (gmap, up, down))
    c2c = c2c_probability(p.dw_min_std) if c2c_override is None else c2c_override
    c2c_table = np.array([round_half_up(c2c * 2**16)] * len(devices) + [0] * len(stuck_classes), dtype=np.int64)
    pulse_weight = p.w_scale * (float(np.mean(np.diff(ref))) if levels > 1 else 1.0)
    steps = np.concatenate([np.abs(np.take_along_axis(gmap, t, axis=1) - gmap).ravel() for t in (up, down)])
    largest = int(steps.max(initial=0))
    max_pulses = max_pulses_override or pulse_limit(max_step, largest, fw)
    if max_pulses > MAX_PULSES:
        raise ValueError(f"train.max_step={max_step} is {max_pulses} pulses of this device "
                         f"(largest pulse = {largest} x 2^-{fw}); at most {MAX_PULSES} fit the random-draw "
                         f"index: lower max_step or set device.max_pulses")
    return DeviceTables(
        preset=p, levels=levels, devices=1 if p.mode == "single" else 2, gmap=gmap, up=up, down=down,
        class_devices=tuple(devices), c2c=c2c, c2c_table=c2c_table, stuck_classes=stuck_classes,
        max_pulses=max_pulses, max_pulse_step=largest, pulse_weight=pulse_weight,
        mid=int(nearest_code(_quantise(p.w_scale * (ref - reference), fw).astype(np.float64), np.zeros(1))[0])
        if p.mode == "single" else levels // 2,
        scale=1 << fw)


def pulse_limit(max_step: float, largest_pulse: int, fw: int) -> int:
    """P_max = max(1, floor(max_step * 2^fw / largest |dw| of one pulse)), exact (docs/numerics.md, 5).

    The worst update then stays within max_step (the float model's clip) unless one pulse alone
    exceeds it, whatever the device's asymmetry and the codes it sits at.
    """
    if largest_pulse <= 0:
        return 1
    return max(1, math.floor(Fraction(max_step) * 2**fw / largest_pulse))


def _quantise(values: np.ndarray | float, fw: int) -> np.ndarray:
    """Weight values to integers at scale 2^-fw, round half up (as every table of the spec)."""
    return np.floor(np.asarray(values, dtype=np.float64) * 2.0**fw + 0.5).astype(np.int64)


# -- fabrication and programming ------------------------------------------------------------------

def fabricate(tables: DeviceTables, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Per-device class map (devices, *shape), fixed at 'fabrication' from the device seed.

    Each device is stuck with probability `stuck` (at G_max with probability `stuck_high`, else at
    G_min); every other device gets one of the M variation classes with equal probability.
    """
    full = (tables.devices, *shape)
    if tables.classes == 1:
        return np.zeros(full, dtype=np.int64)
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, tables.d2d_classes, size=full) if tables.d2d_classes > 1 else \
        np.zeros(full, dtype=np.int64)
    if tables.stuck_classes:
        p = tables.preset
        stuck = rng.random(full) < p.stuck
        high = rng.random(full) < p.stuck_high
        low_class, high_class = tables.stuck_classes
        classes = np.where(stuck, np.where(high, high_class, low_class), classes)
    return classes.astype(np.int64)


def program(tables: DeviceTables, target: np.ndarray, classes: np.ndarray, fault_aware: bool = False) -> np.ndarray:
    """Write-verify programming: codes whose weight is nearest to `target` (float, weight units).

    Single device: the nearest code. Differential: the pair split symmetrically around the mid
    code, each device the nearest to its half of the target. This is how float-trained weights
    are exported to the hardware. Stuck devices cannot be programmed: they get code L-1, the code
    that marks a device as saturated, so in-situ potentiate-first programming sends every pulse of
    the pair to the working partner. `fault_aware`: the working partner of a stuck device is
    programmed for the whole target (w = G+ - G- with the stuck conductance known from the fault map).
    """
    target = np.asarray(target, dtype=np.float64) * tables.scale
    codes = np.zeros((tables.devices, *target.shape), dtype=np.int64)
    stuck = tables.is_stuck(classes)
    for m in range(tables.classes):
        row = tables.gmap[m].astype(np.float64)
        if m in tables.stuck_classes:
            continue
        if tables.devices == 1:
            sel = classes[0] == m
            codes[0][sel] = nearest_code(row, target[sel])
            continue
        for dev, sign in ((0, 1.0), (1, -1.0)):
            sel = classes[dev] == m
            want = row[tables.mid] + sign * 0.5 * target[sel]
            if fault_aware:   # partner stuck: this device carries the whole target
                partner = 1 - dev
                lone = stuck[partner][sel]
                fixed = tables.gmap[classes[partner][sel], tables.levels - 1].astype(np.float64)
                want = np.where(lone, fixed + sign * target[sel], want)
            codes[dev][sel] = nearest_code(row, want)
    codes[stuck] = tables.levels - 1
    return codes


def nearest_code(row: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Index of the nearest table entry for each wanted value (rows are non-decreasing; ties: lower)."""
    if want.size == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.clip(np.searchsorted(row, want), 1, len(row) - 1)
    left, right = row[idx - 1], row[idx]
    return np.where(np.abs(want - left) <= np.abs(right - want), idx - 1, idx).astype(np.int64)


def parameters(p: Preset) -> dict:
    """Every field of a preset (for reports)."""
    return {f.name: getattr(p, f.name) for f in fields(p) if f.name != "name"}
