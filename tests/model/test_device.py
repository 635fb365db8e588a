"""Device presets and their ROM tables (docs/numerics.md, sections 3 and 5): GMAP, UP, DOWN, C2C,
the pulse limit, device classes, stuck devices and programming."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memprop.model.config import Config, ConfigError
from memprop.model.device import (PRESETS, build_tables, c2c_probability, class_devices, fabricate, get_preset,
                                  program, pulse_limit, resolve)
from memprop.model.numerics import Formats, floor_log2, round_half_up


def float_cfg(**device) -> Config:
    """A float-numerics config: build_tables reads only device, fixed.weight_frac and train.max_step,
    and the fixed-point learning-rate checks (which reject some extreme level counts) do not run."""
    return Config.for_algorithm("eqprop", network={"n": 8}, device=device)


def check_tables(t) -> None:
    """The invariants the RTL relies on, for every class m."""
    top = t.levels - 1
    codes = np.arange(t.levels)
    assert t.gmap.shape == t.up.shape == t.down.shape == (t.classes, t.levels)
    assert t.c2c_table.shape == (t.classes,)
    for table in (t.gmap, t.up, t.down, t.c2c_table):
        assert table.dtype == np.int64
    for m in range(t.classes):
        g, up, down = t.gmap[m], t.up[m], t.down[m]
        assert np.all(np.diff(g) >= 0), f"GMAP[{m}] decreases"
        assert up.min() >= 0 and up.max() <= top and down.min() >= 0 and down.max() <= top
        if m in t.stuck_classes:                                    # constant, identity, noiseless
            assert np.all(g == g[0]) and np.array_equal(up, codes) and np.array_equal(down, codes)
            assert t.c2c_table[m] == 0
            continue
        assert np.all(up[:-1] > codes[:-1]) and up[-1] == top      # UP[c] > c except at the top
        assert np.all(down[1:] < codes[1:]) and down[0] == 0       # DOWN[c] < c except at 0
        assert np.all(np.diff(up) >= 0) and np.all(np.diff(down) >= 0)
        assert t.c2c_table[m] == t.c2c_threshold
        if t.devices == 2:
            assert g.min() >= 0                                    # a conductance: G_min = 0
    assert t.w_max == (np.abs(t.gmap).max() if t.devices == 1 else t.gmap.max() - t.gmap.min())
    steps = [np.abs(t.gmap[m][tab[m]] - t.gmap[m]) for m in range(t.classes) for tab in (t.up, t.down)]
    assert t.max_pulse_step == max(int(s.max()) for s in steps)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_at_its_own_levels(name):
    t = Formats(Config.for_algorithm("eqprop", numerics="fixed", device={"preset": name})).device
    assert t.levels == PRESETS[name].levels
    assert t.devices == (1 if PRESETS[name].mode == "single" else 2)
    assert t.d2d_classes == (PRESETS[name].d2d_classes if PRESETS[name].has_d2d else 1)
    check_tables(t)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(PRESETS)), levels=st.integers(2, 4096), classes=st.sampled_from([None, 1, 4, 16]),
       d2d=st.sampled_from([None, 0.0, 0.1, 0.5]), stuck=st.sampled_from([None, 0.0, 0.1]))
def test_tables_at_any_levels_and_device_classes(name, levels, classes, d2d, stuck):
    t = build_tables(float_cfg(preset=name, levels=levels, d2d_classes=classes, d2d=d2d, stuck=stuck, max_pulses=31))
    p = resolve(float_cfg(preset=name, levels=levels, d2d_classes=classes, d2d=d2d).device)
    assert t.levels == levels
    assert t.d2d_classes == (1 if not p.has_d2d else classes or (PRESETS[name].d2d_classes
                                                                  if PRESETS[name].d2d_classes > 1 else 4))
    assert len(t.stuck_classes) == (2 if (stuck if stuck is not None else PRESETS[name].stuck) else 0)
    check_tables(t)


def test_linear_devices_step_one_level_per_pulse():
    for name in ("ideal", "linear-256", "linear-64"):
        t = build_tables(float_cfg(preset=name))
        c = np.arange(t.levels)
        assert np.array_equal(t.up[0], np.minimum(c + 1, t.levels - 1))
        assert np.array_equal(t.down[0], np.maximum(c - 1, 0))
    ideal = build_tables(float_cfg(preset="ideal"))
    assert np.array_equal(ideal.gmap[0], np.arange(2048) - 1024)          # exact 2^-10 steps
    assert ideal.pulse_weight == 2.0**-10 and ideal.w_max == 1024 and ideal.mid == 1024


# -- the pulse limit (docs/numerics.md, section 5) ---------------------------------------------------

def test_pulse_limit_comes_from_the_largest_single_pulse():
    """P_max = max(1, floor(max_step 2^fw / largest |dw| of one pulse in UP/DOWN)): the mean step no
    longer sets it, so no update exceeds max_step unless a single pulse already does."""
    ideal = build_tables(float_cfg(preset="ideal"))
    assert ideal.max_pulse_step == 1 and ideal.max_pulses == 10                # floor(10.24 / 1)
    lin = build_tables(float_cfg(preset="linear-256"))
    w_scale = PRESETS["linear-256"].w_scale
    assert lin.pulse_weight == pytest.approx(w_scale / 255)
    assert lin.max_pulse_step == math.ceil(w_scale * 1024 / 255)             # steps of 4 or 5 LSB
    assert lin.max_pulses == math.floor(Fraction(0.01) * 1024 / lin.max_pulse_step)
    for name in sorted(PRESETS):
        for levels in (None, 16, 64, 256):
            t = build_tables(float_cfg(preset=name, levels=levels))
            worst = t.max_pulses * t.max_pulse_step                           # any P_max pulses of any class
            assert worst <= 0.01 * 1024 or t.max_pulses == 1, (name, levels)
            assert t.max_pulses == 1 or (t.max_pulses + 1) * t.max_pulse_step > 0.01 * 1024   # the largest such
    # the asymmetric devices of the issue: one depression (rram) or bottom potentiation (soft bounds)
    # pulse is several mean steps, so P_max is 1 at L = 256 (it was 3 from the mean step)
    for name in ("rram-nonlinear", "soft-bounds"):
        t = build_tables(float_cfg(preset=name, levels=256))
        assert t.max_pulse_step > 2.5 * t.pulse_weight * 1024 and t.max_pulses == 1
    assert build_tables(float_cfg(preset="linear-256", max_pulses=7)).max_pulses == 7   # explicit override


def test_pulse_limit_is_exact_at_integer_ratios():
    assert pulse_limit(3 * 2.0**-10, 1, 10) == 3                 # exactly 3 pulses, not 2.9999
    assert pulse_limit(3 * 2.0**-10 - 2.0**-40, 1, 10) == 2
    assert pulse_limit(0.01, 5, 10) == 2 and pulse_limit(0.01, 11, 10) == 1 and pulse_limit(0.01, 0, 10) == 1
    assert pulse_limit(0.001, 64, 10) == 1                         # never below one pulse


def test_more_than_31_pulses_per_update_are_rejected():
    """P_max <= 31 keeps the c2c draw index 2 + 2p + device below 64 (docs/numerics.md, section 5)."""
    assert build_tables(float_cfg(preset="ideal", levels=4096)).max_pulses == 10      # 2^-11 steps: 0/1 LSB
    with pytest.raises(ValueError, match=r"train\.max_step=0\.05 is 51 pulses .* at most 31"):
        build_tables(Config.for_algorithm("eqprop", network={"n": 8}, train={"max_step": 0.05},
                                          device={"preset": "ideal"}))
    with pytest.raises(ConfigError, match="at most 31"):
        Config.for_algorithm("eqprop", numerics="fixed", train={"max_step": 0.05}, device={"preset": "ideal"})
    assert build_tables(Config.for_algorithm("eqprop", network={"n": 8}, train={"max_step": 0.05},
                                             device={"preset": "ideal", "max_pulses": 31})).max_pulses == 31


# -- rounding of derived constants: half up, exactly ------------------------------------------------

def test_round_half_up_at_the_ties():
    assert [round_half_up(x) for x in (0.5, 1.5, 2.5, -0.5, -1.5, 200.5, 654.5)] == [1, 2, 3, 0, -1, 201, 655]
    assert [round(x) for x in (0.5, 2.5, 200.5, 654.5)] == [0, 2, 200, 654]   # Python's: half to even
    assert round_half_up(Fraction(401, 2)) == 201 and round_half_up(0.49999999999999994) == 0
    assert floor_log2(Fraction(1)) == 0 and floor_log2(Fraction(3, 2)) == 0 and floor_log2(Fraction(2)) == 1
    assert floor_log2(Fraction(1, 3)) == -2 and floor_log2(Fraction(1, 4)) == -2 and floor_log2(Fraction(5, 16)) == -2


def test_lr_mul_rounds_half_up():
    """lr = 401 x 2^-10 on the ideal device: lr / (beta B dw 2^(2fa)) = 401 x 2^-19, so LR_SHIFT = 18
    and LR_MUL = 200.5 exactly: 201 (half up), where Python's round() gave 200."""
    cfg = Config.for_algorithm("eqprop", numerics="fixed", train={"lr": 401 * 2.0**-10}, device={"preset": "ideal"})
    assert Formats(cfg).lr_fixed == (201, 18)


