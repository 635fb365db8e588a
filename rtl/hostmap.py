"""The engine's host interface: register map, commands and memory-word packing.

One word-addressed bus (24-bit address, 32-bit data). The top 4 address bits select a
region; the host driver (memprop.rtl.driver) and the RTL both import these constants.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from memprop.model.numerics import Formats

from .schedule import Schedule, ceil_log2

ADDR_BITS = 24
DATA_BITS = 32
REGION_SHIFT = 20

# regions
REG, STATE, INPUT, TARGET, CODES, BIAS, FIXPOINT = range(7)

# registers in REG
R_CMD = 0        # write: command; read: status (bit 0 busy, bit 1 converged, bit 2 write-while-busy)
R_STEPS = 1      # steps of the last relaxation
R_CYCLES = 2     # clock cycles of the last command
R_UPDATES = 3    # update counter t of the random numbers (read/write)
R_SEED = 4       # seed32 of the random numbers (read/write)
R_FP_LO = 5      # config fingerprint, low 32 bits
R_FP_HI = 6      # config fingerprint, high 32 bits
R_INFO = 7       # lanes | n << 8 | batch << 20
R_DELTA = 8      # max |dv| of the last relaxation step
# engine version 2 (docs/hostlink.md, "Weights on a board"); a version-1 engine reads them as 0
R_VERSION = 9    # ENGINE_VERSION << 24 | feature bits
R_DESIGN_LO = 10  # design id (design_id(cfg)): the whole Config the design was generated from
R_DESIGN_HI = 11
R_COMMANDS = 12  # commands accepted since reset (mod 2^32): a host that lost a reply asks it
R_CHECKSUM = 13  # result of the last CHECKSUM command
R_DECAY = 14     # learning-rate decay steps e (epochs), a Config with train.lr_decay < 1 only; reads min(e, 31)

#: R_DECAY saturates here: every LR_SHIFT_l >= 1 and the decay adds >= 1 shift a step, so from
#: 31 steps on every rate's shift is at LR_SHIFT_MAX = 31 (docs/numerics.md, section 5).
DECAY_STEPS_MAX = 31
DECAY_BITS = 5

# commands: opcode | sign << 4 | set << 6 | slot << 8 | store << 16
OP_RELAX, OP_STORE, OP_RESTORE, OP_LEARN, OP_STEP = 1, 2, 3, 4, 5
# engine version 2: CHECKSUM(bank) -> R_CHECKSUM; BEGIN_LOAD sends CODES/BIAS/R_UPDATES/R_SEED
# writes to the shadow bank; COMMIT makes the shadow bank the active one
OP_CHECKSUM, OP_BEGIN_LOAD, OP_COMMIT = 6, 7, 8
BANK_ACTIVE, BANK_SHADOW = 0, 1         # the `set` field of CHECKSUM

ENGINE_VERSION = 2
FEATURE_ATOMIC_LOAD = 1                 # shadow bank + COMMIT
FEATURE_CHECKSUM = 2                    # the CHECKSUM command
FEATURE_RELAX_STORE = 4                 # RELAX / STEP with the store bit: every write-back also lands in
                                        # fixed point (set, slot), so no STORE follows (all units relaxed)
SIGN_FREE, SIGN_PLUS, SIGN_MINUS = 0, 1, 2
SET_LO, SET_HI, SET_FREE = 0, 1, 2      # fixed-point store sets: learning reads HI and LO

STATUS_BUSY, STATUS_CONVERGED, STATUS_ERROR = 1, 2, 4
STATUS_LOADING = 8                      # between BEGIN_LOAD and COMMIT (engine version 2)


#: Designs of at least this many MAC lanes have FEATURE_RELAX_STORE (see Layout.relax_store).
RELAX_STORE_LANES = 8


def command(op: int, sign: int = 0, set_: int = 0, slot: int = 0, store: bool = False) -> int:
    return op | (sign << 4) | (set_ << 6) | (slot << 8) | (int(store) << 16)


def address(region: int, offset: int) -> int:
    if not 0 <= offset < (1 << REGION_SHIFT):
        raise ValueError(f"offset {offset} outside a region")
    return (region << REGION_SHIFT) | offset


@dataclass(frozen=True)
class Layout:
    """Widths and packings of one configuration's memories."""

    fmt: Formats

    @cached_property
    def schedule(self) -> Schedule:
        return Schedule(self.fmt.cfg)

    @property
    def lanes(self) -> int:
        return self.fmt.cfg.hw.lanes

    @property
    def lane_bits(self) -> int:
        return ceil_log2(self.lanes)

    @property
    def n_bits(self) -> int:
        return max(ceil_log2(self.fmt.cfg.network.n), 1)

    @property
    def batch(self) -> int:
        return self.fmt.cfg.train.batch_size

    @property
    def slot_bits(self) -> int:
        return max(ceil_log2(self.batch), 1)

    @property
    def devices(self) -> int:
        return self.fmt.device.devices

    @property
    def code_bits(self) -> int:
        return max(ceil_log2(self.fmt.device.levels), 1)

    @property
    def class_bits(self) -> int:
        return ceil_log2(self.fmt.device.classes)

    @property
    def entry_bits(self) -> int:
        return self.devices * (self.code_bits + self.class_bits)

    def pack_entry(self, codes, classes) -> int:
        """codes/classes: one value per device."""
        word, at = 0, 0
        for d in range(self.devices):
            word |= int(codes[d]) << at
            at += self.code_bits
            word |= int(classes[d]) << at
            at += self.class_bits
        return word

    def unpack_entry(self, word: int) -> tuple[list[int], list[int]]:
        codes, classes, at = [], [], 0
        for _ in range(self.devices):
            codes.append((word >> at) & ((1 << self.code_bits) - 1))
            at += self.code_bits
            classes.append((word >> at) & ((1 << self.class_bits) - 1) if self.class_bits else 0)
            at += self.class_bits
        return codes, classes

    def code_offset(self, k: int) -> int:
        """CODES region offset of stream position k: word << lane_bits | lane."""
        return ((k // self.lanes) << self.lane_bits) | (k % self.lanes)

    @property
    def relax_store(self) -> bool:
        """Whether RELAX / STEP can store their fixed point as they go (FEATURE_RELAX_STORE): only when
        a step writes every unit back, so that the last step's write-backs are the whole state, and
        from RELAX_STORE_LANES lanes (a narrow design, the iCE40's, has no logic cells to spare for
        it and spends a small share of its cycles on STORE)."""
        return len(self.schedule.rows) == self.fmt.cfg.network.n and self.lanes >= RELAX_STORE_LANES

    def fixpoint_offset(self, set_: int, slot: int, i: int) -> int:
        return (set_ << (self.slot_bits + self.n_bits)) | (slot << self.n_bits) | i

    @staticmethod
    def signed(word: int, bits: int = DATA_BITS) -> int:
        word &= (1 << bits) - 1
        return word - (1 << bits) if word >> (bits - 1) else word

    def image(self, codes_w: np.ndarray, class_w: np.ndarray) -> list[tuple[int, int]]:
        """(CODES offset, packed entry) for every stream position: what the host writes."""
        img = self.schedule.code_image(codes_w, class_w)
        return [(self.code_offset(k), self.pack_entry(img["codes"][:, k], img["classes"][:, k]))
                for k in range(self.schedule.length)]


#: The `train` fields the engine is generated from (learning constants, slots); the others
#: (epochs, the seed's reset value, ...) do not reach the hardware.
DESIGN_TRAIN_FIELDS = ("lr", "beta", "batch_size", "nudge", "max_step")


def design_id(cfg) -> str:
    """16 hex digits naming the whole design a Config generates: the fingerprint's sections
    (what the network computes), the learning constants and the lanes. Two Configs with the same
    fingerprint can still differ here (another learning rate, minibatch or P); the host looks up
    a board's Config by this id."""
    what = cfg.model_dump(include={"numerics", "network", "fixed", "device", "hw"})
    what["train"] = {k: getattr(cfg.train, k) for k in DESIGN_TRAIN_FIELDS}
    if not what["hw"].get("fold"):          # added later: the unfolded designs keep their ids
        what["hw"].pop("fold", None)
    if not what["hw"].get("keep_sums"):     # added later too
        what["hw"].pop("keep_sums", None)
    what["hw"].pop("dsp", None)             # how the multipliers are built, not what the design does
    # per-layer rates and their decay make another learner; named only when set, so that the
    # designs without them keep their ids
    if cfg.train.layer_lr:
        what["train"]["layer_lr"] = list(cfg.train.layer_lr)
    if cfg.train.lr_decay != 1.0:
        what["train"]["lr_decay"] = cfg.train.lr_decay
    blob = json.dumps(what, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
