"""Fixed-point reference model: the golden model the RTL must match bit for bit.

Integers only, exactly as docs/numerics.md writes them. Matrix products run through
float64 BLAS on integer-valued arrays: `Formats` proves every partial sum is below 2^53, so
they are exact (and 20x faster than numpy's integer matmul).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from . import kernels, rng
from .config import Config
from .device import DeviceTables, fabricate, nearest_code, program
from .masks import connectivity
from .network import Relaxed, _clip, cached_rows, compiled_kernel_enabled, converge, units_of
from .numerics import CARRY_FRAC, Formats, round_shift


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer product via float64 (exact below 2^53, which Formats guarantees)."""
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


@dataclass
class FixedParams:
    """Device state: level codes and classes of every weight (symmetric copies) and bias."""

    codes_w: np.ndarray      # (devices, N, N) int64, symmetric, zero outside the mask
    codes_b: np.ndarray      # (devices, N) int64
    class_w: np.ndarray      # (devices, N, N) device class map, symmetric
    class_b: np.ndarray      # (devices, N)
    mask: np.ndarray         # (N, N) bool
    updates: int = 0         # update counter t of the random numbers
    # fixed.rounding "carry": each synapse's (upper triangle) and bias's pulse remainder, in units of
    # 2^-CARRY_FRAC pulse (docs/numerics.md section 5); zero under every other rounding
    carry_w: np.ndarray | None = None    # (N, N) int64
    carry_b: np.ndarray | None = None    # (N,) int64

    def __post_init__(self) -> None:
        n = self.mask.shape[0]
        if self.carry_w is None:
            self.carry_w = np.zeros((n, n), dtype=np.int64)
        if self.carry_b is None:
            self.carry_b = np.zeros(n, dtype=np.int64)

    def copy(self) -> "FixedParams":
        return FixedParams(self.codes_w.copy(), self.codes_b.copy(), self.class_w.copy(), self.class_b.copy(),
                           self.mask.copy(), self.updates, self.carry_w.copy(), self.carry_b.copy())

    def weights(self, tables: DeviceTables) -> tuple[np.ndarray, np.ndarray]:
        """(W, b) as integers at scale 2^-fw; W is zero outside the mask."""
        W = tables.weight(self.codes_w, self.class_w)
        W *= self.mask
        b = tables.weight(self.codes_b, self.class_b)
        return W.astype(np.int64, copy=False), b.astype(np.int64, copy=False)

    @classmethod
    def from_float(cls, cfg: Config, W: np.ndarray, b: np.ndarray, fault_aware: bool = True) -> "FixedParams":
        """Program float weights into devices (write-verify to the nearest codes).

        The class map (device-to-device classes and stuck devices) is the chip's, fixed by
        device.fab_seed, and known to the programmer (a post-fabrication test): by default the
        working partner of a stuck device carries the whole weight (`fault_aware`); False writes
        each device of a pair to its half of the weight, as if every device worked.
        """
        fmt = Formats(cfg)
        tables = fmt.device
        n = cfg.network.n
        mask = connectivity(cfg.network)
        class_w = _symmetric(fabricate(tables, (n, n), cfg.device.fab_seed))
        class_b = fabricate(tables, (n,), cfg.device.fab_seed + 1)
        codes_w = program(tables, W * mask, class_w, fault_aware)
        codes_w = _symmetric(np.where(mask[None], codes_w, program(tables, np.zeros_like(W), class_w)))
        codes_b = program(tables, b, class_b, fault_aware)
        return cls(codes_w, codes_b, class_w, class_b, mask)


def _symmetric(a: np.ndarray) -> np.ndarray:
    """Mirror the upper triangle (incl. diagonal) of the last two axes onto the lower one."""
    upper = np.triu(a)
    return upper + np.swapaxes(np.triu(a, 1), -1, -2)


# -- relaxation ----------------------------------------------------------------------------------

@dataclass
class FixedDrive:
    v0: np.ndarray          # (B, N) int64 initial state codes
    x: np.ndarray           # (B, N) int64 input signs (+1, -1, or 0 where no current)
    clamped: np.ndarray     # (N,) bool


@dataclass
class FixedTarget:
    values: np.ndarray      # (B, N) int64 target codes
    units: np.ndarray       # (N,) bool


#: Relaxation results (final states, steps, convergence, optional trace) of either model.
FixedRelaxed = Relaxed


def activation(fmt: Formats, v: np.ndarray) -> np.ndarray:
    return fmt.act_lut[v - fmt.lo]