def test_c2c_threshold_rounds_half_up():
    t = build_tables(float_cfg(preset="linear-64", c2c=1309 / 2**17))     # 654.5 / 2^16
    assert t.c2c_threshold == 655 and list(t.c2c_table) == [655]
    assert build_tables(float_cfg(preset="linear-64", c2c=0.01)).c2c_threshold == 655   # 655.36


def test_centered_nudging_halves_the_pulse_rate():
    """The float model divides the centered contrast by 2 beta: LR_MUL / 2^LR_SHIFT halves."""
    for preset in ("ideal", "linear-256", "rram-nonlinear"):
        one = Formats(Config.for_algorithm("eqprop", numerics="fixed", device={"preset": preset}))
        two = Formats(Config.for_algorithm("eqprop", numerics="fixed", device={"preset": preset},
                                           train={"nudge": "centered"}))
        assert two.lr_fixed == (one.lr_fixed[0], one.lr_fixed[1] + 1)


# -- device-to-device variation, cycle-to-cycle noise -----------------------------------------------

def test_device_variation_is_on_by_default_where_a_preset_has_it():
    """`memprop train --device rram-nonlinear` used to get one device class (no variation)."""
    t = Formats(Config.for_algorithm("eqprop", numerics="fixed", device={"preset": "rram-nonlinear"})).device
    assert t.d2d_classes == PRESETS["rram-nonlinear"].d2d_classes == 4
    assert len({(d.step_gain, d.w_max) for d in t.class_devices}) == 4
    assert build_tables(float_cfg(preset="rram-nonlinear", d2d_classes=1)).classes == 1     # explicitly off
    assert build_tables(float_cfg(preset="linear-64", d2d=0.1)).d2d_classes == 4            # a spread set: on
    assert build_tables(float_cfg(preset="linear-64", d2d_classes=8)).classes == 1          # nothing varies


