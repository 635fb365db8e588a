"""The one configuration object shared by every stage (model, RTL, simulation, boards).

A `Config` is validated once, on construction, and is immutable afterwards. Its
`fingerprint` names everything that changes what the hardware computes, so a weight
file or a bitstream made for another configuration is caught by comparison.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Activation = Literal["hard_tanh", "hard_sigmoid", "tanh"]
Dynamics = Literal["bounded", "euler", "additive"]
Topology = Literal["dense", "band", "layered"]
Algorithm = Literal["eqprop", "rbp", "hebbian", "storkey"]
Nudge = Literal["positive", "random_sign", "centered"]
InitState = Literal["input", "half", "random"]


class ConfigError(ValueError):
    """A configuration that cannot work; the message names the field and the value."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NetworkConfig(_Section):
    """Shape, connectivity and relaxation dynamics of the recurrent network."""

    n: int = Field(100, ge=2, le=4096, description="number of units N")
    topology: Topology = "dense"
    band: int = Field(0, ge=0, description="outer diagonals cut on each side (band topology)")
    layers: tuple[int, ...] = Field((), description="layer sizes (input, hidden..., output), layered only")
    self_connections: bool = Field(False, description="allow W_ii (Hopfield convention: no)")
    activation: Activation = "hard_tanh"
    dynamics: Dynamics = Field(
        "bounded",
        description="bounded: v <- rho(v - eps dF/dv) (Frontiers eq. 21); euler: v <- v - eps dF/dv; "
        "additive: v <- v + eps(-v + rho(Wv + b + I)) (RBP network)",
    )
    eps: float = Field(0.5, gt=0.0, le=1.0, description="relaxation step epsilon")
    max_steps: int = Field(100, ge=1, le=100_000, description="relaxation step limit per phase")
    tol: float = Field(1e-4, ge=0.0, description="converged when max|dv| <= tol")
    input_gain: float = Field(0.5, ge=0.0, description="external current I = gain * input pattern")
    hidden: int = Field(0, ge=0, description="hidden units of an autoassociative network: units 0 .. hidden-1 "
                        "get no input current and no target; the pattern is on the other n - hidden units")
    init_state: InitState = Field(
        "input", description="initial state of an autoassociative relaxation: input: the (corrupted) input "
        "pattern (memprop); half: v(0) = 0.5 (ICECS 2019); random: uniform over the activation range "
        "(Frontiers 2020)")

    @model_validator(mode="after")
    def _check_shape(self) -> "NetworkConfig":
        if self.topology == "band" and not 0 < self.band < self.n:
            raise ValueError(f"band topology needs 0 < band < n, got band={self.band} with n={self.n}")
        if self.topology != "band" and self.band != 0:
            raise ValueError(f"band={self.band} is only meaningful with topology='band' (got {self.topology!r})")
        if self.dynamics == "bounded" and self.activation == "tanh":
            raise ValueError("bounded dynamics (Frontiers eq. 21) projects onto the range of a hard activation; "
                             "use dynamics='euler' with tanh")
        if self.dynamics == "euler" and self.activation != "tanh":
            raise ValueError(f"{self.activation} with euler dynamics cycles at the box edge; hard "
                             "activations use dynamics='bounded' (Frontiers eq. 21)")
        if self.hidden and (self.topology == "layered" or self.hidden > self.n - 2):
            raise ValueError(f"hidden={self.hidden}: hidden units belong to a dense or band autoassociative "
                             f"network and leave at least 2 pattern units (n={self.n}, topology={self.topology!r})")
        if self.init_state != "input" and self.topology == "layered":
            raise ValueError(f"init_state={self.init_state!r} is for autoassociative networks; a layered "
                             "network clamps its inputs")
        if self.topology == "layered":
            if len(self.layers) < 2:
                raise ValueError(f"layered topology needs at least (input, output) layer sizes, got {self.layers!r}")
            if any(s < 1 for s in self.layers):
                raise ValueError(f"layer sizes must be positive, got {self.layers!r}")
            if sum(self.layers) != self.n:
                raise ValueError(f"layer sizes {self.layers!r} sum to {sum(self.layers)}, but n={self.n}")
        elif self.layers:
            raise ValueError(f"layers={self.layers!r} given for topology={self.topology!r}; use topology='layered'")
        return self

    @property
    def layered(self) -> bool:
        return self.topology == "layered"

    @property
    def pattern_units(self) -> int:
        """Units a pattern occupies in an autoassociative network (all but the hidden ones)."""
        return self.n - self.hidden