def fixed_step(fmt: Formats, W: np.ndarray, b: np.ndarray, v: np.ndarray, x: np.ndarray,
               target: FixedTarget | None, sign: int, read_noise: "ReadNoise | None" = None) -> np.ndarray:
    """One synchronous step, docs/numerics.md section 4 (clamped units handled by the caller)."""
    a = activation(fmt, v)
    acc = exact_matmul(a, W) + (b << fmt.fa) + x * fmt.g_in
    if read_noise is not None:
        acc = acc + read_noise(a)
    g = acc if fmt.hard else fmt.der_lut[v - fmt.lo] * acc
    r = (g << fmt.k_frac) - (v << (fmt.s + fmt.k_frac))
    if target is not None and sign != 0:
        r = r + sign * (((target.values - v) * target.units) << (fmt.s + fmt.k_mul))
    return np.clip(v + round_shift(r, fmt.round_shift), fmt.lo, fmt.hi)


def fixed_relax(fmt: Formats, W: np.ndarray, b: np.ndarray, drive: FixedDrive,
                target: FixedTarget | None = None, sign: int = 0, v_start: np.ndarray | None = None,
                max_steps: int | None = None, trace: bool = False) -> FixedRelaxed:
    """Iterate until each sample's max|dv| <= tol_lsb or the step limit; converged samples freeze."""
    limit = fmt.cfg.network.max_steps if max_steps is None else max_steps
    v = (drive.v0 if v_start is None else v_start).astype(np.int64, copy=True)
    v[:, drive.clamped] = drive.v0[:, drive.clamped]

    noise = ReadNoise.for_relaxation(fmt, drive, v, sign) if fmt.cfg.device.read_noise > 0 else None
    step = _Stepper(fmt, W, b, None if target is None or sign == 0 else target.units, sign, noise)
    if noise is None and not trace and step.identity_act:
        if not drive.clamped.any() and compiled_kernel_enabled():
            return _relax_compiled(fmt, step, v, drive, target, sign, limit)
        if _float_exact(fmt):
            return _relax_float64(fmt, step, v, drive, target, limit)
    rows = cached_rows(drive.x, None if target is None else target.values)
    drive_rows = {"key": None}

    def update(active, va):
        x, values = rows(active)
        if drive_rows["key"] is not active:            # the constant part once per active set, not per step
            drive_rows["key"], drive_rows["const"] = active, step.constant(x)
        return step(va, drive_rows["const"], values)

    return converge(v, update, limit, fmt.cfg.fixed.tol_lsb, drive.clamped, trace)


def _relax_compiled(fmt: Formats, step: "_Stepper", v: np.ndarray, drive: FixedDrive, target: FixedTarget | None,
                    sign: int, limit: int) -> FixedRelaxed:
    """The same relaxation in one compiled call (model/kernels.py): integers, so the same results."""
    n = v.shape[1]
    nudged = step.units is not None
    tv = np.array(target.values, dtype=np.int64) if nudged else np.zeros((v.shape[0], n), dtype=np.int64)
    units = step.units if nudged else np.zeros(n, dtype=np.int64)
    const = np.ascontiguousarray(step.constant(drive.x), dtype=np.int64)
    out, steps, converged = kernels.relax_fixed(np.ascontiguousarray(step.Wf), const, v, tv, units,
                                                step.sign if nudged else 0, step.k_frac, step.sk, step.skm,
                                                step.shift, step.lo, step.hi, fmt.cfg.fixed.tol_lsb, limit)
    return Relaxed(v=out, steps=steps, converged=converged)


def _float_exact(fmt: Formats) -> bool:
    """Whether every sum of a relaxation step, rounding offset included, is an integer below 2^53."""
    return _memo(fmt, "float_exact", None,
                 lambda: fmt.r_bound + (1 << max(fmt.round_shift - 1, 0)) < 2**53)


def _relax_float64(fmt: Formats, step: "_Stepper", v: np.ndarray, drive: FixedDrive, target: FixedTarget | None,
                   limit: int) -> FixedRelaxed:
    """`_Stepper` over `converge` with the states held in float64: the same integers, exactly.

    Every value of a step is an integer below 2^53 (`_float_exact`), so float64 holds it exactly:
    shifts are multiplications by powers of two, the rounding shift is floor((r + 2^(R-1)) 2^-R),
    and the order of the sums does not matter (every partial sum is bounded by Formats.r_bound).
    So the step is one product and one constant: r = v M + c with
    M = W 2^k' - diag(2^(s+k') + sign units 2^(s+m)) and c = ((b << fa) + x g_in) 2^k'
    + sign units T 2^(s+m) + 2^(R-1); then v + floor(r 2^-R), clipped. No int64 <-> float64
    conversion per step.
    """
    n = v.shape[1]
    diagonal = np.full(n, float(1 << step.sk))
    pull = np.zeros(n)
    if step.units is not None:                         # sign (T - v) units 2^(s + m)
        pull = step.units * float((1 << step.skm) * (1 if step.sign > 0 else -1))
    M = step.Wf * float(1 << step.k_frac)
    M[np.diag_indices(n)] -= diagonal + pull
    down = float(2.0 ** -step.shift)
    half = (1 << (step.shift - 1)) if step.shift else 0
    rows = cached_rows(drive.x, None if target is None else target.values)
    memo = {"key": None}
    lo, hi = float(step.lo), float(step.hi)

    def update(active, va):
        x, values = rows(active)
        if memo["key"] is not active:
            memo["key"] = active
            const = (step.constant(x) * (1 << step.k_frac) + half).astype(np.float64)
            if step.units is not None:
                const += values * pull
            memo["const"] = const
        r = va @ M
        r += memo["const"]
        r *= down
        np.floor(r, out=r)
        r += va
        return _clip(r, lo, hi, out=r)

    out = converge(v.astype(np.float64), update, limit, fmt.cfg.fixed.tol_lsb, drive.clamped)
    return Relaxed(v=out.v.astype(np.int64), steps=out.steps, converged=out.converged)