def test_device_classes_are_quantiles_of_every_spread():
    p = resolve(float_cfg(preset="linear-64", d2d=0.1, d2d_classes=4, up_down_dtod=0.05).device)
    devices = class_devices(p)
    for attr in ("step_gain", "w_max", "up_down"):
        values = sorted(getattr(d, attr) for d in devices)
        assert len(set(values)) == 4 and np.mean(values) == pytest.approx(getattr(devices[0].__class__(), attr)
                                                                            if attr != "w_max" else 1.0, abs=1e-9)
    # a Latin hypercube: the spreads are not all ordered the same way
    order = [np.argsort([getattr(d, a) for d in devices]).tolist() for a in ("step_gain", "w_max", "up_down")]
    assert len({tuple(o) for o in order}) > 1
    t = build_tables(float_cfg(preset="linear-64", d2d=0.1, d2d_classes=4))
    gain = [d.step_gain for d in t.class_devices]
    assert np.argmax(t.gmap[:, 1]) == np.argmax(gain)                # larger dw_min, larger first step


def test_soft_bounds_keep_their_shape_when_the_levels_change():
    """alpha is given at the preset's own L; other L keep (1 - alpha)^(L - 1), the fraction of the range
    the top code reaches, so the ratio of the first to the last potentiation step stays about 55x at
    every level count (the issue: 2.5x at L = 64 vs 55x at L = 256 when alpha was fixed)."""
    ratios = []
    for levels in (32, 64, 256):
        p = resolve(float_cfg(preset="soft-bounds", levels=levels).device)
        assert (1 - p.alpha) ** (levels - 1) == pytest.approx((1 - PRESETS["soft-bounds"].alpha) ** 255)
        t = build_tables(float_cfg(preset="soft-bounds", levels=levels))
        g = np.diff(1 - (1 - p.alpha) ** np.arange(levels))
        ratios.append(g[0] / g[-1])
        assert t.gmap[0][-1] == pytest.approx(build_tables(float_cfg(preset="soft-bounds")).gmap[0][-1], abs=1)
    assert ratios == pytest.approx([55.5] * 3, rel=0.15)               # (1 - alpha)^-(L - 2): 49x at L = 32