class TrainConfig(_Section):
    """Learning rule and its hyper-parameters (defaults follow the seeds where they say)."""

    algo: Algorithm = "eqprop"
    epochs: int = Field(300, ge=0, le=1_000_000)
    lr: float = Field(0.02, gt=0.0, description="learning rate eta")
    max_step: float = Field(
        0.01, gt=0.0, description="largest |dW| of one update: the float twin of max pulses per update"
    )
    beta: float = Field(1.0, gt=0.0, description="nudging strength of the weakly clamped phase")
    nudge: Nudge = "positive"
    repeats: int = Field(8, ge=1, description="noisy copies of each pattern shown per epoch")
    batch_size: int = Field(8, ge=1, description="samples averaged into one weight update")
    shuffle: bool = Field(False, description="shuffle samples each epoch (seeds: fixed order)")
    train_flip: float = Field(0.1, ge=0.0, lt=0.5, description="pixel-flip probability of training inputs")
    train_flip_end: float | None = Field(
        None, ge=0.0, lt=0.5, description="noise curriculum: the flip probability ramps linearly from train_flip "
        "(first epoch) to this (last epoch); None: train_flip throughout")
    init_scale: float = Field(0.1, ge=0.0, description="W ~ U[-init_scale, init_scale], symmetric")
    seed: int = Field(0, ge=0)
    side_init: float = Field(0.5, description="RBP side network y(0) (seeds: 0.5)")
    layer_lr: tuple[float, ...] = Field(
        (), description="layered: one learning rate per weight layer, input side first (Frontiers: 0.1, 0.05); "
        "a unit's bias learns at the rate of the weights below it; empty: lr everywhere")
    lr_decay: float = Field(1.0, gt=0.0, le=1.0,
                            description="learning rates are multiplied by this after every lr_decay_every epochs "
                                        "(Frontiers: 0.5 after every epoch)")
    lr_decay_every: int = Field(1, ge=1, le=1_000_000,
                                description="epochs between two learning-rate decays (a step schedule)")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.nudge == "centered" and self.algo != "eqprop":
            raise ValueError(f"nudge='centered' applies to eqprop only, not {self.algo!r}")
        if any(rate <= 0 for rate in self.layer_lr):
            raise ValueError(f"layer_lr must be positive, got {self.layer_lr!r}")
        return self


Rounding = Literal["truncate", "nearest", "stochastic", "carry"]


class FixedConfig(_Section):
    """Fixed-point formats of the hardware (docs/numerics.md, section 1)."""

    state_frac: int = Field(8, ge=2, le=14, description="fractional bits of states and activations (fv = fa)")
    weight_frac: int = Field(10, ge=2, le=16, description="fractional bits of weight values (fw)")
    deriv_frac: int = Field(8, ge=2, le=12, description="fractional bits of the tanh derivative table (fd)")
    acc_bits: int | None = Field(None, ge=8, le=53, description="accumulator width; None: the derived minimum")
    tol_lsb: int = Field(0, ge=0, description="converged when max|dv| <= tol_lsb state LSBs")
    rounding: Rounding = Field("stochastic", description="pulse-count quantisation")


