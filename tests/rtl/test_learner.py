"""The learning unit alone, with the engine's stream, code memory and small memories around it, against model.fixed.learn:
every code of both copies of every pair and every bias after LEARN, and the exact cycle count."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Elaboratable, Module, signed, unsigned
from amaranth.lib import memory
from amaranth.sim import Simulator

from memprop.model import fixed
from memprop.model.config import Config
from memprop.rtl import cycles
from memprop.rtl import hostmap as hm
from memprop.rtl import learn
from memprop.rtl.learn import Learner, paired_reads, stage_b_cycles
from memprop.rtl.learnlane import CORRELATOR_LATENCY
from memprop.rtl.learnplan import LearnPlan
from memprop.rtl.schedule import formats
from memprop.rtl.stream import StreamGenerator
from memprop.rtl.verify import make_case, random_config


class Harness(Elaboratable):
    """The learner with the engine's stream generator, code memory and small memories, initialised
    with a case's codes; the fixed points reach it through its `stored` port, as at STORE."""

    def __init__(self, cfg: Config, params: fixed.FixedParams, v_hi: np.ndarray, v_lo: np.ndarray):
        self.cfg = cfg
        self.layout = lay = hm.Layout(formats(cfg))
        self.unit = Learner(cfg, lay)
        sch = lay.schedule
        self.codes = [0] * sch.depth
        for offset, entry in lay.image(params.codes_w, params.class_w):
            word, lane = offset >> lay.lane_bits, offset & ((1 << lay.lane_bits) - 1)
            self.codes[word] |= entry << (lane * lay.entry_bits)
        n = cfg.network.n
        self.biases = [lay.pack_entry(params.codes_b[:, i], params.class_b[:, i]) for i in range(n)]
        self.fp = [0] * (3 << (lay.slot_bits + lay.n_bits))
        for set_, v in ((hm.SET_HI, v_hi), (hm.SET_LO, v_lo)):
            for b in range(v.shape[0]):
                for i in range(n):
                    self.fp[lay.fixpoint_offset(set_, b, i)] = int(v[b, i])

    def elaborate(self, platform):
        m = Module()
        lay, u = self.layout, self.unit
        sch = lay.schedule
        m.submodules.unit = u
        P, E = self.cfg.hw.lanes, lay.entry_bits
        m.submodules.stream = stream = StreamGenerator(sch)
        # the code memory as CodeMemory's block back end: one address, a word read or per-entry writes
        m.submodules.code_mem = self.code_mem = codes = memory.Memory(shape=unsigned(P * E), depth=len(self.codes),
                                                                      init=self.codes)
        code_rd, code_wr = codes.read_port(), codes.write_port(granularity=E)
        m.submodules.bias_mem = self.bias_mem = bias = memory.Memory(shape=unsigned(E), depth=len(self.biases),
                                                                     init=self.biases)
        m.submodules.fp_mem = fp = memory.Memory(shape=signed(lay.fmt.state_bits), depth=len(self.fp), init=self.fp)
        bias_rd, bias_wr = bias.read_port(), bias.write_port()
        fp_a, fp_b = fp.read_port(), fp.read_port()
        m.d.comb += [
            stream.port.restart.eq(u.stream.restart), stream.port.advance.eq(u.stream.advance),
            u.stream.entries.eq(stream.port.entries),
            code_rd.addr.eq(u.codes.addr), code_wr.addr.eq(u.codes.addr), code_wr.en.eq(u.codes.w_en),
            code_wr.data.eq(u.codes.w_data), u.codes.r_data.eq(code_rd.data),
            bias_rd.addr.eq(u.bias.addr), bias_wr.addr.eq(u.bias.addr), bias_wr.en.eq(u.bias.w_en),
            bias_wr.data.eq(u.bias.w_data), u.bias.r_data.eq(bias_rd.data),
        ]
        if not u.paired:                  # a paired learner reads its own copies of the rows, not fp_mem
            m.d.comb += [fp_a.addr.eq(u.fp_a.addr), fp_b.addr.eq(u.fp_b.addr), u.fp_a.data.eq(fp_a.data),
                         u.fp_b.data.eq(fp_b.data)]
        return m


