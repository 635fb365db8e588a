"""A board in the user's hands: identify it, load and read weights, recall and train on it.

`BoardSession` is what the `memprop board` commands use, over a `SerialTransport` (a board's
USB serial port or the virtual board's pseudo-terminal). Its methods are plain (synchronous)
calls running the async driver on the session's own event loop; inside, `BoardDriver` (an
`EngineDriver`) speaks to the engine:

- the sample is written as bursts (all states, then inputs, then targets) and states are read
  back with pipelined reads, so a recall costs a few frames instead of 3N round trips;
- a command whose response the link lost is resolved with the engine's command counter
  (`R_COMMANDS`) instead of being repeated blindly;
- loads are atomic where the engine has a shadow bank (`BEGIN_LOAD`, writes, `CHECKSUM` of the
  shadow, `COMMIT`): a host that dies half-way leaves the old weights in use, never a mix,
  and the checksum shows which (docs/hostlink.md, "Weights on a board").

Results equal the fixed-point model's bit for bit: the recall draws the same corrupted
copies as `model.recall.evaluate` (it *is* `evaluate`, with the board as the reconstruction),
and `train` streams the samples of `model.training.epoch_samples` minibatch by minibatch, the
protocol of `model_train`, its model twin.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from memprop.model import fixed
from memprop.model.config import Config
from memprop.model.fixed import FixedParams
from memprop.model.numerics import Formats
from memprop.model.training import decay_steps, epoch_samples
from memprop.rtl import hostmap as hm
from memprop.rtl.driver import EngineDriver, EngineError, RelaxResult, store_fields

from . import configs
from .host import LinkError, LinkTimeout, LinkUncertain
from .image import Image, checksum, config_differences, image_of


class BoardError(RuntimeError):
    """A board that cannot be used as asked; the message is one line for the user."""


@dataclass
class Identity:
    """What a board says about itself over the link."""

    fingerprint: str
    lanes: int
    n: int
    batch: int
    link_version: int
    max_burst: int
    clock_hz: int | None = None
    design: str | None = None              # design id (engine version >= 2)
    engine_version: int = 1
    features: int = 0

    @property
    def atomic_load(self) -> bool:
        return bool(self.features & hm.FEATURE_ATOMIC_LOAD)

    @property
    def engine_checksum(self) -> bool:
        return bool(self.features & hm.FEATURE_CHECKSUM)

    @property
    def summary(self) -> str:
        return f"fingerprint {self.fingerprint}, N={self.n}, P={self.lanes}, {self.batch} minibatch slots"


class BoardDriver(EngineDriver):
    """`EngineDriver` with the board's habits (bursts, pipelined reads, command counter)."""

    def __init__(self, layout: hm.Layout, transport, *, commands: int | None = None):
        super().__init__(layout, transport)
        self.read_states = True          # relax() reads the final state back
        self.commands = commands         # the engine's command counter, when it has one
        self.cycles = 0                  # engine cycles of every command run through this driver
        self.command_count = 0

    async def load_sample(self, v0: np.ndarray, x: np.ndarray, target: np.ndarray | None) -> None:
        for i in range(self.n):
            await self.bus.write(hm.address(hm.STATE, i), int(v0[i]) & 0xFFFFFFFF)
        for i in range(self.n):
            await self.bus.write(hm.address(hm.INPUT, i), int(x[i]) & 0x3)
        if target is not None:
            for i in range(self.n):
                await self.bus.write(hm.address(hm.TARGET, i), int(target[i]) & 0xFFFFFFFF)

    async def read_state(self) -> np.ndarray:
        bits = self.layout.fmt.state_bits
        words = await self.bus.read_many([hm.address(hm.STATE, i) for i in range(self.n)])
        return np.array([hm.Layout.signed(w, 32) for w in words], dtype=np.int64).clip(-(1 << bits), 1 << bits)

    async def command(self, op: int, sign: int = 0, set_: int = 0, slot: int = 0, store: bool = False) -> None:
        """Write a command; a lost response is resolved with the command counter."""
        word = hm.command(op, sign, set_, slot, store)
        try:
            await self.set_reg(hm.R_CMD, word)
        except LinkUncertain as exc:
            if self.commands is None:
                raise EngineError(f"{exc}; this engine has no command counter to tell") from None
            count = await self.reg(hm.R_COMMANDS)
            if count == (self.commands + 1) & 0xFFFFFFFF:
                pass                                   # it ran
            elif count == self.commands:
                await self.set_reg(hm.R_CMD, word)     # it did not: send it again
            else:
                raise EngineError(f"{exc}; the command counter moved from {self.commands} to {count}") from None
        if self.commands is not None:
            self.commands = (self.commands + 1) & 0xFFFFFFFF
        self.command_count += 1

    async def wait(self, op: int) -> int:
        """Status after the running command ends (raises when the engine refused it)."""
        while True:
            status = await self.reg(hm.R_CMD)
            if not status & hm.STATUS_BUSY:
                break
        if status & hm.STATUS_ERROR:
            raise EngineError(f"engine reported an error for command {op}")
        return status

    async def run(self, op: int, sign: int = 0, set_: int = 0, slot: int = 0, store: bool = False) -> int:
        await self.command(op, sign, set_, slot, store)
        await self.wait(op)
        cycles = await self.reg(hm.R_CYCLES)
        self.cycles += cycles
        return cycles

    async def relax(self, sign: int = hm.SIGN_FREE, observe=None, store: tuple[int, int] | None = None) -> RelaxResult:
        if observe is not None:
            return await super().relax(sign, observe, store)
        await self.command(hm.OP_RELAX, sign=sign, **store_fields(store))
        status = await self.wait(hm.OP_RELAX)
        addrs = [hm.address(hm.REG, hm.R_STEPS), hm.address(hm.REG, hm.R_CYCLES)]
        if self.read_states:
            addrs += [hm.address(hm.STATE, i) for i in range(self.n)]
        words = await self.bus.read_many(addrs)
        self.cycles += words[1]
        v = None
        if self.read_states:
            bits = self.layout.fmt.state_bits
            v = np.array([hm.Layout.signed(w, 32) for w in words[2:]], np.int64).clip(-(1 << bits), 1 << bits)
        return RelaxResult(v=v, steps=words[0], converged=bool(status & hm.STATUS_CONVERGED), cycles=words[1])