class DeviceConfig(_Section):
    """The memristive synapse: a named preset, optionally with some parameters overridden.

    Override names and meanings are aihwkit's (model/device.py, docs/numerics.md section 5).
    read_noise and drift_* are model options: the hardware leaves them out (they are not part of
    the fingerprint, so weights trained with them load into the hardware's configuration).
    """

    @model_validator(mode="after")
    def _known_preset(self) -> "DeviceConfig":
        from .device import get_preset

        get_preset(self.preset)  # a clear error for an unknown name, whatever the numerics
        if self.preset == "ideal" and self.w_scale is not None:
            raise ValueError("device.w_scale maps a memristive device to a weight; the ideal preset is an "
                             "exact 11-bit weight and has none")
        return self

    preset: str = "ideal"
    levels: int | None = Field(None, ge=2, le=4096, description="override the preset's conductance levels")
    c2c: float | None = Field(None, ge=0.0, le=0.5, description="override: chance of a +-1 level error per pulse "
                              "(default: from dw_min_std)")
    d2d: float | None = Field(None, ge=0.0, le=0.5, description="override: one relative spread for dw_min, w_min "
                              "and w_max")
    dw_min_dtod: float | None = Field(None, ge=0.0, le=2.0, description="override: device-to-device spread of dw_min")
    dw_min_std: float | None = Field(None, ge=0.0, le=10.0, description="override: cycle-to-cycle std of a step")
    up_down: float | None = Field(None, gt=-1.0, lt=1.0, description="override: up/down step asymmetry")
    up_down_dtod: float | None = Field(None, ge=0.0, le=1.0, description="override: device-to-device spread of up_down")
    w_min_dtod: float | None = Field(None, ge=0.0, le=1.0, description="override: device-to-device spread of w_min")
    w_max_dtod: float | None = Field(None, ge=0.0, le=1.0, description="override: device-to-device spread of w_max")
    d2d_classes: int | None = Field(None, ge=1, le=16, description="device classes M for device-to-device "
                                    "variation (None: the preset's, 4 if it varies; 1: no variation)")
    stuck: float | None = Field(None, ge=0.0, le=0.5, description="override: fraction of stuck devices")
    stuck_high: float | None = Field(None, ge=0.0, le=1.0, description="override: share of stuck devices at G_max")
    fab_seed: int = Field(0, ge=0, description="seed of the 'fabrication' (device class and stuck map)")
    max_pulses: int | None = Field(None, ge=1, le=31, description="override: pulses per update limit")
    w_scale: float | None = Field(None, gt=0.0, le=4.0, description="override: network weight of one device "
                                  "unit (the read-out gain; aihwkit's weight scaling): smaller, finer steps "
                                  "over a narrower weight range")
    read_noise: float = Field(0.0, ge=0.0, le=0.5, description="model only: std of every conductance read, "
                              "relative to the device range, per relaxation step")
    drift_nu: float = Field(0.0, ge=0.0, le=1.0, description="model only: drift exponent nu of "
                            "G(t) = Gmin + (G - Gmin) t^-nu between training and recall")
    drift_nu_dtod: float = Field(0.0, ge=0.0, le=1.0, description="model only: device-to-device std of nu")


#: DeviceConfig fields the hardware does not implement (excluded from the fingerprint).
MODEL_ONLY_DEVICE = {"read_noise", "drift_nu", "drift_nu_dtod"}


