"""Host-side driver of the engine, over any transport (simulator, cocotb, UART link).

A transport has two coroutines, `write(addr, data)` and `read(addr) -> int`. The driver
turns model objects (FixedParams, drives, targets) into bus traffic and back, and runs the
same sequence of phases as `model.fixed.eqprop_fixed_update`, so a scoreboard can compare
every intermediate with the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from memprop.model.fixed import FixedDrive, FixedParams, FixedTarget, nudge_sign

from . import hostmap as hm


class Transport(Protocol):
    """`write` and `read` are required. A transport that sees the engine's `busy` pin may also
    offer `wait_idle()`, which the driver then uses instead of polling the status register."""

    async def write(self, addr: int, data: int) -> None: ...
    async def read(self, addr: int) -> int: ...


class EngineError(RuntimeError):
    """The engine refused a command, or is not the design this driver was made for."""


@dataclass
class RelaxResult:
    v: np.ndarray
    steps: int
    converged: bool
    cycles: int


def store_fields(store: tuple[int, int] | None) -> dict:
    """The command fields of a RELAX / STEP that stores its fixed point in `store` = (set, slot)."""
    return {} if store is None else {"set_": store[0], "slot": store[1], "store": True}


class EngineDriver:
    def __init__(self, layout: hm.Layout, transport: Transport):
        self.layout = layout
        self.bus = transport
        self.cfg = layout.fmt.cfg
        self.n = self.cfg.network.n
        self._features: int | None = None

    async def features(self) -> int:
        """The engine's feature bits (R_VERSION), read once."""
        if self._features is None:
            self._features = (await self.reg(hm.R_VERSION)) & 0xFFFFFF
        return self._features

    async def relax_stores(self) -> bool:
        """Whether RELAX can store its fixed point as it goes (hm.FEATURE_RELAX_STORE), sparing a STORE."""
        return self.layout.relax_store and bool(await self.features() & hm.FEATURE_RELAX_STORE)

    # -- registers ------------------------------------------------------------------------------
    async def reg(self, r: int) -> int:
        return await self.bus.read(hm.address(hm.REG, r))

    async def set_reg(self, r: int, value: int) -> None:
        await self.bus.write(hm.address(hm.REG, r), value & 0xFFFFFFFF)

    async def set_decay(self, decay_steps: int) -> None:
        """The learning-rate decay steps of the next LEARNs (model: `decay_steps`, the epochs done).

        A Config whose rates do not decay (train.lr_decay = 1) has no such register: its rates are
        the same at every step, so there is nothing to write."""
        if decay_steps < 0:
            raise ValueError(f"decay_steps must be >= 0, got {decay_steps}")
        if self.layout.fmt.decay_shift:
            await self.set_reg(hm.R_DECAY, min(decay_steps, hm.DECAY_STEPS_MAX))

    async def check_identity(self) -> None:
        """The design must be the one generated from this driver's Config."""
        lo, hi = await self.reg(hm.R_FP_LO), await self.reg(hm.R_FP_HI)
        found = f"{(hi << 32) | lo:016x}"
        if found != self.cfg.fingerprint:
            raise EngineError(f"engine fingerprint {found} does not match the config ({self.cfg.fingerprint})")

    async def run(self, op: int, sign: int = 0, set_: int = 0, slot: int = 0, store: bool = False) -> int:
        """Issue a command and wait until the engine is idle; returns its cycle count."""
        await self.set_reg(hm.R_CMD, hm.command(op, sign, set_, slot, store))
        wait_idle = getattr(self.bus, "wait_idle", None)
        while True:
            if wait_idle is not None:
                await wait_idle()
            status = await self.reg(hm.R_CMD)
            if not status & hm.STATUS_BUSY:
                break
        if status & hm.STATUS_ERROR:
            raise EngineError(f"engine reported an error for command {op}")
        return await self.reg(hm.R_CYCLES)

    # -- memories -------------------------------------------------------------------------------
    async def load_params(self, params: FixedParams) -> None:
        """Codes, biases, t and the seed over the bus. With rounding "carry" every code or bias the host
        writes has its carry zeroed by the engine (the host link has no carry region): training goes on
        from zero carries, so a model whose carries are not zero goes on differently."""
        for offset, word in self.layout.image(params.codes_w, params.class_w):
            await self.bus.write(hm.address(hm.CODES, offset), word)
        for i in range(self.n):
            word = self.layout.pack_entry(params.codes_b[:, i], params.class_b[:, i])
            await self.bus.write(hm.address(hm.BIAS, i), word)
        await self.set_reg(hm.R_UPDATES, params.updates)
        await self.set_reg(hm.R_SEED, self.cfg.train.seed)

    async def read_params(self, template: FixedParams) -> FixedParams:
        """Device codes and device classes as the engine holds them (streamed copies and biases)."""
        sch = self.layout.schedule
        codes = np.zeros((self.layout.devices, sch.length), dtype=np.int64)
        classes = np.zeros_like(codes)
        for k in np.nonzero(sch.stream["valid"])[0]:
            word = await self.bus.read(hm.address(hm.CODES, self.layout.code_offset(int(k))))
            codes[:, k], classes[:, k] = self.layout.unpack_entry(word)
        out = template.copy()
        out.codes_w = sch.codes_from_image(codes, template.codes_w)
        out.class_w = sch.codes_from_image(classes, template.class_w)
        for i in range(self.n):
            word = await self.bus.read(hm.address(hm.BIAS, i))
            out.codes_b[:, i], out.class_b[:, i] = self.layout.unpack_entry(word)
        out.updates = await self.reg(hm.R_UPDATES)
        return out

    async def read_fixpoint(self, set_: int, slot: int) -> np.ndarray:
        """The state stored by STORE(set_, slot)."""
        bits = self.layout.fmt.state_bits
        return np.array([hm.Layout.signed(await self.bus.read(
            hm.address(hm.FIXPOINT, self.layout.fixpoint_offset(set_, slot, i))), 32) for i in range(self.n)],
            dtype=np.int64).clip(-(1 << bits), 1 << bits)

    async def load_sample(self, v0: np.ndarray, x: np.ndarray, target: np.ndarray | None) -> None:
        for i in range(self.n):
            await self.bus.write(hm.address(hm.STATE, i), int(v0[i]) & 0xFFFFFFFF)
            await self.bus.write(hm.address(hm.INPUT, i), int(x[i]) & 0x3)
            if target is not None:
                await self.bus.write(hm.address(hm.TARGET, i), int(target[i]) & 0xFFFFFFFF)

    async def read_state(self) -> np.ndarray:
        bits = self.layout.fmt.state_bits
        return np.array([hm.Layout.signed(await self.bus.read(hm.address(hm.STATE, i)), 32)
                         for i in range(self.n)], dtype=np.int64).clip(-(1 << bits), 1 << bits)

    async def relax(self, sign: int = hm.SIGN_FREE, observe=None, store: tuple[int, int] | None = None) -> RelaxResult:
        """Relax to a fixed point. With `observe(step, v)`, step by step, reading every state. With
        `store=(set, slot)`, the engine stores the fixed point there as it goes (`relax_stores()`)."""
        if observe is not None:
            return await self._relax_observed(sign, observe, store)
        cycles = await self.run(hm.OP_RELAX, sign=sign, **store_fields(store))
        status = await self.reg(hm.R_CMD)
        steps = await self.reg(hm.R_STEPS)
        return RelaxResult(v=await self.read_state(), steps=steps,
                           converged=bool(status & hm.STATUS_CONVERGED), cycles=cycles)

    async def _relax_observed(self, sign: int, observe, store=None) -> RelaxResult:
        cycles = 0
        for step in range(1, self.cfg.network.max_steps + 1):
            r = await self.step(sign, store)
            cycles += r.cycles
            observe(step, r.v)
            if r.converged:
                break
        return RelaxResult(v=r.v, steps=step, converged=r.converged, cycles=cycles)

    async def step(self, sign: int = hm.SIGN_FREE, store: tuple[int, int] | None = None) -> RelaxResult:
        """One relaxation step; `converged` says whether max|dv| <= tol_lsb in it."""
        cycles = await self.run(hm.OP_STEP, sign=sign, **store_fields(store))
        status = await self.reg(hm.R_CMD)
        return RelaxResult(v=await self.read_state(), steps=1, converged=bool(status & hm.STATUS_CONVERGED),
                           cycles=cycles)

    # -- whole operations -------------------------------------------------------------------------
    async def recall(self, drive: FixedDrive) -> list[RelaxResult]:
        """Free relaxation of each sample, as model.fixed.fixed_relax does for a batch."""
        results = []
        for b in range(drive.v0.shape[0]):
            await self.load_sample(drive.v0[b], drive.x[b], None)
            results.append(await self.relax(hm.SIGN_FREE))
        return results

    async def train_minibatch(self, drive: FixedDrive, target: FixedTarget, params_updates: int,
                              observe=None, decay_steps: int = 0) -> dict:
        """The phases of model.fixed.eqprop_fixed_update, sample by sample, then LEARN.

        `observe(sample, phase, step, v)`, when given, sees every relaxation step. `decay_steps`
        is the model's (epochs of learning-rate decay): written to the engine before LEARN.
        """

        def watch(b, phase):
            return None if observe is None else (lambda step, v: observe(b, phase, step, v))

        tr = self.cfg.train
        batch = drive.v0.shape[0]
        if batch > self.layout.batch:
            raise EngineError(f"minibatch of {batch} exceeds the engine's {self.layout.batch} slots")
        sign = nudge_sign(self.cfg, params_updates)
        fused = await self.relax_stores()
        phases = {"free": [], "hi": [], "lo": [], "store_cycles": [], "restore_cycles": [], "relax_store": fused}

        async def store(set_, slot):
            phases["store_cycles"].append(await self.run(hm.OP_STORE, set_=set_, slot=slot))

        async def relax_into(sign_, phase, set_, slot):
            """A phase's relaxation, its fixed point stored in (set_, slot): by the RELAX itself
            where the engine can, else by a STORE after it."""
            r = await self.relax(sign_, watch(slot, phase), store=(set_, slot) if fused else None)
            if not fused:
                await store(set_, slot)
            return r

        for b in range(self.layout.batch):
            if b >= batch:  # an unused slot contributes nothing: HI == LO
                await store(hm.SET_HI, b)
                await store(hm.SET_LO, b)
                continue
            await self.load_sample(drive.v0[b], drive.x[b], target.values[b])
            if tr.nudge == "centered":
                phases["free"].append(await relax_into(hm.SIGN_FREE, "free", hm.SET_FREE, b))
                plus = await relax_into(hm.SIGN_PLUS, "plus", hm.SET_HI, b)
                phases["restore_cycles"].append(await self.run(hm.OP_RESTORE, set_=hm.SET_FREE, slot=b))
                minus = await relax_into(hm.SIGN_MINUS, "minus", hm.SET_LO, b)
                phases["hi"].append(plus)
                phases["lo"].append(minus)
                continue
            free_set, nudged_set = (hm.SET_LO, hm.SET_HI) if sign > 0 else (hm.SET_HI, hm.SET_LO)
            phases["free"].append(await relax_into(hm.SIGN_FREE, "free", free_set, b))
            nudged = await relax_into(hm.SIGN_PLUS if sign > 0 else hm.SIGN_MINUS, "plus" if sign > 0 else "minus",
                                      nudged_set, b)
            phases["hi" if sign > 0 else "lo"].append(nudged)
        await self.set_decay(decay_steps)
        learn_cycles = await self.run(hm.OP_LEARN)
        phases["learn_cycles"] = learn_cycles
        return phases