class ReadNoise:
    """Read noise (a model option; the hardware leaves it out): every conductance read in a
    relaxation step is G + sigma * xi, sigma = device.read_noise x the device range, independent per
    device and step. Unit i's field then carries N(0, sigma^2 (sum_j a_j^2 + 2^(2fa)) x devices): drawn
    as one integer per unit and step (scale 2^-(fw+fa), rounded half up), which is the same in
    distribution and costs B x N draws instead of B x N x N. Deterministic: the generator is seeded by
    the training seed and the relaxation's inputs (the noise of a sample depends on its batch).
    """

    def __init__(self, fmt: Formats, rng: np.random.Generator):
        tables = fmt.device
        p = tables.preset
        sigma = fmt.cfg.device.read_noise * abs(p.w_max - p.w_min) * p.w_scale * 2.0**fmt.fw
        self.sigma2 = sigma**2 * tables.devices
        self.mask = fmt.mask.astype(np.float64)
        self.bias = float(1 << (2 * fmt.fa))
        self.rng = rng

    @classmethod
    def for_relaxation(cls, fmt: Formats, drive: FixedDrive, v: np.ndarray, sign: int) -> "ReadNoise":
        key = [fmt.cfg.train.seed, zlib.crc32(np.ascontiguousarray(drive.v0).tobytes()),
               zlib.crc32(np.ascontiguousarray(v).tobytes()), sign + 1]
        return cls(fmt, np.random.default_rng(key))

    def __call__(self, a: np.ndarray) -> np.ndarray:
        a2 = a.astype(np.float64) ** 2
        std = np.sqrt(self.sigma2 * (a2 @ self.mask + self.bias))
        return np.floor(std * self.rng.standard_normal(a.shape) + 0.5).astype(np.int64)


def _stepper_constants(fmt: Formats) -> tuple:
    """fa, g_in, lo, hi, k', s + k', s + m, R and whether the activation table is the identity."""
    identity = fmt.hard and np.array_equal(fmt.act_lut, np.arange(fmt.lo, fmt.hi + 1))
    return (fmt.fa, fmt.g_in, fmt.lo, fmt.hi, fmt.k_frac, fmt.s + fmt.k_frac, fmt.s + fmt.k_mul, fmt.round_shift,
            identity)


class _Stepper:
    """`fixed_step` with its constants hoisted out of the loop: the same integers, exactly.

    Integer arithmetic is exact, so the products and sums below equal `fixed_step`'s whatever
    their order; W is converted to float64 once per relaxation instead of every step, and the
    hard activations' tables (identities on the state range) are skipped.
    """

    def __init__(self, fmt: Formats, W: np.ndarray, b: np.ndarray, units: np.ndarray | None, sign: int,
                 read_noise: "ReadNoise | None" = None):
        self.fmt, self.sign, self.read_noise = fmt, sign, read_noise
        self.Wf = W.astype(np.float64)
        (fa, self.g_in, self.lo, self.hi, self.k_frac, self.sk, self.skm, self.shift,
         self.identity_act) = _memo(fmt, "stepper", None, lambda: _stepper_constants(fmt))
        self.bias = b << fa
        self.units = None if units is None else units.astype(np.int64)

    def constant(self, x: np.ndarray) -> np.ndarray:
        """What a step adds to W a for these inputs: (b << fa) + x g_in (integer sums, any order)."""
        return x * self.g_in + self.bias

    def __call__(self, v: np.ndarray, const: np.ndarray, target_values: np.ndarray | None) -> np.ndarray:
        fmt = self.fmt
        a = v if self.identity_act else fmt.act_lut[v - self.lo]
        acc = (a.astype(np.float64) @ self.Wf).astype(np.int64)   # exact below 2^53 (Formats)
        acc += const
        if self.read_noise is not None:
            acc += self.read_noise(a)
        if not fmt.hard:
            acc *= fmt.der_lut[v - self.lo]
        r = acc << self.k_frac if self.k_frac else acc
        r -= v << self.sk
        if self.units is not None:
            pull = target_values - v
            pull *= self.units
            pull <<= self.skm
            r += pull if self.sign > 0 else -pull
        r = round_shift(r, self.shift)       # the one relaxation rounding (numerics.round_shift)
        r += v
        return _clip(r, self.lo, self.hi, out=r)