class HardwareConfig(_Section):
    """Parameters of the generated RTL that do not change what it computes."""

    lanes: int = Field(4, ge=1, le=64, description="multiply-accumulate lanes P")
    learn_lanes: int | None = Field(None, ge=1, le=64,
                                    description="learning lanes W <= P of the LEARN unit; None: P")
    threefry: Literal["pipelined", "dual", "quad", "iterative"] = Field(
        "pipelined", description="the learner's random numbers: one per cycle (pipelined), two or four per cycle "
        "from two or four pipelines (dual, quad; stochastic rounding without c2c noise) or one per 18 (iterative, "
        "small)")
    code_memory: Literal["auto", "block", "spram"] = Field(
        "auto", description="device-code memory: block RAM, iCE40 UltraPlus SPRAM, or auto (SPRAM when the "
        "build platform has it)")
    dsp: Literal["auto", "inferred", "mult18x18d"] = Field(
        "auto", description="the multipliers: `*` between registers for yosys to map (inferred), the ECP5 "
        "MULT18X18D with its own operand and product registers (mult18x18d), or auto (MULT18X18D when the build "
        "platform is an ECP5)")
    lutram_act_lanes: int = Field(
        0, ge=0, le=64, description="MAC lanes whose activation copy sits in distributed (LUT) RAM instead of "
        "block RAM: every lane reads its own copy each clock, so at wide P block RAM, not logic, runs out first")
    fold: bool = Field(
        False, description="stream each symmetric pair once: its product goes into the row's sum and, through a "
        "per-unit column accumulators, into the column unit's (N = 100 dense at P = 32: 205 stream words a step "
        "instead of 310; a second multiplier per lane and N accumulators)")
    keep_sums: bool = Field(
        False, description="the engine keeps every unit's field sum W·a of the last step; a step whose input "
        "state is that step's (the first step of a nudged phase after a free phase that ended at an exact fixed "
        "point) reads the sums instead of streaming the weights: N rows + the pipeline instead of a full step "
        "(same results, fewer cycles; a block RAM of N x acc bits)")
    learn_skip: bool = Field(
        False, description="LEARN passes over the synapses and biases whose units' fixed points are equal in HI "
        "and LO in every slot (their update is exactly zero), and ends at once when no unit differs: the learner "
        "keeps one flag per unit and slot, updated at every STORE (once training has converged most minibatches "
        "change nothing; same results, fewer cycles)")

    @model_validator(mode="after")
    def _check_learn_lanes(self) -> "HardwareConfig":
        if self.learn_lanes is not None and self.learn_lanes > self.lanes:
            raise ValueError(f"learn_lanes={self.learn_lanes} exceeds lanes={self.lanes} (a stream word's entries)")
        if self.lutram_act_lanes > self.lanes:
            raise ValueError(f"lutram_act_lanes={self.lutram_act_lanes} exceeds lanes={self.lanes}")
        return self


#: Per-algorithm defaults, applied by `Config.for_algorithm` (and the CLI) before user overrides.
ALGORITHM_DEFAULTS: dict[str, dict[str, dict]] = {
    "eqprop": {"network": {"activation": "hard_tanh", "dynamics": "bounded"},
               "train": {"lr": 0.02, "max_step": 0.01}},
    "rbp": {"network": {"activation": "tanh", "dynamics": "additive"},
            "train": {"lr": 0.005, "max_step": 0.005}},
    "hebbian": {"network": {"activation": "hard_tanh", "dynamics": "bounded"}, "train": {"epochs": 1}},
    "storkey": {"network": {"activation": "hard_tanh", "dynamics": "bounded"}, "train": {"epochs": 1}},
}