def test_c2c_probability_from_dw_min_std():
    assert c2c_probability(0.0) == 0.0
    assert c2c_probability(0.2) == pytest.approx(2 * (1 - 0.99379033), abs=1e-6)   # P(|0.2 xi| >= 1/2)
    assert c2c_probability(10.0) == 0.5                                             # at most one level
    t = build_tables(float_cfg(preset="rram-nonlinear"))
    assert t.c2c_threshold == round_half_up(c2c_probability(0.2) * 2**16) == 814
    assert build_tables(float_cfg(preset="rram-nonlinear", c2c=0.0)).c2c_threshold == 0   # the override wins


def test_nonlinear_devices_are_asymmetric():
    rram = build_tables(float_cfg(preset="rram-nonlinear", d2d_classes=1))
    steps = np.diff(rram.gmap[0])
    assert steps[0] > 3 * steps[-1]
    c = np.arange(rram.levels)
    assert np.any(rram.down[0][1:] < c[1:] - 1)                  # a depression pulse skips levels
    soft = build_tables(float_cfg(preset="soft-bounds"))
    drop = soft.gmap[0] - soft.gmap[0][soft.down[0]]            # conductance lost by one depression pulse
    assert drop[-1] > drop[soft.levels // 4] > 0


def test_up_down_makes_depression_steeper():
    t = build_tables(float_cfg(preset="linear-64", up_down=-1 / 3))   # down step = 2 up steps
    c = np.arange(64)
    assert np.array_equal(t.down[0], np.maximum(c - 2, 0))


# -- the aihwkit preset ------------------------------------------------------------------------------

def test_reram_array_preset_is_aihwkits():
    """ReRamArrayOMPresetDevice in aihwkit (presets/devices.py), fitted to Gong & Rasch, IEDM 2022."""
    p = PRESETS["reram-array-om"]
    assert (p.alpha, p.up_down, p.w_min, p.w_max) == (0.0949, 0.0, -1.0, 1.0)      # dw_min / w_max = alpha
    assert (p.dw_min_dtod, p.dw_min_dtod_log_normal, p.up_down_dtod) == (0.7829, True, 0.01)
    assert (p.w_max_dtod, p.w_min_dtod, p.dw_min_std) == (0.3499, 0.5695, 0.4158)
    assert "Gong & Rasch" in p.source and "ReRamArrayOMPresetDevice" in p.source
    t = build_tables(float_cfg(preset="reram-array-om"))
    g = 1 - 2 * (1 - 0.0949) ** np.arange(48)                     # the nominal soft-bounds curve on [-1, 1]
    assert g[-1] > 0.98 and t.levels == 48
    assert t.mid == int(np.argmin(np.abs(g)))                      # weight 0 at the symmetry point
    check_tables(t)


# -- fabrication: classes and stuck devices ---------------------------------------------------------

def test_fabrication_is_seeded():
    t = build_tables(float_cfg(preset="rram-nonlinear", d2d_classes=4))
    a = fabricate(t, (10, 10), 3)
    assert a.shape == (2, 10, 10) and a.min() >= 0 and a.max() < 4
    assert np.array_equal(a, fabricate(t, (10, 10), 3))
    assert not np.array_equal(a, fabricate(t, (10, 10), 4))
    assert len(np.unique(a)) == 4
    one = build_tables(float_cfg(preset="ideal"))
    assert not fabricate(one, (5,), 0).any()


@pytest.mark.parametrize("preset, stuck, high", [("rram-nonlinear", 0.1, 0.5), ("linear-64", 0.2, 0.25),
                                                 ("ideal", 0.05, 1.0)])
def test_stuck_devices_are_extra_classes(preset, stuck, high):
    t = build_tables(float_cfg(preset=preset, stuck=stuck, stuck_high=high))
    low_class, high_class = t.stuck_classes
    assert (low_class, high_class) == (t.d2d_classes, t.d2d_classes + 1) and t.classes == t.d2d_classes + 2
    nominal = build_tables(float_cfg(preset=preset, d2d_classes=1))
    assert np.all(t.gmap[low_class] == nominal.gmap[0][0]) and np.all(t.gmap[high_class] == nominal.gmap[0][-1])
    check_tables(t)
    classes = fabricate(t, (300, 300), 11)
    is_stuck = t.is_stuck(classes)
    assert abs(is_stuck.mean() - stuck) < 0.01
    assert abs((classes == high_class).sum() / is_stuck.sum() - high) < 0.02
    assert np.array_equal(classes, fabricate(t, (300, 300), 11))              # fixed per chip


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(PRESETS)), levels=st.sampled_from([None, 16, 64, 256]),
       seed=st.integers(0, 1000))