def fixed_drive_for(fmt: Formats, x: np.ndarray) -> FixedDrive:
    """The project's recall protocol in codes (same as network.drive_for)."""
    net = fmt.cfg.network
    clamped, _ = units_of(net)
    if net.layered:
        n_in = net.layers[0]
        if x.shape[1] != n_in:
            raise ValueError(f"input has {x.shape[1]} values, the input layer has {n_in} units")
        v0 = np.zeros((x.shape[0], net.n), dtype=np.int64)
        v0[:, :n_in] = np.clip(np.floor(np.asarray(x, np.float64) * (1 << fmt.fv) + 0.5), fmt.lo, fmt.hi)
        return FixedDrive(v0=v0, x=np.zeros_like(v0), clamped=clamped)
    if x.shape[1] != net.pattern_units:
        raise ValueError(f"pattern has {x.shape[1]} values, the network has {net.pattern_units} pattern units")
    h = net.hidden
    signs = np.zeros((x.shape[0], net.n), dtype=np.int64)   # hidden units: no input current
    signs[:, h:] = np.where(np.asarray(x) > 0, 1, -1)
    v0 = np.where(signs > 0, fmt.data_hi, fmt.data_lo).astype(np.int64)
    v0[:, :h] = (fmt.data_lo + fmt.data_hi) >> 1             # hidden units start in the middle of the range
    return FixedDrive(v0=v0, x=signs, clamped=clamped)


def fixed_target_for(fmt: Formats, y: np.ndarray) -> FixedTarget:
    net = fmt.cfg.network
    _, outputs = units_of(net)
    values = np.zeros((y.shape[0], net.n), dtype=np.int64)
    if net.layered:
        values[:, outputs] = np.clip(np.floor(np.asarray(y, np.float64) * (1 << fmt.fv) + 0.5), fmt.lo, fmt.hi)
    else:
        values[:, net.hidden:] = np.where(np.asarray(y) > 0, fmt.data_hi, fmt.data_lo)
    return FixedTarget(values=values, units=outputs)


def fixed_readout(fmt: Formats, v: np.ndarray) -> np.ndarray:
    _, outputs = units_of(fmt.cfg.network)
    return np.where(v[:, outputs] > fmt.threshold, 1, -1).astype(np.int8)


# -- in-situ learning ----------------------------------------------------------------------------

@dataclass
class LearnStep:
    """What one in-situ update did, for tests and the RTL scoreboard."""

    pulses_w: np.ndarray    # (N, N) signed pulse counts (upper triangle, mask)
    pulses_b: np.ndarray    # (N,)
    # (N,) units whose HI and LO activations differ in some slot: every synapse and bias of the
    # others has C = 0, so a learner with hw.learn_skip passes over them (its cycles depend on it)
    changed: np.ndarray | None = None


def correlations(fmt: Formats, a_hi: np.ndarray, a_lo: np.ndarray, mask: np.ndarray,
                 clamped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """C_ij (upper triangle of the mask) and C_i of docs/numerics.md section 5, exact ints."""
    C = exact_matmul(a_hi.T, a_hi) - exact_matmul(a_lo.T, a_lo)
    C = np.triu(C * mask)
    Cb = (a_hi - a_lo).sum(axis=0) << fmt.fa
    Cb[clamped] = 0
    return C, Cb


def carry_round(q: np.ndarray, shift: np.ndarray, carry: np.ndarray, max_pulses: int) -> tuple[np.ndarray, np.ndarray]:
    """Truncation with carry (fixed.rounding "carry", docs/numerics.md section 5): (pulses, carry').

    x = q + carry 2^k with k = sh - CARRY_FRAC; y = |x| >> k; n = min(y >> CARRY_FRAC, P_max);
    carry' = y mod 2^CARRY_FRAC, or 2^CARRY_FRAC - 1 where n was clipped; both take the sign of x.
    A pulse fires only once the accumulated update reaches a whole pulse, so updates whose signs
    alternate cancel in the carry instead of on a device whose up and down steps differ.
    """
    k = shift - CARRY_FRAC
    x = q + (carry << k)
    sign = np.sign(x)
    y = np.abs(x) >> k
    n = y >> CARRY_FRAC
    rem = np.where(n > max_pulses, (1 << CARRY_FRAC) - 1, y & ((1 << CARRY_FRAC) - 1))
    return sign * np.minimum(n, max_pulses), sign * rem


def quantise(fmt: Formats, C: np.ndarray, shift: np.ndarray | int, t: int, s: np.ndarray,
             mul: np.ndarray | int | None = None, carry: np.ndarray | None = None) -> np.ndarray:
    """Pulse counts from correlations: LR_MUL (per synapse or train.lr's), shift, rounding, +-P_max.

    Rounding "carry" reads each synapse's carry from `carry` and writes the new one back (in place).
    """
    q = C * (fmt.lr_fixed[0] if mul is None else mul)
    mag = np.abs(q)
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), q.shape)
    mode = fmt.cfg.fixed.rounding
    if mode == "carry":
        if carry is None or carry.shape != q.shape:
            raise ValueError(f"rounding 'carry' needs one carry per correlation, shape {q.shape}")
        n, carry[...] = carry_round(q, shift, carry, fmt.max_pulses)
        return n
    # every mode is (|q| + offset) >> shift; only the offset differs (numerics.md section 5)
    offset = np.zeros_like(mag)
    if mode == "nearest":
        offset = np.int64(1) << (shift - 1)
    elif mode == "stochastic":             # the draw's top `shift` bits; no draw where q = 0
        nz = mag != 0
        if np.any(nz):
            draws = rng.rand(fmt.cfg.train.seed, t, s[nz], 0)
            offset[nz] = draws.astype(np.int64) >> (32 - shift[nz])
    n = (mag + offset) >> shift
    return np.clip(np.sign(q) * n, -fmt.max_pulses, fmt.max_pulses)


