"""The engine's cycle model (docs/rtl.md): exact clock counts of every command.

Relaxation costs one clock per block of P streamed synapses plus a constant pipeline
latency per step. Learning is a sequential walk whose cost depends on the pulse counts,
which the model knows, so the formula takes them as input. Tests measure the engine in
simulation and compare with these functions exactly.
"""

from __future__ import annotations

import numpy as np

from .engine import step_latency
from .schedule import Schedule
from memprop.model.numerics import Formats
from memprop.model.rng import ROUNDS

from .threefry import threefry_schedule

#: Cycles of command dispatch counted by the engine's cycle counter.
COMMAND_OVERHEAD = 1
THREEFRY_LATENCY = len(threefry_schedule(ROUNDS)) + 1   # Threefry2x32.latency, without elaborating one


def step_cycles(schedule: Schedule) -> int:
    """One relaxation step: ceil(S'/P) blocks plus the constant pipeline latency."""
    return schedule.depth + step_latency(schedule.lanes)


def relax_cycles(schedule: Schedule, steps: int) -> int:
    return COMMAND_OVERHEAD + steps * step_cycles(schedule)


def store_cycles(n: int) -> int:
    return COMMAND_OVERHEAD + 2 * n


def restore_cycles(n: int) -> int:
    return COMMAND_OVERHEAD + 3 * n


def _synapse_cycles(cfg, pulses: int) -> int:
    """SETUP through ADVANCE for one synapse or bias with `pulses` programmed pulses."""
    hard = cfg.network.activation != "tanh"
    corr = 2 * cfg.train.batch_size + (1 if hard else 2) + 1 + 3      # SETUP, CORR, drain (operand regs), QUANT
    if cfg.fixed.rounding == "stochastic":
        corr = max(corr, THREEFRY_LATENCY + 2)
    if pulses == 0:
        return corr + 1                                              # ADVANCE
    noisy = Formats(cfg).device.c2c_threshold > 0                   # as the learner's NOISE states
    per_pulse = 2 + (THREEFRY_LATENCY + 2 if noisy else 0)
    return corr + 2 + pulses * per_pulse + 1 + 1 + 1                 # READ LATCH, pulses, PULSE, WRITE, ADVANCE


def learn_cycles(schedule: Schedule, pulses_w: np.ndarray, pulses_b: np.ndarray) -> int:
    """LEARN: the walk over every streamed entry, then every free unit's bias.

    pulses_w[i, j] (upper triangle, as the model's LearnStep) and pulses_b[i] give |n|.
    """
    cfg = schedule.cfg
    st = schedule.stream
    total = COMMAND_OVERHEAD + 1                                     # learner start .. FINISH
    both = np.abs(np.triu(pulses_w)) + np.abs(np.triu(pulses_w, 1)).T
    for valid, i, j in zip(st["valid"], st["row"], st["col"]):
        total += 2                                                   # FETCH, ENTRY
        total += _synapse_cycles(cfg, int(both[i, j])) if valid else 1
    for i in schedule.rows:
        total += 1 + _synapse_cycles(cfg, int(abs(pulses_b[i])))      # BIAS_SETUP, ...
    return total
