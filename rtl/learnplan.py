"""What the parallel learning unit does during LEARN, worked out ahead in Python.

The learner walks the synapse stream in *groups*: a stream word of P entries is cut into
ceil(P / W) groups of W learning lanes (W = `hw.learn_lanes`, default P), then the free
units' biases follow in groups of W. Each symmetric pair {i, j} is programmed once, at its
*primary* copy: the entry (i, j) with i <= j, or the only streamed copy when j is a clamped
unit. The other copy (j, i) is written by a *mirror* write at its stream position, so a group
made of mirror copies only is skipped. A folded stream (hw.fold) holds one copy of each pair:
every entry is primary and there are no mirrors.

This module is pure Python: the RTL generator takes its mirror-base table and constants, the
cycle model (cycles.py) its per-group facts, the tests both.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from memprop.model.config import Config, ConfigError
from memprop.model.numerics import LR_SHIFT_MAX, Formats

from .schedule import Schedule, ceil_log2, formats
from .threefry import LATENCY as ITERATIVE_LATENCY
from .threefry import PIPELINE_LATENCY

#: Threefry units the learner can use: (latency, initiation interval).
RNG_TIMING = {"pipelined": (PIPELINE_LATENCY, 1), "dual": (PIPELINE_LATENCY, 1), "quad": (PIPELINE_LATENCY, 1),
              "iterative": (ITERATIVE_LATENCY, ITERATIVE_LATENCY)}


def c2c_thresholds(fmt: Formats) -> list[int]:
    """The c2c noise threshold C2C[m] of each device class m (0 for the stuck classes)."""
    return [int(v) for v in fmt.device.c2c_table]


def rate_table(fmt: Formats) -> tuple[tuple[int, int], ...]:
    """The learner's rate table: the distinct (LR_MUL, LR_SHIFT) of the weight layers, input side
    first (docs/numerics.md section 5). One entry without `train.layer_lr`, or when every layer's
    rate has the same constants: then the quantiser holds constants only, as before per-layer rates."""
    return tuple(dict.fromkeys(fmt.lr_layers))


def max_learn_shift(fmt: Formats) -> int:
    """The largest LR_SHIFT any synapse can learn at (without the diagonal's extra shift): the
    table's, or LR_SHIFT_MAX once a decaying rate can reach it."""
    return LR_SHIFT_MAX if fmt.decay_shift else max(shift for _, shift in rate_table(fmt))


@dataclass(frozen=True)
class LearnPlan:
    cfg: Config

    # -- parameters ---------------------------------------------------------------------------
    @cached_property
    def fmt(self) -> Formats:
        return formats(self.cfg)

    @cached_property
    def schedule(self) -> Schedule:
        return Schedule(self.cfg)

    @property
    def lanes(self) -> int:
        return self.cfg.hw.lanes

    @property
    def width(self) -> int:
        """Learning lanes W (<= P)."""
        w = getattr(self.cfg.hw, "learn_lanes", None) or self.lanes
        if w > self.lanes:
            raise ValueError(f"hw.learn_lanes={w} exceeds the {self.lanes} MAC lanes of a stream word")
        return w

    @property
    def parts(self) -> int:
        """Groups per stream word."""
        return -(-self.lanes // self.width)

    @property
    def rng(self) -> str:
        return getattr(self.cfg.hw, "threefry", "pipelined")

    @property
    def rng_latency(self) -> int:
        return RNG_TIMING[self.rng][0]

    @property
    def rng_interval(self) -> int:
        return RNG_TIMING[self.rng][1]

    @property
    def rng_units(self) -> int:
        """Threefry pipelines: "dual" / "quad" take two / four requests a cycle (as many lanes'
        rounding draws; pipeline u serves the lanes l = u mod units).

        They serve one call per lane, the rounding draw aligned in one way: stochastic rounding,
        no c2c noise, one learning rate without decay. Anything else is refused here."""
        if self.rng not in ("dual", "quad"):
            return 1
        from .learnlane import Quantiser

        if not self.stochastic or self.noisy or not Quantiser.constant_for(self.fmt):
            raise ConfigError(f"hw.threefry = '{self.rng}' needs stochastic rounding without c2c noise, per-layer "
                              "rates or rate decay (one rounding draw per synapse); use 'pipelined'")
        return 2 if self.rng == "dual" else 4

    @property
    def draw_lead(self) -> int:
        """Slots from a group's draw requests (stage A) to their use (stage C): 2, or 3 with several
        pipelines (an idle stage between A and B), whose short slots would otherwise wait for the
        pipeline's latency."""
        return 3 if self.rng_units > 1 else 2

    @property
    def stochastic(self) -> bool:
        return self.cfg.fixed.rounding == "stochastic"

    @cached_property
    def c2c(self) -> list[int]:
        return c2c_thresholds(self.fmt)

    @property
    def noisy(self) -> bool:
        """Any class with c2c noise: every pulse fetches its noise draws."""
        return any(self.c2c)

    @property
    def first_call(self) -> int:
        """Threefry call index of a synapse's first call: 0 (rounding) or 1 (pulse 0's noise)."""
        return 0 if self.stochastic else 1

    @property
    def calls(self) -> int:
        """Threefry calls per programmed synapse: the rounding draw and every pulse's noise
        (all P_max of them, fetched before the pulse count is known)."""
        return int(self.stochastic) + (self.fmt.max_pulses if self.noisy else 0)

    @property
    def batch(self) -> int:
        return self.cfg.train.batch_size

    # -- per-layer learning rates ---------------------------------------------------------------
    @cached_property
    def rates(self) -> tuple[tuple[int, int], ...]:
        return rate_table(self.fmt)

    @cached_property
    def unit_rates(self) -> dict[str, np.ndarray]:
        """Per unit u, the rate-table index of a synapse whose lower unit is u ("synapse") and of
        u's bias ("bias"). A synapse {i, j} learns at weight layer min(layer(i), layer(j)) =
        layer(min(i, j)) (layers are contiguous runs of units, input side first), a bias at the
        layer below its unit (Formats.synapse_layer, bias_layer), so both are runs of units: the
        learner compares a unit with the run boundaries instead of holding a table."""
        f = self.fmt
        index = {rate: k for k, rate in enumerate(self.rates)}
        per_layer = np.array([index[rate] for rate in f.lr_layers], dtype=np.int64)
        last = len(per_layer) - 1           # a last-layer unit is never a synapse's lower unit
        return {"synapse": per_layer[np.minimum(np.diagonal(f.synapse_layer), last)],
                "bias": per_layer[np.minimum(f.bias_layer, last)]}

    @cached_property
    def entry_rates(self) -> np.ndarray:
        """Per stream position, the rate-table index of its synapse (0 for padding)."""
        st = self.schedule.stream
        lower = np.minimum(st["row"], st["col"])
        return np.where(st["valid"], self.unit_rates["synapse"][lower], 0)

    @property
    def first_row(self) -> int:
        return int(self.schedule.rows[0])

    @property
    def n_rows(self) -> int:
        return len(self.schedule.rows)

    @property
    def pow2_lanes(self) -> bool:
        return self.lanes & (self.lanes - 1) == 0

    # -- the stream, entry by entry -----------------------------------------------------------
    @cached_property
    def entries(self) -> dict[str, np.ndarray]:
        """Per stream position: primary (programmed here), mirror (its twin is streamed) and s."""
        st = self.schedule.stream
        row, col, valid = st["row"], st["col"], st["valid"]
        primary = valid & ((col >= row) | (col < self.first_row))
        mirror = valid & (col > row) & (not self.schedule.fold)
        n = self.cfg.network.n
        lo, hi = np.minimum(row, col), np.maximum(row, col)
        return {"primary": primary, "mirror": mirror, "s": lo * n + hi, "diag": valid & (row == col)}

    @cached_property
    def mirror_base(self) -> np.ndarray:
        """Per unit c: pos(c, r) - r for the lower free columns r of row c (0 where none).

        The mirror of the primary entry (r, c), c > r, sits at stream position
        mirror_base[c] + r. That needs each row's lower free columns to be one contiguous run
        (dense, band and layered masks are).
        """
        n = self.cfg.network.n
        base = np.zeros(n, dtype=np.int64)
        if self.schedule.fold:                 # no mirrors
            return base
        pos = self.schedule.position
        for c in self.schedule.rows:
            lower = [r for r in range(self.first_row, int(c)) if self.schedule.mask[c, r]]
            if not lower:
                continue
            offsets = {pos[(int(c), r)] - r for r in lower}
            if len(offsets) != 1:
                raise ValueError(f"row {int(c)}: its lower columns are not one contiguous run of the stream; "
                                 "the learner's mirror writes need dense, band or layered connectivity")
            base[c] = offsets.pop()
        return base

    @property
    def mirror_bits(self) -> int:
        """Signed width of mirror_base + r."""
        bound = max(int(np.abs(self.mirror_base).max(initial=0)), self.schedule.length) + self.cfg.network.n
        return bound.bit_length() + 1

    # -- groups -------------------------------------------------------------------------------
    @cached_property
    def stream_groups(self) -> np.ndarray:
        """(groups, W) stream position of each learning lane (-1 past the word's end), in walk order."""
        P, W, D = self.lanes, self.width, self.schedule.depth
        out = np.full((D * self.parts, W), -1, dtype=np.int64)
        for g in range(D * self.parts):
            word, part = divmod(g, self.parts)
            for lane in range(W):
                q = part * W + lane
                if q < P:
                    out[g, lane] = word * P + q
        return out

    @cached_property
    def bias_groups(self) -> np.ndarray:
        """(groups, W) unit of each learning lane in the bias groups (-1 past the last free unit)."""
        W = self.width
        rows = self.schedule.rows
        count = -(-len(rows) // W)
        out = np.full((count, W), -1, dtype=np.int64)
        for g in range(count):
            chunk = rows[g * W:(g + 1) * W]
            out[g, :len(chunk)] = chunk
        return out

    @cached_property
    def _static_walk(self) -> dict[str, np.ndarray]:
        """Per stream group (walk order): its lanes' primary and mirror flags and lower and higher units."""
        lanes = self.stream_groups
        inside = lanes >= 0
        k = np.where(inside, lanes, 0)
        e, st = self.entries, self.schedule.stream
        row, col = st["row"][k], st["col"][k]
        return {"prim": e["primary"][k] & inside, "mir": e["mirror"][k] & inside,
                "lo": np.minimum(row, col), "hi": np.maximum(row, col)}

    @property
    def skips(self) -> bool:
        """hw.learn_skip: the walk passes over lanes, groups and whole LEARNs whose units did not change."""
        return self.cfg.hw.learn_skip

    def changed_units(self, changed: np.ndarray | None) -> np.ndarray:
        """LearnStep.changed as a bool array of N, which hw.learn_skip's cycles need; or why not."""
        if changed is None:
            raise ValueError("hw.learn_skip: the LEARN cycles depend on which units changed; pass "
                             "`changed` (LearnStep.changed)")
        changed = np.asarray(changed, dtype=bool)
        if changed.shape != (self.cfg.network.n,):
            raise ValueError(f"changed has shape {changed.shape}, expected ({self.cfg.network.n},)")
        return changed

    def walk(self, pulses_w: np.ndarray, pulses_b: np.ndarray, changed: np.ndarray | None = None
             ) -> dict[str, np.ndarray]:
        """The groups the learner processes, in order, with what their cost depends on.

        Arrays over the groups: skipped (candidates passed over before it: stream groups without a
        primary lane to program, and with hw.learn_skip bias groups without a changed unit),
        requests (Threefry calls), issues (cycles of requests: with several pipelines, the most
        calls of one pipeline's lanes, l = u mod units), rounds (max |n|: pulse rounds), mirrors (mirror writes:
        primary lanes with a twin and n != 0), bias_lanes (reads and writes of a bias group, 0
        for stream groups); and `trailing`, the candidates passed over after the last group.
        pulses_w[i, j] (i <= j, as the model's LearnStep) and pulses_b[i] are the pulse counts;
        `changed` (LearnStep.changed) the units whose HI and LO differ, needed with hw.learn_skip:
        a primary lane is programmed only when one of its units changed.
        """
        sw = self._static_walk
        prim, mir = sw["prim"], sw["mir"]
        units = self.bias_groups
        b_inside = units >= 0
        b_active = b_inside.any(axis=1)
        if self.skips:
            changed = self.changed_units(changed)
            prim = prim & (changed[sw["lo"]] | changed[sw["hi"]])
            mir = mir & prim
            b_active = (b_inside & changed[np.maximum(units, 0)]).any(axis=1)
        active = np.concatenate([prim.any(axis=1), b_active])
        lo, hi = sw["lo"], sw["hi"]
        n = np.where(prim, np.abs(np.asarray(pulses_w)[lo, hi]), 0)[active[:len(prim)]]
        prim, mir = prim[active[:len(prim)]], mir[active[:len(mir)]]
        units = units[b_active]
        b_inside = units >= 0
        nb = np.where(b_inside, np.abs(np.asarray(pulses_b))[np.maximum(units, 0)], 0)
        bias_lanes = b_inside.sum(axis=1)
        U = self.rng_units
        share = np.arange(self.width) % U == np.arange(U)[:, None]            # (U, W): pipeline u's lanes
        issues = np.concatenate([(prim[:, None, :] & share).sum(axis=2).max(axis=1, initial=0),
                                 (b_inside[:, None, :] & share).sum(axis=2).max(axis=1, initial=0)])
        at = np.flatnonzero(active)                         # candidates passed over between groups
        skipped = np.diff(np.concatenate([[-1], at])) - 1
        zeros = np.zeros(len(units), dtype=np.int64)
        return {
            "skipped": skipped.astype(np.int64),
            "trailing": int(len(active) - 1 - at[-1]) if len(at) else len(active),
            "requests": np.concatenate([prim.sum(axis=1), bias_lanes]) * self.calls,
            "issues": issues * self.calls,
            "rounds": np.concatenate([n.max(axis=1, initial=0), nb.max(axis=1, initial=0)]),
            "mirrors": np.concatenate([(mir & (n != 0)).sum(axis=1), zeros]),
            "bias_lanes": np.concatenate([np.zeros(len(n), dtype=np.int64), bias_lanes]),
        }

    @property
    def slot_bound(self) -> int:
        """A bound on any slot's length (sizes the learner's cycle counter)."""
        if self.skips:                       # any run of candidates may be passed over
            skips = len(self.stream_groups) + len(self.bias_groups)
        else:
            n = self.cfg.network.n
            w = self.walk(np.zeros((n, n), dtype=np.int64), np.zeros(n, dtype=np.int64))
            skips = max(int(w["skipped"].max(initial=0)), int(w["trailing"]))
        issue = self.width * self.calls * self.rng_interval + self.rng_interval
        return (skips + 2 + issue + self.rng_latency + 2 * self.batch + 8 + 2 * self.fmt.max_pulses
                + 2 * self.width + 8)

    # -- memories -----------------------------------------------------------------------------
    @property
    def slot_bits(self) -> int:
        return max(ceil_log2(self.batch), 1)

    @property
    def n_bits(self) -> int:
        return max(ceil_log2(self.cfg.network.n), 1)

    @property
    def store_depth(self) -> int:
        """Words of each lane's fixed-point copy: HI and LO sets x slots x units."""
        return 2 << (self.slot_bits + self.n_bits)