def c2c_draw(p, dev):
    """Draw index of the c2c noise after pulse p on device dev: 2 + 2p + dev (docs/numerics.md, section 5).

    Both devices' draws of one pulse come from one Threefry call (words x0 and x1), so the
    hardware can fetch a pulse's noise before it knows which device the pulse will move.
    """
    return 2 + 2 * p + dev


def _pulse_once(tables, codes: np.ndarray, classes: np.ndarray, active: np.ndarray, positive: np.ndarray,
                top: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pulse on each `active` synapse (numerics.md section 5): the device it goes to (a pair
    potentiates its primary device unless that one is at the top code, then depresses the
    other), that device's class, and its code after the pulse (before cycle-to-cycle noise)."""
    if tables.devices == 1:
        dev = np.zeros(len(active), dtype=np.int64)
        potentiate = positive
    else:
        primary = np.where(positive, 0, 1)
        saturated = codes[primary, active] >= top
        dev = np.where(saturated, 1 - primary, primary)
        potentiate = ~saturated
    c, m = codes[dev, active], classes[dev, active]
    return dev, m, np.where(potentiate, tables.up[m, c], tables.down[m, c])


def apply_pulses(fmt: Formats, codes: np.ndarray, classes: np.ndarray, pulses: np.ndarray,
                 s: np.ndarray, t: int) -> None:
    """Program |n| pulses per synapse, one pulse at a time, with optional c2c noise (in place).

    codes/classes: (devices, K) for K synapses with indices s; pulses: (K,). Single device:
    potentiation for n > 0, depression for n < 0. Differential pair, potentiate-first: each
    pulse potentiates G+ (n > 0) or G- (n < 0); only when that device is at its top code does
    the pulse depress the partner instead. Depression, the steep and asymmetric direction of
    real devices, is thereby used as little as possible, and no refresh cycle is needed.
    """
    tables = fmt.device
    top = tables.levels - 1
    noisy = bool(tables.c2c_table.any())
    for p in range(int(np.max(np.abs(pulses), initial=0))):
        active = np.nonzero(np.abs(pulses) > p)[0]
        dev, m, c = _pulse_once(tables, codes, classes, active, pulses[active] > 0, top)
        if noisy:                  # C2C of the pulsed device's class (0 for stuck classes)
            u = rng.rand(fmt.cfg.train.seed, t, s[active], c2c_draw(p, dev))
            hit = (u >> np.uint32(16)).astype(np.int64) < tables.c2c_table[m]
            step = np.where((u >> np.uint32(15)) & np.uint32(1), 1, -1)
            c = np.clip(c + np.where(hit, step, 0), 0, top)
        codes[dev, active] = c


_SYNAPSES: dict = {}


def _synapses(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) of every synapse i <= j of the mask, in row order (remembered for the last mask seen)."""
    key = (mask.shape, mask.tobytes())
    if _SYNAPSES.get("key") != key:
        _SYNAPSES["key"], _SYNAPSES["ij"] = key, np.nonzero(np.triu(mask))
    return _SYNAPSES["ij"]


def _memo(fmt: Formats, name: str, key, build):
    """What `build()` gives for this Formats and key, kept on the Formats (the last key per name).

    Formats is immutable, so what follows from it (and from the mask, the decay step) need not be
    derived again for every update; `cached_property` keeps its own values the same way.
    """
    memo = fmt.__dict__.setdefault("_fixed_memo", {})
    hit = memo.get(name)
    if hit is None or hit[0] != key:
        value = build()
        for array in vars(value).values() if hasattr(value, "__dataclass_fields__") else ():
            if isinstance(array, np.ndarray):
                array.setflags(write=False)          # shared from now on: nobody may change it
        hit = memo[name] = (key, value)
    return hit[1]


@dataclass(frozen=True)
class _LearnPlan:
    """Everything of one learning update that depends on the Formats, the mask and the decay step only."""

    ii: np.ndarray            # synapses i <= j of the mask, row order
    jj: np.ndarray
    flat: np.ndarray          # i * N + j: the synapse's index s, and its place in a flattened (N, N)
    flat_t: np.ndarray        # j * N + i: the place of its symmetric copy
    mul: np.ndarray           # (synapses + N,) LR_MUL of every synapse, then of every bias
    shift: np.ndarray         # (synapses + N,) LR_SHIFT (the diagonal's + 1 included)
    s: np.ndarray             # (synapses + N,) random-number index of every synapse, then bias
    rate: tuple[int, int] | None   # the (LR_MUL, LR_SHIFT) all share (the compiled pass applies), else None


def _learn_plan(fmt: Formats, mask: np.ndarray, decay_steps: int) -> _LearnPlan:
    def build() -> _LearnPlan:
        n = mask.shape[0]
        ii, jj = _synapses(mask)
        mul_w, shift_w = fmt.learn_shifts(fmt.synapse_layer[ii, jj], decay_steps)
        mul_b, shift_b = fmt.learn_shifts(fmt.bias_layer, decay_steps)
        muls, shifts = np.concatenate([mul_w, mul_b]), np.concatenate([shift_w, shift_b])
        uniform = bool(np.all(muls == muls[0]) and np.all(shifts == shifts[0]))
        flat = ii * n + jj
        return _LearnPlan(ii, jj, flat, jj * n + ii, np.concatenate([mul_w, mul_b]),
                          np.concatenate([shift_w + (ii == jj), shift_b]),     # diagonal: tied-pair factor 1/2
                          np.concatenate([flat, n * n + np.arange(n)]),
                          (int(muls[0]), int(shifts[0])) if uniform else None)

    return _memo(fmt, "learn_plan", (mask.shape, mask.tobytes(), decay_steps), build)


@dataclass(frozen=True)
class _PulseTables:
    """UP and DOWN applied k = 0..P_max times, and the pulses a device takes to reach the top code.

    Without cycle-to-cycle noise a pulse's effect depends on the code alone, so n pulses are one
    table look-up: the same codes as applying them one at a time (apply_pulses).
    """

    up: np.ndarray            # (M', P_max + 1, L): UP^k
    down: np.ndarray          # (M', P_max + 1, L): DOWN^k
    to_top: np.ndarray        # (M', L): least k with UP^k(c) >= L - 1, P_max + 1 if none


def _pulse_tables(fmt: Formats) -> _PulseTables:
    def build() -> _PulseTables:
        tables = fmt.device
        top, kmax = tables.levels - 1, tables.max_pulses
        powers = []
        for table in (tables.up, tables.down):
            rows = [np.broadcast_to(np.arange(tables.levels), table.shape)]
            for _ in range(kmax):
                rows.append(np.take_along_axis(table, rows[-1], axis=1))
            powers.append(np.stack(rows, axis=1).astype(np.int64))
        at_top = powers[0] >= top
        to_top = np.where(at_top.any(axis=1), at_top.argmax(axis=1), kmax + 1)
        return _PulseTables(powers[0], powers[1], to_top)

    return _memo(fmt, "pulse_tables", None, build)


def _quantise_all(fmt: Formats, C: np.ndarray, plan: _LearnPlan, t: int, carry: np.ndarray | None = None) -> np.ndarray:
    """`quantise` of every synapse and bias at once: one Threefry call for all the draws.

    Draws of zero correlations are made too and do not matter: (0 + noise) >> shift is 0 for
    noise < 2^shift, so the pulse counts are quantise's exactly (tests/model/test_fixed_fast.py).
    """
    q = C * plan.mul
    mag = np.abs(q)
    shift = plan.shift
    mode = fmt.cfg.fixed.rounding
    if mode == "carry":
        n, carry[...] = carry_round(q, shift, carry, fmt.max_pulses)
        return n
    if mode == "truncate":
        n = mag >> shift
    elif mode == "nearest":
        n = (mag + (np.int64(1) << (shift - 1))) >> shift
    else:
        draws = rng.rand(fmt.cfg.train.seed, t, plan.s, 0).astype(np.int64)
        draws >>= 32 - shift
        draws += mag
        n = draws >> shift
    n *= np.sign(q)
    return _clip(n, -fmt.max_pulses, fmt.max_pulses, out=n)


def _program(fmt: Formats, codes: np.ndarray, classes: np.ndarray, pulses: np.ndarray, s: np.ndarray,
             t: int) -> None:
    """`apply_pulses`, the same codes (in place): table look-ups without c2c noise, else the
    pulse-by-pulse loop with every pulse's Threefry draws made in one call."""
    tables = fmt.device
    mags = np.abs(pulses)
    kmax = int(mags.max(initial=0))
    if kmax == 0:
        return
    if kmax > tables.max_pulses:              # not from quantise: the definition says what happens
        apply_pulses(fmt, codes, classes, pulses, s, t)
        return
    if not tables.c2c_table.any():
        powers = _pulse_tables(fmt)
        positive = pulses > 0
        if tables.devices == 1:
            c, m = codes[0], classes[0]
            codes[0] = np.where(positive, powers.up[m, mags, c], powers.down[m, mags, c])
            return
        idx = np.arange(len(pulses))
        primary = np.where(positive, 0, 1)    # potentiate-first: G+ for n > 0, G- for n < 0
        partner = 1 - primary
        cp, mp = codes[primary, idx], classes[primary, idx]
        cq, mq = codes[partner, idx], classes[partner, idx]
        ups = np.minimum(mags, powers.to_top[mp, cp])     # pulses before the primary device is at the top
        codes[primary, idx] = powers.up[mp, ups, cp]
        codes[partner, idx] = powers.down[mq, mags - ups, cq]
        return
    # c2c noise: pulse p of a synapse uses draws 2 + 2p + dev, i.e. both words of Threefry call 1 + p
    pulse, syn = np.nonzero(mags[None, :] > np.arange(kmax)[:, None])     # pulse-major, synapses in order
    x0, x1 = rng.threefry2x32(np.uint32(t & rng.MASK32), rng.call_counter(s[syn], pulse + 1),
                              np.uint32(fmt.cfg.train.seed & rng.MASK32), np.uint32(0x6D656D70))
    bounds = np.searchsorted(pulse, np.arange(kmax + 1))
    top = tables.levels - 1
    for p in range(kmax):
        lo, hi = bounds[p], bounds[p + 1]
        active = syn[lo:hi]
        dev, m, c = _pulse_once(tables, codes, classes, active, pulses[active] > 0, top)
        u = np.where(dev == 1, x1[lo:hi], x0[lo:hi])         # rng.rand(..., c2c_draw(p, dev))
        hit = (u >> np.uint32(16)).astype(np.int64) < tables.c2c_table[m]
        step = np.where((u >> np.uint32(15)) & np.uint32(1), 1, -1)
        c = np.clip(c + np.where(hit, step, 0), 0, top)
        codes[dev, active] = c


def learn(fmt: Formats, params: FixedParams, a_hi: np.ndarray, a_lo: np.ndarray,
          clamped: np.ndarray, decay_steps: int = 0) -> LearnStep:
    """One in-situ EqProp update from two sets of fixed-point activations (in place).

    Each synapse learns at its weight layer's (LR_MUL, LR_SHIFT), the shift grown by
    `decay_steps` epochs of learning-rate decay (Formats.learn_shifts). The numpy path below is
    `correlations`, `quantise` and `apply_pulses` (the definition) computed with fewer passes:
    tests/model/test_fixed_fast.py holds it to them on random inputs.
    """
    n = params.mask.shape[0]
    t = params.updates
    plan = _learn_plan(fmt, params.mask, decay_steps)
    ii, jj = plan.ii, plan.jj
    Cb = (a_hi - a_lo).sum(axis=0) << fmt.fa
    Cb[clamped] = 0
    # The compiled pass knows one (LR_MUL, LR_SHIFT) for every synapse (decayed or not): per-layer
    # rates (classifiers) take the numpy path below.
    carrying = fmt.cfg.fixed.rounding == "carry"
    if (plan.rate is not None and not carrying and compiled_kernel_enabled() and params.codes_w.dtype == np.int64
            and params.codes_b.dtype == np.int64):
        tables = fmt.device      # the same correlations, quantisation and pulses in one compiled pass
        mul, shift = plan.rate
        c2c = getattr(tables, "c2c_table", None)
        c2c = np.full(tables.classes, tables.c2c_threshold, dtype=np.int64) if c2c is None else c2c
        pw, pb = kernels.learn_fixed(a_hi, a_lo, Cb, ii, jj, params.codes_w,
                                     params.class_w.astype(np.int64, copy=False),
                                     params.codes_b, params.class_b.astype(np.int64, copy=False), mul, shift,
                                     fmt.cfg.fixed.rounding, fmt.cfg.train.seed, t, fmt.max_pulses,
                                     tables.up.astype(np.int64, copy=False), tables.down.astype(np.int64, copy=False),
                                     np.asarray(c2c, dtype=np.int64))
    else:
        hi, lo = a_hi.astype(np.float64), a_lo.astype(np.float64)
        grams = [np.take(a.T @ a, plan.flat).astype(np.int64) for a in (hi, lo)]   # exact, as in correlations()
        C = np.concatenate([grams[0] - grams[1], Cb])
        carry = None
        if carrying:
            carry = np.concatenate([np.take(params.carry_w, plan.flat), params.carry_b])
        pulses = _quantise_all(fmt, C, plan, t, carry)
        if carrying:
            params.carry_w.flat[plan.flat] = carry[:len(ii)]
            params.carry_b[:] = carry[len(ii):]
        pw, pb = pulses[:len(ii)], pulses[len(ii):]
        devices = params.codes_w.shape[0]
        flat_codes = params.codes_w.reshape(devices, n * n)     # a view when contiguous: 1-D indices
        codes_w = np.take(flat_codes, plan.flat, axis=1)
        _program(fmt, codes_w, np.take(params.class_w.reshape(devices, n * n), plan.flat, axis=1), pw,
                 plan.s[:len(ii)], t)
        if np.shares_memory(flat_codes, params.codes_w):
            flat_codes[:, plan.flat] = codes_w
            flat_codes[:, plan.flat_t] = codes_w
        else:
            params.codes_w[:, ii, jj] = codes_w
            params.codes_w[:, jj, ii] = codes_w
        _program(fmt, params.codes_b, params.class_b, pb, plan.s[len(ii):], t)
    params.updates += 1
    pulses_w = np.zeros(n * n, dtype=np.int64)
    pulses_w[plan.flat] = pw
    return LearnStep(pulses_w=pulses_w.reshape(n, n), pulses_b=pb, changed=changed_units(a_hi, a_lo))


def changed_units(a_hi: np.ndarray, a_lo: np.ndarray) -> np.ndarray:
    """(N,) bool: units whose HI and LO activations differ in at least one slot (docs/numerics.md
    section 5: a synapse or bias none of whose units changed has C = 0 and no update)."""
    return np.asarray(np.any(np.asarray(a_hi) != np.asarray(a_lo), axis=0)).reshape(-1)


def nudge_sign(cfg, updates: int) -> int:
    """The nudged phase's sign of update `updates` (docs/numerics.md): +1, or with the random_sign
    nudge the top bit of a Threefry draw (the centered nudge runs both)."""
    if cfg.train.nudge != "random_sign":
        return 1
    n = cfg.network.n
    return 1 if int(rng.rand(cfg.train.seed, updates, n * n + n, 0)) >> 31 else -1


def eqprop_fixed_update(fmt: Formats, params: FixedParams, drive: FixedDrive, target: FixedTarget,
                        decay_steps: int = 0, relax=None) -> tuple[LearnStep, dict]:
    """Free phase, nudged phase(s), learning: exactly what the hardware learning loop does.
    `relax` replaces fixed_relax (same signature) for a topology with its own schedule
    (model.classify's layered relaxation); the phases and learn() are the same."""
    relax = fixed_relax if relax is None else relax
    W, b = params.weights(fmt.device)
    free = relax(fmt, W, b, drive)
    nudge = fmt.cfg.train.nudge
    if nudge == "centered":
        hi = relax(fmt, W, b, drive, target, +1, v_start=free.v)
        lo = relax(fmt, W, b, drive, target, -1, v_start=free.v)
        phases = (free, hi, lo)
    else:
        sign = nudge_sign(fmt.cfg, params.updates)
        nudged = relax(fmt, W, b, drive, target, sign, v_start=free.v)
        hi, lo = (nudged, free) if sign > 0 else (free, nudged)
        phases = (free, nudged)
    step = learn(fmt, params, activation(fmt, hi.v), activation(fmt, lo.v), drive.clamped, decay_steps)
    err = ((target.values - free.v) * target.units) / float(1 << fmt.fv)
    info = {"loss": float(0.5 * np.sum(err**2, axis=1).mean()),
            "steps": float(sum(ph.steps.mean() for ph in phases)),
            "free_converged": int(free.converged.sum())}
    return step, info


# -- retention (model option) --------------------------------------------------------------------

def drift(fmt: Formats, params: FixedParams, time: float) -> FixedParams:
    """Conductance drift / retention loss between training and recall (a model option).

    Every working device's conductance decays towards its class's G_min (code 0) as
    G(t) = G_min + (G - G_min) t^-nu, t = time since programming in units of t0 (t >= 1), with one
    exponent per device, nu ~ max(0, N(drift_nu, drift_nu_dtod)), fixed per chip (device.fab_seed).
    The result is snapped to the nearest code of the device's class, so the drifted devices are
    ordinary codes: the hardware can be loaded with them (it has no drift of its own).
    """
    if time < 1:
        raise ValueError(f"drift time must be >= 1 (units of t0), got {time}")
    dev, tables = fmt.cfg.device, fmt.device
    out = params.copy()
    if dev.drift_nu == 0 and dev.drift_nu_dtod == 0:
        return out
    rng = np.random.default_rng([dev.fab_seed, 2])
    nu_w = _symmetric(np.maximum(dev.drift_nu + dev.drift_nu_dtod * rng.standard_normal(params.codes_w.shape), 0))
    nu_b = np.maximum(dev.drift_nu + dev.drift_nu_dtod * rng.standard_normal(params.codes_b.shape), 0)
    for codes, classes, nu in ((out.codes_w, out.class_w, nu_w), (out.codes_b, out.class_b, nu_b)):
        g = tables.gmap[classes, codes].astype(np.float64)
        g0 = tables.gmap[classes, 0].astype(np.float64)
        want = g0 + (g - g0) * float(time) ** -nu
        for m in range(tables.classes):
            if m in tables.stuck_classes:
                continue
            sel = classes == m
            codes[sel] = nearest_code(tables.gmap[m].astype(np.float64), want[sel])
    return out