def test_programming_writes_the_nearest_weight(name, levels, seed):
    """Write-verify: single devices get the nearest code; pairs are split symmetrically around the mid
    code, so the weight is within one step of each device of the target (in range)."""
    t = build_tables(float_cfg(preset=name, levels=levels, d2d_classes=1))
    rng = np.random.default_rng(seed)
    classes = np.zeros((t.devices, 50), dtype=np.int64)
    lo_w, hi_w = (t.gmap[0].min() / t.scale, t.gmap[0].max() / t.scale)
    if t.devices == 2:
        span = min(t.gmap[0][t.mid] - t.gmap[0][0], t.gmap[0][-1] - t.gmap[0][t.mid]) / t.scale
        lo_w, hi_w = -2 * span, 2 * span
    target = rng.uniform(lo_w, hi_w, 50)
    codes = program(t, target, classes)
    assert codes.min() >= 0 and codes.max() < t.levels
    w = t.weight(codes, classes) / t.scale
    if t.devices == 1:
        row = t.gmap[0] / t.scale
        best = np.abs(row[None, :] - target[:, None]).min(axis=1)
        assert np.allclose(np.abs(w - target), best)
    else:
        step = np.max(np.diff(t.gmap[0])) / t.scale
        assert np.all(np.abs(w - target) <= step + 1e-12)
        row = t.gmap[0].astype(np.float64)
        for dev, sign in ((0, 1), (1, -1)):
            want = row[t.mid] + sign * 0.5 * target * t.scale
            best = np.abs(row[None, :] - want[:, None]).min(axis=1)
            assert np.allclose(np.abs(row[codes[dev]] - want), best)
    zero = program(t, np.zeros(3), np.zeros((t.devices, 3), dtype=np.int64))
    assert np.all(np.abs(t.weight(zero, np.zeros_like(zero))) <= (0 if t.devices == 2 else np.diff(t.gmap[0]).max()))
    big = program(t, np.array([100.0, -100.0]), np.zeros((t.devices, 2), dtype=np.int64))
    wb = t.weight(big, np.zeros_like(big))
    assert wb[0] == (t.gmap[0].max() if t.devices == 1 else t.w_max)          # pair at (top, 0)
    assert wb[1] == (t.gmap[0].min() if t.devices == 1 else -t.w_max)         # pair at (0, top)