@dataclass
class LoadReport:
    words: int
    bytes_sent: int
    bytes_received: int
    payload_bytes: int
    checksum: int
    atomic: bool
    seconds: float
    baud: int | None
    verify_bytes: int = 0          # both directions, checking the checksum (and committing)

    @property
    def efficiency(self) -> float:
        """Payload (the image's data words, 4 bytes each) / every byte the host sent for the load
        (frame headers, CRCs, the identity reads and the BEGIN_LOAD command included)."""
        return self.payload_bytes / self.bytes_sent if self.bytes_sent else 0.0

    @property
    def wire_seconds(self) -> float | None:
        """The transfer's time on the wire at the baud rate (10 bits a byte, 8N1; the two
        directions overlap, the host's is the longer)."""
        if not self.baud:
            return None
        return 10 * max(self.bytes_sent, self.bytes_received) / self.baud

    def to_dict(self) -> dict:
        return {"words": self.words, "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
                "payload_bytes": self.payload_bytes, "efficiency": round(self.efficiency, 4),
                "verify_bytes": self.verify_bytes,
                "checksum": f"{self.checksum:08x}", "atomic": self.atomic, "seconds": round(self.seconds, 3),
                "baud": self.baud, "wire_seconds": None if self.wire_seconds is None else round(self.wire_seconds, 4)}


@dataclass
class RecallStats:
    recalls: int = 0
    cycles: int = 0
    steps: int = 0
    clock_hz: int | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        per = self.cycles / self.recalls if self.recalls else 0.0
        return {"recalls": self.recalls, "board_cycles": self.cycles, "cycles_per_recall": round(per, 1),
                "steps_per_recall": round(self.steps / self.recalls, 2) if self.recalls else 0.0,
                "clock_mhz": None if self.clock_hz is None else self.clock_hz / 1e6,
                "us_per_recall": None if not self.clock_hz else round(per / self.clock_hz * 1e6, 2),
                "host_seconds": round(self.seconds, 2)}


@dataclass
class TrainStats:
    epochs: int = 0
    samples: int = 0
    minibatches: int = 0
    cycles: int = 0
    learn_cycles: int = 0
    seconds: float = 0.0
    updates: int = 0
    clock_hz: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        board_s = self.cycles / self.clock_hz if self.clock_hz else None
        return {"epochs": self.epochs, "samples": self.samples, "minibatches": self.minibatches,
                "board_cycles": self.cycles, "learn_cycles": self.learn_cycles, "updates": self.updates,
                "board_seconds": None if board_s is None else round(board_s, 4),
                "host_seconds": round(self.seconds, 2)}


