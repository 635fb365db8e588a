"""The engine's cycle model (docs/rtl.md): exact clock counts of every command.

Relaxation costs one clock per block of P streamed synapses plus a constant pipeline
latency per step. Learning walks the stream in groups of W lanes, four stages in lock step;
its cost depends on the pulse counts, which the model knows, so the function takes them as
input and replays the stages' schedule. Tests measure the engine in
simulation and compare with these functions exactly.
"""

from __future__ import annotations

import functools

import numpy as np

from .engine import step_latency
from .schedule import Schedule

#: Cycles of command dispatch counted by the engine's cycle counter.
COMMAND_OVERHEAD = 1


def step_cycles(schedule: Schedule) -> int:
    """One relaxation step: ceil(S'/P) blocks plus the constant pipeline latency."""
    return schedule.depth + step_latency(schedule.lanes)


def reuse_step_cycles(schedule: Schedule) -> int:
    """A step that reads the kept sums (hw.keep_sums): one row end a cycle, then the same pipeline."""
    return len(schedule.rows) + step_latency(schedule.lanes)


def relax_cycles(schedule: Schedule, steps: int, reused: bool = False) -> int:
    """RELAX (or STEP) of `steps` steps; `reused`: its first step read the kept sums (`sums_kept`)."""
    if reused and not schedule.cfg.hw.keep_sums:
        raise ValueError("only an engine with hw.keep_sums reuses a step's sums")
    first = reuse_step_cycles(schedule) if reused and steps else step_cycles(schedule) if steps else 0
    return COMMAND_OVERHEAD + first + max(steps - 1, 0) * step_cycles(schedule)


def sums_kept(cfg, previous_converged_exactly: bool, invalidated: bool = False) -> bool:
    """Whether a relaxation's first step reads the kept sums (docs/rtl.md, "Kept sums"): with
    hw.keep_sums, when the engine's last step left the state unchanged (max|dv| = 0: the relaxation
    before converged at an exact fixed point) and no RESTORE, LEARN, weight load or host write of the
    state, the inputs or a code came between."""
    return bool(cfg.hw.keep_sums and previous_converged_exactly and not invalidated)


def store_cycles(n: int) -> int:
    """STORE: the first read, then one unit a cycle (each write beside the next read)."""
    return COMMAND_OVERHEAD + n + 1


def restore_cycles(n: int) -> int:
    return COMMAND_OVERHEAD + 3 * n


def sample_copy_cycles(cfg) -> int:
    """STORE and RESTORE cycles of one training sample as the driver runs it (train_minibatch):
    none of the STOREs where RELAX stores its fixed point as it goes (hm.Layout.relax_store)."""
    from . import hostmap as hm
    from .schedule import formats

    n = cfg.network.n
    stores = 0 if hm.Layout(formats(cfg)).relax_store else (3 if cfg.train.nudge == "centered" else 2)
    restores = 1 if cfg.train.nudge == "centered" else 0
    return stores * store_cycles(n) + restores * restore_cycles(n)


def learn_cycles(schedule: Schedule, pulses_w: np.ndarray, pulses_b: np.ndarray,
                 changed: np.ndarray | None = None) -> int:
    """LEARN: the command dispatch and the learning unit (learner_cycles).

    pulses_w[i, j] (upper triangle, as the model's LearnStep) and pulses_b[i] give |n|; `changed`
    (LearnStep.changed) the units whose HI and LO differ, needed with hw.learn_skip.
    """
    return COMMAND_OVERHEAD + learner_cycles(_plan(schedule.cfg), pulses_w, pulses_b, changed)


@functools.lru_cache(maxsize=16)
def _plan(cfg):
    from .learnplan import LearnPlan

    return LearnPlan(cfg)


def learner_cycles(plan, pulses_w: np.ndarray, pulses_b: np.ndarray, changed: np.ndarray | None = None) -> int:
    """The parallel learning unit (learn.py), start to done: exact, slot by slot.

    Four stages work in lock step on consecutive groups; a slot lasts 1 + SLOT_END_LATENCY +
    the latest stage's done cycle. A: skipped groups (one cycle each), the latch, one Threefry request per
    cycle (or per initiation interval; with several pipelines the largest share of one pipeline's
    lanes, and an idle stage before B: LearnPlan.draw_lead); B: B reads (HI and LO together; 2B, HI then LO, for
    learners narrower than PAIRED_READ_LANES) and the correlator pipeline; C: waits
    for its draws (requested `draw_lead` slots earlier), rounds, two cycles per pulse round; D: the
    own write and one write per mirror. With hw.learn_skip only lanes with a changed unit count,
    and a LEARN in which no unit changed ends at once (LEARN_UNCHANGED).
    """
    from .learn import LEARN_FINISH, LEARN_UNCHANGED, SLOT_END_LATENCY, learn_init, round_earliest, stage_b_cycles

    if plan.skips and not plan.changed_units(changed).any():     # most LEARNs of a trained network
        return LEARN_UNCHANGED
    walk = plan.walk(pulses_w, pulses_b, changed)
    skipped, requests, issue_cycles, rounds, mirrors, bias_lanes = (
        walk[key].tolist() for key in ("skipped", "requests", "issues", "rounds", "mirrors", "bias_lanes"))
    G = len(skipped)
    hard = plan.cfg.network.activation != "tanh"
    d_b = stage_b_cycles(plan.batch, plan.width, hard)
    latency, interval = plan.rng_latency, plan.rng_interval
    width = plan.width
    carry = plan.cfg.fixed.rounding == "carry"
    last_accept = -(10**9)
    ready = [0] * G                          # absolute cycle from which a group's draws are all in
    t = 0                                    # absolute start of the slot (slot 0 at 0)
    lead = plan.draw_lead                    # stage C works on group k - lead, B on k - lead + 1
    # the slot after the last group's: stage A passes over the trailing candidates (with
    # hw.learn_skip, bias groups without a changed unit) before it is done; LEARN ends with the slot
    # in which stage D has the last group, or with that one if there is no group
    for k in range(G + lead + 1 if G else 1):
        longest = walk["trailing"] if k == G else 0
        if k < G:
            if requests[k]:
                load = t + skipped[k] + 1
                issues = issue_cycles[k]                       # "dual", "quad": the largest share
                if interval == 1 and last_accept <= load:      # pipelined: one issue per cycle
                    last_loaded = load + issues - 1
                    last_accept = last_loaded + 1
                else:
                    for _ in range(issues):
                        load = max(load, last_accept)          # the request register is free
                        accept = max(load + 1, last_accept + interval)
                        last_loaded, last_accept = load, accept
                        load = accept
                ready[k] = last_accept + latency + 1
                longest = last_loaded + 1 - t
            else:
                ready[k] = -(10**9)
                longest = skipped[k] + 1
        if 0 <= k - lead + 1 < G:
            longest = max(longest, d_b)
        if 0 <= k - lead < G:
            j = k - lead
            q = max(round_earliest(carry, bool(bias_lanes[j]), width), ready[j] - t)
            longest = max(longest, q + 1 + 2 * rounds[j])
        if 0 <= k - lead - 1 < G:
            j = k - lead - 1
            if bias_lanes[j]:
                longest = max(longest, width + bias_lanes[j] - 1)
            else:
                longest = max(longest, 1 + mirrors[j] + (1 if mirrors[j] else 0))
        t += 1 + SLOT_END_LATENCY + longest
    return learn_init(plan.skips) + t + LEARN_FINISH