def carry_positions(cfg: Config) -> list[tuple[int, int, int]]:
    """(stream position, i, j) of every primary copy: the carry of synapse (i, j), i <= j, is kept there."""
    plan = LearnPlan(cfg)
    st = plan.schedule.stream
    return [(int(k), min(int(st["row"][k]), int(st["col"][k])), max(int(st["row"][k]), int(st["col"][k])))
            for k in np.nonzero(plan.entries["primary"])[0]]


#: Idle cycles between the last STORE event and LEARN's start: at least what a host needs on the bus
#: to see the STORE finish and write LEARN (changed.LATENCY and more, see tests/rtl/test_learn_skip.py).
STORE_TO_LEARN = 6


def run_learn(cfg: Config, params: fixed.FixedParams, v_hi: np.ndarray, v_lo: np.ndarray,
              decay_steps: int = 0, gap: int = STORE_TO_LEARN) -> dict:
    """STORE the fixed points into the learner, load the codes (and any carries), LEARN `gap`
    cycles after the last event, read the memories back."""
    dut = Harness(cfg, params, v_hi, v_lo)
    u, lay = dut.unit, dut.layout
    out = {}
    carrying = cfg.fixed.rounding == "carry"
    P, Fb = cfg.hw.lanes, fixed.CARRY_FRAC + 1

    async def bench(ctx):
        if carrying:      # the learner's carry memories hold the model's carries (two's complement)
            for k, i, j in carry_positions(cfg):
                word = ctx.get(u.carry_words.data[k // P])
                field = (int(params.carry_w[i, j]) & ((1 << Fb) - 1)) << ((k % P) * Fb)
                ctx.set(u.carry_words.data[k // P], word | field)
            for i in range(cfg.network.n):
                ctx.set(u.carry_biases.data[i], int(params.carry_b[i]))
        ctx.set(u.seed, cfg.train.seed & 0xFFFFFFFF)
        ctx.set(u.updates, params.updates)
        if lay.fmt.decay_shift:
            ctx.set(u.decay, min(decay_steps, hm.DECAY_STEPS_MAX))
        for set_, v in ((hm.SET_HI, v_hi), (hm.SET_LO, v_lo)):
            for b in range(v.shape[0]):
                for i in range(v.shape[1]):
                    ctx.set(u.stored.valid, 1)
                    ctx.set(u.stored.set, set_)
                    ctx.set(u.stored.slot, b)
                    ctx.set(u.stored.unit, i)
                    ctx.set(u.stored.value, int(v[b, i]))
                    await ctx.tick()
        ctx.set(u.stored.valid, 0)
        if gap:
            await ctx.tick().repeat(gap)
        ctx.set(u.start, 1)
        await ctx.tick()
        ctx.set(u.start, 0)
        count = 1
        while not ctx.get(u.done):
            await ctx.tick()
            count += 1
        out["cycles"] = count
        out["codes"] = [ctx.get(dut.code_mem.data[w]) for w in range(len(dut.codes))]
        out["biases"] = [ctx.get(dut.bias_mem.data[i]) for i in range(len(dut.biases))]
        if carrying:
            carry_w = np.zeros_like(params.carry_w)
            for k, i, j in carry_positions(cfg):
                field = (ctx.get(u.carry_words.data[k // P]) >> ((k % P) * Fb)) & ((1 << Fb) - 1)
                carry_w[i, j] = field - (1 << Fb) if field >> (Fb - 1) else field
            out["carry_w"] = carry_w
            out["carry_b"] = np.array([ctx.get(u.carry_biases.data[i]) for i in range(cfg.network.n)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return {**out, "layout": lay}


def check_learn(cfg: Config, seed: int, case=None, decay_steps: int = 0, states=None,
                gap: int = STORE_TO_LEARN) -> dict:
    """One LEARN on a random case (or the fixed points `states` = (v_hi, v_lo)): codes of every
    streamed copy and every bias, and the cycles (`gap` cycles from the last STORE event to LEARN:
    the cycle model holds from STORE_TO_LEARN on)."""
    case = make_case(cfg, seed) if case is None else case
    fmt = case.fmt
    r = np.random.default_rng(seed + 1000)
    B, n = cfg.train.batch_size, cfg.network.n
    if states is None:
        v_hi = r.integers(fmt.lo, fmt.hi + 1, (B, n))
        v_lo = r.integers(fmt.lo, fmt.hi + 1, (B, n))
        v_hi[:, 0] = fmt.hi                                     # some saturated units, as at fixed points
        v_lo[:, -1] = fmt.lo
    else:
        v_hi, v_lo = states
    want = case.params.copy()
    step = fixed.learn(fmt, want, fixed.activation(fmt, v_hi), fixed.activation(fmt, v_lo), case.drive.clamped,
                       decay_steps)
    got = run_learn(cfg, case.params, v_hi, v_lo, decay_steps, gap)
    lay = got["layout"]
    sch = lay.schedule
    st = sch.stream
    P, E = cfg.hw.lanes, lay.entry_bits
    bad = []
    for k in map(int, np.nonzero(st["valid"])[0]):
        entry = (got["codes"][k // P] >> ((k % P) * E)) & ((1 << E) - 1)
        codes, classes = lay.unpack_entry(entry)
        i, j = int(st["row"][k]), int(st["col"][k])
        if codes != [int(c) for c in want.codes_w[:, i, j]] or classes != [int(c) for c in want.class_w[:, i, j]]:
            bad.append((i, j, codes, want.codes_w[:, i, j].tolist(), case.params.codes_w[:, i, j].tolist()))
    assert not bad, f"{len(bad)} streamed copies differ, first (i, j, rtl, model, before): {bad[0]}"
    for i in sch.rows:
        codes, _ = lay.unpack_entry(got["biases"][i])
        assert codes == want.codes_b[:, i].tolist(), f"bias {i}: rtl {codes}, model {want.codes_b[:, i].tolist()}"
    if cfg.fixed.rounding == "carry":
        np.testing.assert_array_equal(got["carry_w"], want.carry_w, err_msg="synapse carries differ")
        rows = list(sch.rows)
        np.testing.assert_array_equal(got["carry_b"][rows], want.carry_b[rows], err_msg="bias carries differ")
    model_cycles = cycles.learner_cycles(LearnPlan(cfg), step.pulses_w, step.pulses_b, step.changed)
    if gap >= STORE_TO_LEARN:
        assert got["cycles"] == model_cycles, f"LEARN took {got['cycles']} cycles, the cycle model says {model_cycles}"
    return {"cycles": got["cycles"], "model_cycles": model_cycles, "pulses": int(np.abs(step.pulses_w).sum() + np.abs(step.pulses_b).sum()),
            "step": step, "after": want}


def small(**sections) -> Config:
    base = {"network": {"n": 9}, "device": {"preset": "linear-64"}, "train": {"batch_size": 2}, "hw": {"lanes": 4}}
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return Config.for_algorithm("eqprop", numerics="fixed", **base)


@pytest.mark.parametrize("sections", [
    {},
    {"hw": {"lanes": 4, "learn_lanes": 2}},
    {"hw": {"lanes": 3}, "network": {"n": 7}},
    {"hw": {"lanes": 5, "learn_lanes": 2, "threefry": "iterative"}, "fixed": {"rounding": "stochastic"}},
    {"device": {"preset": "rram-nonlinear", "d2d_classes": 3}, "train": {"lr": 0.2}},
    {"device": {"preset": "rram-nonlinear", "stuck": 0.3, "stuck_high": 0.5}, "train": {"lr": 0.2},
     "hw": {"lanes": 4, "learn_lanes": 2}},
    {"network": {"n": 10, "topology": "band", "band": 5}, "fixed": {"rounding": "nearest"}, "hw": {"lanes": 2}},
    {"network": {"n": 10, "topology": "layered", "layers": (3, 4, 3)}, "hw": {"lanes": 4, "learn_lanes": 3}},
    {"network": {"n": 8, "activation": "tanh", "dynamics": "euler", "self_connections": True},
     "fixed": {"state_frac": 6, "rounding": "truncate"}, "device": {"preset": "ideal", "levels": 64, "c2c": 0.2},
     "train": {"max_step": 0.1}},
])
def test_learn_unit_is_bit_exact_and_cycle_exact(sections):
    check_learn(small(**sections), 3)


@pytest.mark.parametrize("sections", [
    {"network": {"n": 20}, "hw": {"lanes": 16, "learn_lanes": 8, "threefry": "dual"}},
    {"network": {"n": 21}, "hw": {"lanes": 16, "learn_lanes": 16}, "train": {"batch_size": 3}},
    {"network": {"n": 12, "topology": "layered", "layers": (3, 6, 3)}, "hw": {"lanes": 8, "learn_lanes": 8},
     "fixed": {"rounding": "carry"}},
])
def test_wide_learners_are_bit_exact_and_cycle_exact(sections):
    """W >= 8, the boards' wide learners: the walk's spare candidate register (the loader runs a
    candidate ahead while a group issues), the one-hot bias read and write selects and the mirror
    ROM in block RAM, against the model's codes and the cycle model."""
    assert check_learn(small(**sections), 5)["pulses"] > 0


@pytest.mark.parametrize("sections", [
    {"network": {"n": 20}, "hw": {"lanes": 8, "learn_lanes": 8}, "train": {"batch_size": 3}},
    {"network": {"n": 10, "activation": "tanh", "dynamics": "euler", "self_connections": True},
     "fixed": {"state_frac": 6}, "hw": {"lanes": 9, "learn_lanes": 9}, "train": {"batch_size": 4}},
    {"network": {"n": 12, "topology": "layered", "layers": (3, 6, 3), "activation": "tanh", "dynamics": "euler"},
     "fixed": {"state_frac": 6}, "hw": {"lanes": 8, "learn_lanes": 8}, "train": {"batch_size": 3}},
    {"network": {"n": 14, "activation": "hard_sigmoid"}, "hw": {"lanes": 16, "learn_lanes": 12},
     "train": {"batch_size": 5}},
], ids=["dense", "tanh, odd lane", "layered tanh", "hard_sigmoid"])
def test_paired_reads_are_bit_exact_and_cycle_exact(sections):
    """W >= PAIRED_READ_LANES: stage B reads a sample's HI and LO fixed points in one cycle, the
    rows' from the learner's own copies (activations for tanh), B reads instead of 2B."""
    cfg = small(**sections)
    plan = LearnPlan(cfg)
    assert paired_reads(plan.width) and plan.batch >= 3
    assert stage_b_cycles(plan.batch, plan.width, True) == plan.batch + CORRELATOR_LATENCY
    assert check_learn(cfg, 5)["pulses"] > 0


def test_paired_reads_learn_as_reads_in_turn(monkeypatch):
    """The same wide learner reading HI and LO in turn (PAIRED_READ_LANES raised above its width)
    programs the same codes (both equal the model's), B cycles a group slower in stage B."""
    cfg = small(network={"n": 12}, hw={"lanes": 8, "learn_lanes": 8}, train={"batch_size": 4})
    paired = check_learn(cfg, 2)
    monkeypatch.setattr(learn, "PAIRED_READ_LANES", 9)
    assert not paired_reads(LearnPlan(cfg).width)
    in_turn = check_learn(cfg, 2)
    assert in_turn["cycles"] > paired["cycles"] and paired["pulses"] == in_turn["pulses"] > 0


@pytest.mark.parametrize("seed", range(4))
def test_learn_unit_random_configs(seed):
    cfg = random_config(500 + seed, max_n=10, max_lanes=6)
    lanes = cfg.hw.lanes
    cfg = cfg.replace(hw={"learn_lanes": int(np.random.default_rng(seed).integers(1, lanes + 1))})
    check_learn(cfg, seed)


def test_learn_unit_never_changes_a_stuck_code():
    """Stuck devices at codes other than their programmed one, with pulses reaching their pairs:
    the parallel learner leaves every stuck code as it is (and equals the model everywhere)."""
    cfg = small(device={"preset": "linear-64", "levels": 16, "stuck": 0.3, "c2c": 0.3, "d2d": 0.1,
                        "d2d_classes": 2}, train={"lr": 0.5, "max_step": 0.05}, hw={"lanes": 4, "learn_lanes": 3})
    fmt = formats(cfg)
    case = make_case(cfg, 1)
    params = case.params
    stuck = fmt.device.is_stuck(params.class_w) & params.mask[None]
    assert stuck.any() and fmt.device.c2c_table.any()
    r = np.random.default_rng(7)
    params.codes_w = np.where(stuck, r.integers(0, fmt.device.levels, params.codes_w.shape), params.codes_w)
    params.codes_w = np.triu(params.codes_w) + np.swapaxes(np.triu(params.codes_w, 1), -1, -2)
    before = params.codes_w.copy()
    result = check_learn(cfg, 1, case)          # the RTL equals the model on every copy
    pair_stuck = stuck.any(axis=0) & ~stuck.all(axis=0)
    assert np.any(result["step"].pulses_w[np.triu(pair_stuck)] != 0)      # pulses reached such pairs
    assert np.array_equal(result["after"].codes_w[stuck], before[stuck])
    assert np.any(result["after"].codes_w != before)


# -- per-layer learning rates and their decay (docs/numerics.md, section 5) ---------------------------

def layered(layer_lr, lr_decay=1.0, train=None, **sections) -> Config:
    """A 3-4-3 layered network (inputs clamped) whose weight layers learn at `layer_lr`."""
    return small(network={"n": 10, "topology": "layered", "layers": (3, 4, 3)},
                 train={"layer_lr": layer_lr, "lr_decay": lr_decay, "lr": layer_lr[0], **(train or {})}, **sections)


@pytest.mark.parametrize("sections, lr_decay, decay_steps", [
    ({"hw": {"lanes": 4, "learn_lanes": 3}}, 1.0, 0),                              # rates only: no decay register
    ({"hw": {"lanes": 3}, "fixed": {"rounding": "nearest"}}, 0.5, 2),
    ({"hw": {"lanes": 2}, "fixed": {"rounding": "truncate"}}, 0.5, 1),             # W <= 2: x LR_MUL in a DSP
    ({"hw": {"lanes": 5, "learn_lanes": 4}, "device": {"preset": "ideal", "levels": 64, "c2c": 0.2}}, 0.5, 3),
    ({"hw": {"lanes": 4}}, 0.25, 0),                                                # a decay register at 0
])
def test_learn_unit_follows_per_layer_rates(sections, lr_decay, decay_steps):
    """Two weight layers at rates 4.5x apart (different LR_MUL too), decaying: every code equals the model's."""
    cfg = layered((0.5, 0.11), lr_decay, **sections)
    fmt = formats(cfg)
    assert len(set(fmt.lr_layers)) == 2 and len({mul for mul, _ in fmt.lr_layers}) == 2
    result = check_learn(cfg, 4, decay_steps=decay_steps)
    assert result["pulses"] > 0


def test_learn_unit_decay_saturates_as_the_model():
    """lr_decay 1/4 (two shifts an epoch): past the point where every shift is at 31 nothing learns,
    and a decay register at its maximum (31) is what the model does for any larger count."""
    cfg = layered((0.5, 0.2), lr_decay=0.25, train={"max_step": 0.2})
    fmt = formats(cfg)
    for steps in (1, 40):
        result = check_learn(cfg, 5, decay_steps=steps)
        if steps == 40:
            assert result["pulses"] == 0 and int(fmt.learn_shifts(np.array([0, 1]), steps)[1].max()) == 31


def test_plan_rates_are_the_models_weight_layers():
    """The learner's rate of every primary stream entry and every bias is the model's (Formats)."""
    cfg = small(network={"n": 14, "topology": "layered", "layers": (3, 4, 4, 3)},
                train={"layer_lr": (0.1, 0.2, 0.1), "lr": 0.1})
    plan = LearnPlan(cfg)
    fmt = plan.fmt
    assert len(plan.rates) == 2                       # equal rates share one table entry
    st = plan.schedule.stream
    for k in np.nonzero(plan.entries["primary"])[0]:
        i, j = int(st["row"][k]), int(st["col"][k])
        assert plan.rates[plan.entry_rates[k]] == fmt.lr_layers[fmt.synapse_layer[i, j]]
    for i in plan.schedule.rows:
        assert plan.rates[plan.unit_rates["bias"][i]] == fmt.lr_layers[fmt.bias_layer[i]]


def test_a_learner_with_the_layers_swapped_is_caught(monkeypatch):
    """The bit-exact check fails for a learner that takes a synapse's layer wrongly (rates swapped)."""
    cfg = layered((0.5, 0.11), 0.5, hw={"lanes": 3})
    right = LearnPlan.unit_rates.func

    def swapped(plan):
        return {kind: len(plan.rates) - 1 - rates for kind, rates in right(plan).items()}

    monkeypatch.setattr(LearnPlan, "unit_rates", property(swapped))
    with pytest.raises(AssertionError, match="streamed copies differ"):
        check_learn(cfg, 4, decay_steps=2)


# -- pulse rounding with carry (docs/numerics.md, section 5) ---------------------------------------------

@pytest.mark.parametrize("sections", [
    {"device": {"preset": "reram-array-om", "d2d_classes": 3}, "train": {"lr": 0.2}},
    {"hw": {"lanes": 4, "learn_lanes": 2}, "train": {"lr": 0.1}},
    {"hw": {"lanes": 5, "learn_lanes": 2}, "device": {"preset": "ideal", "levels": 64, "c2c": 0.2},
     "train": {"max_step": 0.1, "lr": 0.1}},
    {"network": {"n": 10, "topology": "layered", "layers": (3, 4, 3)}, "hw": {"lanes": 4, "learn_lanes": 3},
     "train": {"layer_lr": (0.5, 0.11), "lr": 0.5, "lr_decay": 0.5}},
])
def test_learn_unit_carries_as_the_model(sections):
    """Rounding "carry": from random carries of both signs, every code, every synapse's and bias's new
    carry and the cycle count equal the model's; the carries change, and pulses are programmed."""
    cfg = small(**{**sections, "fixed": {"rounding": "carry"}})
    case = make_case(cfg, 6)
    r = np.random.default_rng(11)
    limit = (1 << fixed.CARRY_FRAC) - 1
    n = cfg.network.n
    upper = np.triu(case.params.mask)
    case.params.carry_w = np.where(upper, r.integers(-limit, limit + 1, (n, n)), 0)
    case.params.carry_b = np.where(case.drive.clamped, 0, r.integers(-limit, limit + 1, n))
    before = case.params.carry_w.copy()
    result = check_learn(cfg, 6, case, decay_steps=1 if cfg.train.lr_decay < 1 else 0)
    assert result["pulses"] > 0
    assert np.count_nonzero(result["after"].carry_w != before) > upper.sum() // 2


@pytest.mark.parametrize("sections", [
    {"hw": {"lanes": 4, "threefry": "dual"}},
    {"hw": {"lanes": 5, "learn_lanes": 3, "threefry": "dual"}, "network": {"n": 10}},
    {"network": {"n": 10, "topology": "layered", "layers": (3, 4, 3)}, "hw": {"lanes": 4, "threefry": "dual"}},
    {"hw": {"lanes": 8, "threefry": "quad"}},
    {"hw": {"lanes": 7, "learn_lanes": 6, "threefry": "quad", "fold": True}, "network": {"n": 10}},
])
def test_several_threefry_pipelines_are_bit_exact_and_faster(sections):
    """Two or four Threefry pipelines take as many lanes' rounding draws a cycle: the same codes (a
    draw is a function of its synapse, not of the unit that makes it), and fewer LEARN cycles than
    one (check_learn compares the cycles with the cycle model, which counts each pipeline's share)."""
    cfg = small(**sections)
    several = check_learn(cfg, 3)
    one = check_learn(cfg.replace(hw={"threefry": "pipelined"}), 3)
    assert several["cycles"] < one["cycles"]
    if cfg.hw.threefry == "quad":
        assert several["cycles"] < check_learn(cfg.replace(hw={"threefry": "dual"}), 3)["cycles"]


@pytest.mark.parametrize("sections", [{"fixed": {"rounding": "nearest"}},
                                      {"device": {"preset": "ideal", "levels": 64, "c2c": 0.2}}],
                         ids=["nearest rounding", "c2c noise"])
@pytest.mark.parametrize("threefry", ["dual", "quad"])
def test_several_threefry_pipelines_refuse_what_they_cannot_serve(sections, threefry):
    from memprop.model.config import ConfigError

    cfg = small(hw={"lanes": 4, "threefry": threefry}, **sections)
    with pytest.raises(ConfigError, match=f"threefry = '{threefry}' needs stochastic rounding without c2c noise"):
        LearnPlan(cfg).rng_units
