"""Device presets and their ROM tables (docs/numerics.md, sections 3 and 5): GMAP, UP, DOWN, programming."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memprop.model.config import Config, ConfigError
from memprop.model.device import PRESETS, build_tables, fabricate, get_preset, program
from memprop.model.numerics import Formats


def float_cfg(**device) -> Config:
    """A float-numerics config: build_tables reads only device, fixed.weight_frac and train.max_step,
    and the fixed-point learning-rate checks (which reject some extreme level counts) do not run."""
    return Config.for_algorithm("eqprop", network={"n": 8}, device=device)


def check_tables(t, preset_name: str) -> None:
    """The invariants the RTL relies on, for every class m."""
    p = get_preset(preset_name)
    top = t.levels - 1
    codes = np.arange(t.levels)
    assert t.gmap.shape == t.up.shape == t.down.shape == (t.classes, t.levels)
    for dtype_table in (t.gmap, t.up, t.down):
        assert dtype_table.dtype == np.int64
    for m in range(t.classes):
        g = t.gmap[m]
        assert np.all(np.diff(g) >= 0), f"GMAP[{m}] of {preset_name} decreases"
        full = int(np.floor(t.class_gain[m] * p.w_scale * t.scale + 0.5))
        if t.devices == 1:
            assert g[t.mid] == 0                                   # the zero-weight code
            assert -full <= g.min() and g.max() <= full
        else:
            assert g[0] == 0 and g[-1] == full                     # G in [Gmin, Gmax] -> [0, gain * 2^fw]
            assert g.min() >= 0
        up, down = t.up[m], t.down[m]
        assert up.min() >= 0 and up.max() <= top and down.min() >= 0 and down.max() <= top
        assert np.all(up[:-1] > codes[:-1]) and up[-1] == top      # UP[c] > c except at the top
        assert np.all(down[1:] < codes[1:]) and down[0] == 0       # DOWN[c] < c except at 0
        assert np.all(np.diff(up) >= 0) and np.all(np.diff(down) >= 0)
    assert t.w_max == (np.abs(t.gmap).max() if t.devices == 1 else t.gmap.max() - t.gmap.min())


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_at_its_own_levels(name):
    t = Formats(Config.for_algorithm("eqprop", numerics="fixed", device={"preset": name})).device
    assert t.levels == PRESETS[name].levels
    assert t.devices == (1 if PRESETS[name].mode == "single" else 2)
    check_tables(t, name)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(PRESETS)), levels=st.integers(2, 4096), classes=st.sampled_from([1, 4, 16]),
       d2d=st.sampled_from([None, 0.0, 0.1, 0.5]))
def test_tables_at_any_levels_and_device_classes(name, levels, classes, d2d):
    # max_pulses set: thousands of levels would otherwise need more than 31 pulses per update (rejected)
    t = build_tables(float_cfg(preset=name, levels=levels, d2d_classes=classes, d2d=d2d, max_pulses=31))
    assert t.levels == levels
    effective_d2d = PRESETS[name].d2d if d2d is None else d2d
    assert t.classes == (classes if effective_d2d > 0 else 1)
    check_tables(t, name)


def test_linear_devices_step_one_level_per_pulse():
    for name in ("ideal", "linear-256", "linear-64"):
        t = build_tables(float_cfg(preset=name))
        c = np.arange(t.levels)
        assert np.array_equal(t.up[0], np.minimum(c + 1, t.levels - 1))
        assert np.array_equal(t.down[0], np.maximum(c - 1, 0))
        assert np.all(np.diff(t.gmap[0]) == np.diff(t.gmap[0])[0]) or name != "ideal"
    ideal = build_tables(float_cfg(preset="ideal"))
    assert np.array_equal(ideal.gmap[0], np.arange(2048) - 1024)          # exact 2^-10 steps
    assert ideal.pulse_weight == 2.0**-10 and ideal.w_max == 1024
    assert ideal.max_pulses == 10                                          # round(0.01 / 2^-10)
    lin = build_tables(float_cfg(preset="linear-256"))
    assert lin.pulse_weight == pytest.approx(1 / 255) and lin.max_pulses == 3   # round(2.55)
    assert build_tables(float_cfg(preset="linear-256", max_pulses=7)).max_pulses == 7


def test_nonlinear_devices_are_asymmetric():
    """rram-nonlinear: potentiation steps shrink towards the top, depression is steepest near the top
    and can skip levels; soft bounds: the depression step shrinks towards Gmin."""
    rram = build_tables(float_cfg(preset="rram-nonlinear"))
    steps = np.diff(rram.gmap[0])
    assert steps[0] > 3 * steps[-1]
    c = np.arange(rram.levels)
    assert np.any(rram.down[0][1:] < c[1:] - 1)                  # a depression pulse skips levels
    assert rram.c2c_threshold == round(0.01 * 2**16) == 655
    soft = build_tables(float_cfg(preset="soft-bounds"))
    drop = soft.gmap[0] - soft.gmap[0][soft.down[0]]            # conductance lost by one depression pulse
    assert drop[-1] > drop[soft.levels // 4] > 0


def test_device_classes_scale_the_range():
    t = build_tables(float_cfg(preset="rram-nonlinear", d2d_classes=4, d2d=0.1))
    assert t.classes == 4
    assert np.all(np.diff(t.class_gain) > 0)                     # quantiles of N(1, sigma), ascending
    assert np.mean(t.class_gain) == pytest.approx(1.0, abs=1e-9)
    assert np.all(np.diff(t.gmap[:, -1]) > 0)                   # larger gain, larger Gmax
    assert all(np.array_equal(t.up[m], t.up[0]) and np.array_equal(t.down[m], t.down[0]) for m in range(4))
    # no variation: one class whatever d2d_classes says
    assert build_tables(float_cfg(preset="linear-64", d2d_classes=8)).classes == 1


def test_fabrication_is_seeded():
    t = build_tables(float_cfg(preset="rram-nonlinear", d2d_classes=4))
    a = fabricate(t, (10, 10), 3)
    assert a.shape == (2, 10, 10) and a.min() >= 0 and a.max() < 4
    assert np.array_equal(a, fabricate(t, (10, 10), 3))
    assert not np.array_equal(a, fabricate(t, (10, 10), 4))
    assert len(np.unique(a)) == 4
    one = build_tables(float_cfg(preset="ideal"))
    assert not fabricate(one, (5,), 0).any()


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(PRESETS)), levels=st.sampled_from([None, 16, 64, 256]),
       seed=st.integers(0, 1000))
def test_programming_writes_the_nearest_weight(name, levels, seed):
    """Write-verify: single devices get the nearest code; pairs are split symmetrically around the mid
    code, so the weight is within one step of each device of the target (in range)."""
    t = build_tables(float_cfg(preset=name, levels=levels))
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
        # symmetric split in conductance: each device is the nearest level to G(mid) +- target / 2
        row = t.gmap[0].astype(np.float64)
        for dev, sign in ((0, 1), (1, -1)):
            want = row[t.mid] + sign * 0.5 * target * t.scale
            best = np.abs(row[None, :] - want[:, None]).min(axis=1)
            assert np.allclose(np.abs(row[codes[dev]] - want), best)
    zero = program(t, np.zeros(3), np.zeros((t.devices, 3), dtype=np.int64))
    assert np.all(t.weight(zero, np.zeros_like(zero)) == 0)
    # out of range: the extreme codes
    big = program(t, np.array([100.0, -100.0]), np.zeros((t.devices, 2), dtype=np.int64))
    wb = t.weight(big, np.zeros_like(big))
    assert wb[0] == (t.gmap[0].max() if t.devices == 1 else t.w_max)          # pair at (top, 0)
    assert wb[1] == (t.gmap[0].min() if t.devices == 1 else -t.w_max)         # pair at (0, top)


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


@pytest.mark.parametrize("field, value", [("c2c", 0.6), ("d2d", -0.1), ("d2d_classes", 0), ("d2d_classes", 17),
                                          ("max_pulses", 0), ("max_pulses", 32)])
def test_other_device_fields_are_range_checked(field, value):
    with pytest.raises(ConfigError, match=rf"device\.{field}"):
        fixed(preset="rram-nonlinear", **{field: value})


def test_levels_that_need_an_impossible_pulse_shift_are_rejected():
    """Two levels on the ideal device: one pulse is a weight step of 1.0, so lr 0.02 would need a
    pulse-count shift of 32 (> 31): rejected with the reason instead of training with no pulses."""
    with pytest.raises(ConfigError, match="pulse shift of 32"):
        fixed(preset="ideal", levels=2)


def test_more_than_31_pulses_per_update_are_rejected():
    """P_max <= 31 keeps the c2c draw index 2 + 2p + device below 64 (docs/numerics.md, section 5)."""
    assert build_tables(float_cfg(preset="ideal", levels=4096)).max_pulses == 20       # 0.01 / 2^-11
    with pytest.raises(ValueError, match=r"train\.max_step=0\.01 is 41 pulses .* at most 31"):
        build_tables(float_cfg(preset="linear-256", levels=4096))                     # 0.01 * 4095
    with pytest.raises(ConfigError, match="at most 31"):
        fixed(preset="linear-256", levels=4096)
    assert build_tables(float_cfg(preset="linear-256", levels=4096, max_pulses=31)).max_pulses == 31