def minibatches(cfg: Config, patterns: np.ndarray, epochs: int, seed: int):
    """(epoch, inputs, targets) of each minibatch: the model's training protocol (noisy copies of
    every pattern, `repeats` times an epoch, clean targets) from `np.random.default_rng(seed)`.

    The run is a schedule of its own: `epochs` epochs, over which a noise curriculum ramps and
    after whose epochs the learning rate decays (`decay_steps`), as `memprop train` would."""
    rng = np.random.default_rng(seed)
    cfg = cfg.replace(train={"epochs": epochs})
    batch = cfg.train.batch_size
    for epoch in range(1, epochs + 1):
        inputs, targets = epoch_samples(cfg, patterns, rng, epoch)
        for start in range(0, len(inputs), batch):
            yield epoch, inputs[start:start + batch], targets[start:start + batch]


def model_train(cfg: Config, params: FixedParams, patterns: np.ndarray, epochs: int, seed: int) -> FixedParams:
    """The fixed-point model doing what `BoardSession.train` makes the board do (a copy is trained)."""
    fmt = Formats(cfg)
    params = params.copy()
    for epoch, x, y in minibatches(cfg, patterns, epochs, seed):
        fixed.eqprop_fixed_update(fmt, params, fixed.fixed_drive_for(fmt, x), fixed.fixed_target_for(fmt, y),
                                  decay_steps(cfg, epoch))
    return params


def template(cfg: Config) -> FixedParams:
    """Codes and classes of the synapses the engine does not hold (outside the mask): the ones
    every fixed-point weight file has (programmed zero weights, fabricated classes)."""
    n = cfg.network.n
    return FixedParams.from_float(cfg, np.zeros((n, n)), np.zeros(n))