def test_programming_stuck_devices():
    """Stuck devices keep their constant weight and get code L-1 (read as saturated); fault-aware
    programming lets the working partner carry the whole target."""
    t = build_tables(float_cfg(preset="linear-256", stuck=0.2))
    low, high = t.stuck_classes
    classes = np.zeros((2, 4), dtype=np.int64)
    classes[0, 0], classes[1, 1], classes[0, 2], classes[:, 3] = high, low, low, high
    target = np.array([0.1, 0.1, -0.05, 0.2])
    naive, aware = program(t, target, classes), program(t, target, classes, fault_aware=True)
    for codes in (naive, aware):
        assert np.all(codes[t.is_stuck(classes)] == 255)
    w_naive, w_aware = t.weight(naive, classes) / t.scale, t.weight(aware, classes) / t.scale
    step = t.max_pulse_step / t.scale
    assert np.all(np.abs(w_aware[:3] - target[:3]) <= step)                   # in range: met within a step
    assert np.all(np.abs(w_naive[:3] - target[:3]) > 0.1)                     # naive: off by the stuck half
    assert w_aware[3] == w_naive[3] == 0                                      # both stuck at G_max


# -- configuration errors -------------------------------------------------------------------------

def fixed(**device) -> Config:
    return Config.for_algorithm("eqprop", numerics="fixed", device=device)


def test_unknown_preset_is_a_config_error():
    with pytest.raises(ConfigError, match=r"unknown device preset 'memristor-9000'; choose one of \['ideal'"):
        fixed(preset="memristor-9000")
    with pytest.raises(ValueError, match="unknown device preset"):
        get_preset("nope")


@pytest.mark.parametrize("levels", [1, 0, 4097, 10_000])
def test_levels_out_of_range_is_a_config_error(levels):
    with pytest.raises(ConfigError, match=r"device\.levels"):
        fixed(preset="linear-64", levels=levels)


@pytest.mark.parametrize("field, value", [
    ("c2c", 0.6), ("d2d", -0.1), ("d2d_classes", 0), ("d2d_classes", 17), ("max_pulses", 0), ("max_pulses", 32),
    ("stuck", 0.6), ("stuck", -0.1), ("stuck_high", 1.5), ("dw_min_std", -1.0), ("dw_min_dtod", 3.0),
    ("up_down", 1.0), ("up_down", -1.0), ("w_max_dtod", 1.5), ("read_noise", 0.6), ("drift_nu", -0.1)])
def test_other_device_fields_are_range_checked(field, value):
    with pytest.raises(ConfigError, match=rf"device\.{field}"):
        fixed(preset="rram-nonlinear", **{field: value})


def test_levels_that_need_an_impossible_pulse_shift_are_rejected():
    """Two levels on the ideal device: one pulse is a weight step of 1.0, so lr 0.02 would need a
    pulse-count shift of 32 (> 31): rejected with the reason instead of training with no pulses."""
    with pytest.raises(ConfigError, match="pulse shift of 32"):
        fixed(preset="ideal", levels=2)


def test_model_only_options_are_not_in_the_fingerprint():
    base = fixed(preset="rram-nonlinear")
    assert fixed(preset="rram-nonlinear", read_noise=0.02, drift_nu=0.05).fingerprint == base.fingerprint
    assert fixed(preset="rram-nonlinear", stuck=0.1).fingerprint != base.fingerprint


@pytest.mark.parametrize("preset", ["linear-64", "rram-nonlinear"])
def test_w_scale_is_the_read_out_gain(preset):
    """device.w_scale scales every conductance's weight (finer steps, narrower range); the pulse
    limit follows the smaller steps; a Config without it keeps its old fingerprint."""
    half, full = Formats(fixed(preset=preset, w_scale=0.25)).device, Formats(fixed(preset=preset)).device
    assert np.all(np.abs(2 * half.gmap - full.gmap) <= 2)          # half the weight, to the 2^-fw quantum
    assert half.gmap.max() < full.gmap.max()
    assert Formats(fixed(preset=preset, w_scale=0.25)).max_pulses >= Formats(fixed(preset=preset)).max_pulses
    assert fixed(preset=preset, w_scale=0.25).fingerprint != fixed(preset=preset).fingerprint


def test_configs_without_w_scale_keep_their_fingerprint():
    """Weight files and bitstreams written before device.w_scale existed still identify themselves."""
    assert fixed(preset="linear-64").fingerprint == "654120261457733d"     # main before w_scale


def test_w_scale_is_refused_for_the_ideal_preset():
    with pytest.raises(ConfigError, match="ideal preset"):
        fixed(preset="ideal", w_scale=0.5)
    with pytest.raises(ConfigError, match="w_scale"):
        fixed(preset="linear-64", w_scale=0.0)