class Config(_Section):
    """Everything that defines a memprop network, its training and (later) its hardware."""

    numerics: Literal["float", "fixed"] = "float"
    network: NetworkConfig = NetworkConfig()
    train: TrainConfig = TrainConfig()
    fixed: FixedConfig = FixedConfig()
    device: DeviceConfig = DeviceConfig()
    hw: HardwareConfig = HardwareConfig()

    @model_validator(mode="after")
    def _check_pairing(self) -> "Config":
        algo, net = self.train.algo, self.network
        if algo == "rbp" and net.dynamics != "additive":
            raise ValueError("algo 'rbp' runs the additive network of the seeds: set dynamics='additive'")
        if algo == "eqprop" and net.dynamics == "additive":
            raise ValueError("algo 'eqprop' needs energy dynamics: dynamics='bounded' or 'euler', not 'additive'")
        if algo in ("hebbian", "storkey") and net.hidden:
            raise ValueError(f"algo {algo!r} is a Hopfield rule without hidden units (got hidden={net.hidden})")
        if algo in ("hebbian", "storkey") and net.layered:
            raise ValueError(f"algo {algo!r} is a Hopfield rule for autoassociative (dense/band) networks")
        if self.train.layer_lr and len(self.train.layer_lr) != max(len(net.layers) - 1, 0):
            raise ValueError(f"train.layer_lr has {len(self.train.layer_lr)} rates, but layers {net.layers!r} have "
                             f"{max(len(net.layers) - 1, 0)} weight layers (layer_lr is for layered networks)")
        if self.numerics == "fixed":
            if algo != "eqprop":
                raise ValueError(f"fixed-point numerics implement the hardware's in-situ EqProp, not {algo!r}")
            if net.init_state != "input":
                raise ValueError(f"network.init_state={net.init_state!r}: the hardware starts from the input "
                                 "pattern (init_state='input'); the seeds' initial states are a float-model option")
            _power_of_two("network.eps", net.eps)
            _power_of_two("train.beta", self.train.beta)
            _power_of_two("train.lr_decay", self.train.lr_decay)
            scaled = net.input_gain * 2 ** (self.fixed.weight_frac + self.fixed.state_frac)
            if scaled != int(scaled):
                raise ValueError(f"network.input_gain={net.input_gain} is not a multiple of "
                                 f"2^-{self.fixed.weight_frac + self.fixed.state_frac}")
            from .numerics import Formats  # derived widths; raises on a too-narrow accumulator
            Formats(self)
        return self

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def create(cls, **sections: dict) -> "Config":
        """Build and validate from plain dicts; raise `ConfigError` with a one-line reason."""
        try:
            return cls.model_validate(sections)
        except ValidationError as exc:
            raise ConfigError(_one_line(exc)) from None

    @classmethod
    def for_algorithm(cls, algo: str, network: dict | None = None, train: dict | None = None,
                      **sections) -> "Config":
        """The algorithm's defaults, then the caller's overrides on top."""
        if algo not in ALGORITHM_DEFAULTS:
            raise ConfigError(f"unknown algorithm {algo!r}; choose one of {sorted(ALGORITHM_DEFAULTS)}")
        base = ALGORITHM_DEFAULTS[algo]
        return cls.create(
            network={**base["network"], **(network or {})},
            train={**base["train"], **(train or {}), "algo": algo},
            **sections,
        )

    @classmethod
    def from_json(cls, text: str) -> "Config":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError("config JSON must be an object with sections such as 'network' and 'train'")
        return cls.create(**data)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def replace(self, **sections: dict) -> "Config":
        """A copy with some fields of some sections changed, validated again."""
        data = self.model_dump()
        for name, fields in sections.items():
            if name not in data:
                raise ConfigError(f"unknown config section {name!r}")
            data[name] = {**data[name], **fields} if isinstance(data[name], dict) else fields
        return Config.create(**data)

    @property
    def fingerprint(self) -> str:
        """Hash of what the network computes (not how it was trained): 16 hex digits."""
        exclude: dict = {"train": True, "hw": True, "device": MODEL_ONLY_DEVICE}
        if self.numerics == "float":
            exclude.update(fixed=True, device=True)
        what = self.model_dump(exclude=exclude)
        for section, fields in FINGERPRINT_OPTIONAL.items():   # newer fields at their defaults: the
            for name, default in fields.items():              # fingerprints of older files still hold
                if section in what and what[section].get(name) == default:
                    del what[section][name]
        blob = json.dumps(what, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


#: Fields added after weight files were first written: left out of the fingerprint at these values.
FINGERPRINT_OPTIONAL: dict[str, dict] = {"network": {"init_state": "input", "hidden": 0},   # train is not hashed
                                         "device": {"w_scale": None}}


def _power_of_two(name: str, value: float) -> None:
    import math

    exponent = math.log2(value)
    if exponent != round(exponent):
        raise ValueError(f"{name}={value} must be a power of two in fixed point (it becomes a shift)")


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" + (f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""))
    return "invalid config: " + "; ".join(parts)