class BoardSession:
    """One board over one transport. Plain methods; `close()` (or `with`) closes the port."""

    def __init__(self, transport, *, port: str = "", config: Config | None = None, baud: int | None = None):
        self.transport = transport
        self.port = port
        self.baud = baud
        self._user_config = config
        self._loop = asyncio.new_event_loop()
        self.identity: Identity | None = None
        self.known: configs.Known | None = None
        self.driver: BoardDriver | None = None

    # -- opening ------------------------------------------------------------------------------------
    @classmethod
    def open(cls, port: str, baud: int = 1_000_000, *, config: Config | None = None, timeout: float = 1.0,
             quiet: float = 0.2, retries: int = 3) -> "BoardSession":
        """Open `port`, identify the board and find its Config; BoardError names what is wrong."""
        from .host import SerialTransport

        try:
            import serial
        except ImportError:
            raise BoardError("the board commands need pyserial: pip install 'memprop[board]'") from None
        try:
            transport = SerialTransport(port, baud, timeout=timeout, quiet=quiet, retries=retries)
        except (serial.SerialException, OSError, ValueError) as exc:
            reason = str(exc).split(": ", 1)[-1] if "could not open port" in str(exc) else str(exc)
            raise BoardError(f"cannot open serial port {port}: {reason}") from None
        session = cls(transport, port=port, config=config, baud=baud)
        try:
            transport.port.reset_input_buffer()
            session.connect()
        except BaseException:
            session.close()
            raise
        return session

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()
        if not self._loop.is_closed():
            self._loop.close()

    def _run(self, coro):
        try:
            return self._loop.run_until_complete(coro)
        except LinkTimeout as exc:
            raise BoardError(f"no answer from the board{self._where}: {exc}") from None
        except LinkError as exc:
            raise BoardError(f"the link to the board{self._where} failed: {exc}") from None

    @property
    def _where(self) -> str:
        return f" on {self.port}" if self.port else ""

    def connect(self) -> Identity:
        """Ask the link and the engine who they are, find the Config, make the driver."""
        try:
            ident = self._loop.run_until_complete(self._identify())
        except LinkTimeout:
            raise BoardError(f"no answer from a board{self._where}"
                             + (f" at {self.baud} baud" if self.baud else "")
                             + ": is it programmed with a memprop bitstream and is this its UART port?") from None
        except LinkError as exc:
            raise BoardError(f"the device{self._where} does not speak the memprop link: {exc}") from None
        self.identity = ident
        self.known = self._find_config(ident)
        cfg = self.known.cfg if self.known else None
        if cfg is not None:
            self.driver = BoardDriver(hm.Layout(Formats(cfg)), self.transport, commands=self._commands)
        return ident

    async def _identify(self) -> Identity:
        t = self.transport
        version, burst = await t.info()
        lo, hi, info = await t.read_many([hm.address(hm.REG, r) for r in (hm.R_FP_LO, hm.R_FP_HI, hm.R_INFO)])
        ident = Identity(fingerprint=f"{(hi << 32) | lo:016x}", lanes=info & 0xFF, n=(info >> 8) & 0xFFF,
                         batch=(info >> 20) & 0xFFF, link_version=version, max_burst=burst,
                         clock_hz=t.clock_hz)
        self._commands = None
        # a command a previous host started may still run (a LEARN): let it finish first
        deadline = time.monotonic() + 30
        while await t.read(hm.address(hm.REG, hm.R_CMD)) & hm.STATUS_BUSY and time.monotonic() < deadline:
            pass
        word = await t.read(hm.address(hm.REG, hm.R_VERSION))     # 0 on a version-1 engine
        ident.engine_version, ident.features = max(word >> 24, 1), word & 0xFFFF
        if ident.engine_version >= 2:
            dlo, dhi, count = await t.read_many([hm.address(hm.REG, r)
                                                 for r in (hm.R_DESIGN_LO, hm.R_DESIGN_HI, hm.R_COMMANDS)])
            ident.design = f"{(dhi << 32) | dlo:016x}"
            self._commands = count
        return ident

    def _find_config(self, ident: Identity) -> configs.Known | None:
        """The user's --config (it must match), else the first known Config that matches."""
        if self._user_config is not None:
            cfg = self._user_config
            if not configs.matches(cfg, ident.fingerprint, ident.lanes, ident.n, ident.batch, ident.design):
                raise BoardError(f"the board runs a design with {ident.summary}; --config describes "
                                 f"fingerprint {cfg.fingerprint}, N={cfg.network.n}, P={cfg.hw.lanes}, "
                                 f"{cfg.train.batch_size} minibatch slots")
            return configs.Known(cfg, "--config")
        for k in configs.known():
            if configs.matches(k.cfg, ident.fingerprint, ident.lanes, ident.n, ident.batch, ident.design):
                return k
        return None

    @property
    def cfg(self) -> Config:
        """The board's Config; BoardError when this machine does not know it."""
        if self.known is None:
            ident = self.identity
            raise BoardError(f"this machine does not know the board's design ({ident.summary}); pass --config "
                             "with the config.json that `memprop build` wrote next to its bitstream")
        return self.known.cfg

    @property
    def clock_hz(self) -> int | None:
        return (self.identity.clock_hz if self.identity else None) or (self.known.clock_hz if self.known else None)

    # -- registers -------------------------------------------------------------------------------
    def registers(self) -> dict:
        """Engine counters and state: update counter t, seed, last command's cycles and steps, status."""
        names = {"status": hm.R_CMD, "steps": hm.R_STEPS, "cycles": hm.R_CYCLES, "updates": hm.R_UPDATES,
                 "seed": hm.R_SEED}
        if self.identity and self.identity.engine_version >= 2:
            names["commands"] = hm.R_COMMANDS
        words = self._run(self.transport.read_many([hm.address(hm.REG, r) for r in names.values()]))
        out = dict(zip(names, words))
        out["busy"] = bool(out["status"] & hm.STATUS_BUSY)
        out["loading"] = bool(out["status"] & hm.STATUS_LOADING)
        return out

    def info(self) -> dict:
        ident = self.identity
        out = {"port": self.port, "fingerprint": ident.fingerprint, "n": ident.n, "lanes": ident.lanes,
               "batch": ident.batch, "link_version": ident.link_version, "max_burst": ident.max_burst,
               "engine_version": ident.engine_version, "design": ident.design,
               "clock_mhz": None if not self.clock_hz else self.clock_hz / 1e6, "atomic_load": ident.atomic_load}
        if self.known is not None:
            cfg = self.known.cfg
            net = cfg.network
            out.update({"config_source": self.known.source, "board": self.known.board, "preset": cfg.device.preset,
                        "topology": net.topology + (f" K={net.band}" if net.topology == "band" else ""),
                        "synapses": int(hm.Layout(Formats(cfg)).schedule.products)})
        out["registers"] = self.registers()
        out["host"] = {"frames": self.transport.frames, "retried": self.transport.retried}
        return out

    # -- weights ---------------------------------------------------------------------------------
    def check_weights(self, wcfg: Config, source: str) -> Config:
        """The board's Config if the weight file fits it; BoardError saying what differs."""
        ident = self.identity
        if wcfg.numerics != "fixed":
            raise BoardError(f"{source}: float weights; the board holds device codes (train with --numerics "
                             "fixed, or program them with `memprop export --from-float` and load that)")
        if wcfg.fingerprint != ident.fingerprint:
            if self.known is not None:
                diff = config_differences(wcfg, self.known.cfg)
                raise BoardError(f"{source} was made for another configuration than the board's: "
                                 + "; ".join(f"{d} on the board" for d in diff[:6]) + ("; ..." if len(diff) > 6 else ""))
            raise BoardError(f"{source} was made for config {wcfg.fingerprint} (N={wcfg.network.n}, "
                             f"{wcfg.device.preset}); the board runs {ident.summary}")
        if self.known is not None:
            return self.known.cfg
        # a design this machine has not seen: the weight file's network at the board's lanes and slots
        cfg = wcfg.replace(hw={"lanes": ident.lanes}, train={"batch_size": ident.batch})
        self.known = configs.Known(cfg, source)
        self.driver = BoardDriver(hm.Layout(Formats(cfg)), self.transport, commands=self._commands)
        return cfg

    def load(self, params: FixedParams, wcfg: Config, *, source: str = "weights", progress=None) -> LoadReport:
        """Write the weights (checked against the board's design) and verify them by checksum."""
        cfg = self.check_weights(wcfg, source)
        image = image_of(params, cfg, seed=wcfg.train.seed)
        return self._run(self._load(image, progress))

    async def _load(self, image: Image, progress) -> LoadReport:
        t, driver = self.transport, self.driver
        before = (t.bytes_sent, t.bytes_received, t.payload_bytes)
        start = time.monotonic()
        atomic = self.identity.atomic_load
        await driver.check_identity()
        if atomic:
            await driver.run(hm.OP_BEGIN_LOAD)
        writes = image.writes()
        chunk = max(1, t.max_burst)
        for at in range(0, len(writes), chunk):
            for addr, word in writes[at:at + chunk]:
                await t.write(addr, word)
            await t.push()
            if progress is not None:
                progress(min(chunk, len(writes) - at))
        await t.flush()
        sent = (t.bytes_sent - before[0], t.bytes_received - before[1], 4 * len(writes))
        want = image.checksum
        if atomic:
            got = await self._checksum(hm.BANK_SHADOW)
            if got != want:
                raise BoardError(f"the loaded weights read back with checksum {got:08x}, expected {want:08x}; "
                                 "the board keeps its previous weights (load again)")
            await driver.run(hm.OP_COMMIT)
            got = await self._checksum(hm.BANK_ACTIVE)
        elif self.identity.engine_checksum:
            got = await self._checksum(hm.BANK_ACTIVE)
        else:
            got = await self._read_checksum()
        if got != want:
            raise BoardError(f"the board holds weights with checksum {got:08x}, expected {want:08x}")
        verify = t.bytes_sent + t.bytes_received - before[0] - before[1] - sent[0] - sent[1]
        return LoadReport(words=len(writes), bytes_sent=sent[0], bytes_received=sent[1], payload_bytes=sent[2],
                          checksum=got, atomic=atomic, seconds=time.monotonic() - start, baud=self.baud,
                          verify_bytes=verify)

    async def _checksum(self, bank: int) -> int:
        await self.driver.run(hm.OP_CHECKSUM, set_=bank)
        return await self.driver.reg(hm.R_CHECKSUM)

    async def _read_words(self, progress=None) -> tuple[list[int], list[int], int, int]:
        lay = self.driver.layout
        addrs = [hm.address(hm.CODES, lay.code_offset(k)) for k in range(lay.schedule.length)]
        addrs += [hm.address(hm.BIAS, i) for i in range(self.driver.n)]
        words = []
        for at in range(0, len(addrs), 256):
            words += await self.transport.read_many(addrs[at:at + 256])
            if progress is not None:
                progress(len(addrs[at:at + 256]))
        updates, seed = await self.transport.read_many([hm.address(hm.REG, hm.R_UPDATES),
                                                          hm.address(hm.REG, hm.R_SEED)])
        k = lay.schedule.length
        return words[:k], words[k:], updates, seed

    async def _read_checksum(self) -> int:
        codes, bias, updates, seed = await self._read_words()
        return checksum(codes, bias, updates, seed, self.driver.layout.entry_bits)

    def checksum(self) -> int:
        """The weight checksum of what the engine computes with (the engine's, or read back)."""
        if self.identity.engine_checksum:
            return self._run(self._checksum(hm.BANK_ACTIVE))
        return self._run(self._read_checksum())

    def read(self, progress=None) -> tuple[FixedParams, Config, int]:
        """(device codes as a weight set, the Config to save them with, checksum), verified."""
        cfg = self.cfg
        codes, bias, updates, seed = self._run(self._read_words(progress))
        image = Image(cfg, codes, bias, updates, seed)
        if self.identity.engine_checksum:
            engine = self._run(self._checksum(hm.BANK_ACTIVE))
            if engine != image.checksum:
                raise BoardError(f"the codes read back have checksum {image.checksum:08x}, the engine computes "
                                 f"{engine:08x}; read again")
        params = image.params(template(cfg))
        return params, cfg.replace(train={"seed": seed}), image.checksum

    # -- recall and training -------------------------------------------------------------------
    def recall(self, patterns, flip: float, trials: int, seed: int = 0, progress=None):
        """`model.recall.evaluate` with the board reconstructing: (RecallResult, RecallStats)."""
        from memprop.model import recall as recall_model
        from memprop.model.patterns import check_size

        cfg = self.cfg
        check_size(patterns, cfg.network.pattern_units, "the board's network")
        stats = RecallStats(clock_hz=self.clock_hz)
        fmt = Formats(cfg)
        start = time.monotonic()

        async def reconstruct(noisy: np.ndarray) -> np.ndarray:
            drive = fixed.fixed_drive_for(fmt, noisy)
            driver = self.driver
            driver.read_states = True
            await driver.check_identity()
            out = np.zeros((len(noisy), cfg.network.n), np.int64)
            for b in range(len(noisy)):
                await driver.load_sample(drive.v0[b], drive.x[b], None)
                r = await driver.relax(hm.SIGN_FREE)
                out[b] = r.v
                stats.recalls += 1
                stats.cycles += r.cycles
                stats.steps += r.steps
                if progress is not None:
                    progress(1)
            return recall_model.fixed_outputs(fmt, out)

        result = recall_model.evaluate(None, cfg, patterns, flip, trials, seed,
                                       states_with=lambda noisy: self._run(reconstruct(noisy)))
        stats.seconds = time.monotonic() - start
        return result, stats

    def train(self, patterns, epochs: int, seed: int = 0, progress=None) -> TrainStats:
        """In-situ EqProp on the board: the model's protocol (`minibatches`), one LEARN a minibatch."""
        from memprop.model.patterns import check_size

        cfg = self.cfg
        check_size(patterns, cfg.network.n, "the board's network")
        return self._run(self._train(cfg, patterns.values, epochs, seed, progress))

    async def _train(self, cfg: Config, patterns: np.ndarray, epochs: int, seed: int, progress) -> TrainStats:
        fmt = Formats(cfg)
        driver = self.driver
        await driver.check_identity()
        board_seed = await driver.reg(hm.R_SEED)
        updates = await driver.reg(hm.R_UPDATES)
        run_cfg = cfg.replace(train={"seed": board_seed})
        driver.cfg = run_cfg                     # random_sign nudging reads the seed from here
        driver.read_states = False
        stats = TrainStats(clock_hz=self.clock_hz)
        start = time.monotonic()
        cycles0 = driver.cycles
        try:
            for epoch, x, y in minibatches(run_cfg, patterns, epochs, seed):
                phases = await driver.train_minibatch(fixed.fixed_drive_for(fmt, x), fixed.fixed_target_for(fmt, y),
                                                      updates, decay_steps=decay_steps(cfg, epoch))
                updates += 1
                stats.learn_cycles += phases["learn_cycles"]
                stats.samples += len(x)
                stats.minibatches += 1
                stats.epochs = epoch
                if progress is not None:
                    progress(len(x))
        finally:
            driver.read_states = True
            driver.cfg = cfg
        stats.cycles = driver.cycles - cycles0
        stats.updates = await driver.reg(hm.R_UPDATES)
        if stats.updates != updates & 0xFFFFFFFF:
            raise BoardError(f"the board's update counter is {stats.updates}, expected {updates}")
        stats.seconds = time.monotonic() - start
        return stats
