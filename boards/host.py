"""The host side of the link (docs/hostlink.md): frames, a serial transport, a simulated one.

Three layers:

- frame encode/decode (`encode_read`, `encode_write`, `encode_burst`, `decode_response`, ...)
  with the link's own reference CRC (`memprop.rtl.link.crc16`);
- `LinkClient`: the `EngineDriver` transport logic over any byte pipe. Writes are *posted*:
  consecutive addresses are gathered into BURST frames (up to the link's buffer) and up to
  `window` frames are in flight before their responses are checked. `read()` and `flush()`
  wait for every outstanding response, so a driver sees a failed write at its next read at
  the latest (the `EngineDriver` reads status after every command). Any error (timeout,
  corrupt response, a frame the link rejected) raises a `LinkError`, drops what is in flight
  (the link executes nothing after a bad frame until the line has been quiet) and
  resynchronises the pipe;
- byte pipes: `SerialTransport` (pyserial, imported only when used) and
  `SimulatedLinkTransport` (the link and engine in Amaranth's simulator, byte by byte).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from memprop.rtl import link as lk

# -- frames ----------------------------------------------------------------------------------------


class LinkError(RuntimeError):
    """The link did not carry out a request."""


class LinkTimeout(LinkError):
    """No complete response arrived in time."""


class LinkCorrupt(LinkError):
    """A response arrived damaged (sync byte, CRC, length) or answers another request."""


class LinkRejected(LinkError):
    """The link answered with an error status: the frame was not executed."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def _check_addr(addr: int) -> None:
    if not isinstance(addr, int) or not 0 <= addr < 1 << 24:
        raise ValueError(f"address {addr!r} is not a 24-bit bus address")


def _word(data: int) -> bytes:
    if not isinstance(data, int) or not 0 <= data < 1 << 32:
        raise ValueError(f"data word {data!r} is not an unsigned 32-bit value")
    return data.to_bytes(4, "big")


def _frame(op: int, addr: int, payload: bytes = b"") -> bytes:
    _check_addr(addr)
    body = bytes([lk.SYNC_REQUEST, op]) + addr.to_bytes(3, "big") + payload
    return body + lk.crc16(body).to_bytes(2, "big")


def encode_read(addr: int) -> bytes:
    return _frame(lk.OP_READ, addr)


def encode_write(addr: int, data: int) -> bytes:
    return _frame(lk.OP_WRITE, addr, _word(data))


def encode_burst(addr: int, words) -> bytes:
    words = list(words)
    if not 1 <= len(words) <= lk.MAX_BURST:
        raise ValueError(f"a burst carries 1..{lk.MAX_BURST} words, not {len(words)}")
    if addr + len(words) > 1 << 24:
        raise ValueError(f"burst of {len(words)} words from {addr:#08x} runs past the address space")
    return _frame(lk.OP_BURST, addr, bytes([len(words) - 1]) + b"".join(_word(w) for w in words))


def encode_info() -> bytes:
    return _frame(lk.OP_INFO, 0)


@dataclass(frozen=True)
class Request:
    op: int
    addr: int
    words: tuple[int, ...]


def decode_request(frame: bytes) -> Request:
    """The inverse of the encoders (for tests and host-side models); ValueError when malformed."""
    frame = bytes(frame)
    if len(frame) < 7 or frame[0] != lk.SYNC_REQUEST:
        raise ValueError("not a request frame")
    if lk.crc16(frame) != 0:
        raise ValueError("request CRC mismatch")
    op, addr, body = frame[1], int.from_bytes(frame[2:5], "big"), frame[5:-2]
    if op in (lk.OP_READ, lk.OP_INFO):
        words = ()
        if body:
            raise ValueError("READ/INFO frames carry no data")
    elif op == lk.OP_WRITE:
        if len(body) != 4:
            raise ValueError("WRITE carries one word")
        words = (int.from_bytes(body, "big"),)
    elif op == lk.OP_BURST:
        if not body or len(body) != 1 + 4 * (body[0] + 1):
            raise ValueError("BURST length does not match its count byte")
        words = tuple(int.from_bytes(body[1 + 4 * i: 5 + 4 * i], "big") for i in range(body[0] + 1))
    else:
        raise ValueError(f"unknown opcode {op:#04x}")
    return Request(op, addr, words)


@dataclass(frozen=True)
class Response:
    op: int
    status: int
    data: int

    @property
    def ok(self) -> bool:
        return self.status == lk.ST_OK


def encode_response(op: int, status: int, data: int = 0) -> bytes:
    body = bytes([lk.SYNC_RESPONSE, op, status]) + _word(data)
    return body + lk.crc16(body).to_bytes(2, "big")


def decode_response(raw: bytes) -> Response:
    raw = bytes(raw)
    if len(raw) != lk.RESPONSE_BYTES:
        raise LinkCorrupt(f"response of {len(raw)} bytes, expected {lk.RESPONSE_BYTES}: {raw.hex()}")
    if raw[0] != lk.SYNC_RESPONSE:
        raise LinkCorrupt(f"response starts with {raw[0]:#04x}, not the sync byte {lk.SYNC_RESPONSE:#04x}: {raw.hex()}")
    if lk.crc16(raw) != 0:
        raise LinkCorrupt(f"response CRC mismatch: {raw.hex()}")
    return Response(op=raw[1], status=raw[2], data=int.from_bytes(raw[3:7], "big"))


def op_name(op: int) -> str:
    return lk.OPCODES.get(op, f"opcode {op:#04x}")


def status_name(status: int) -> str:
    return lk.STATUS.get(status, f"status {status:#04x}")


# -- the transport logic ----------------------------------------------------------------------------


class LinkUncertain(LinkError):
    """A request that must not be repeated (an engine command) lost its response: it may or may
    not have been carried out. The caller finds out (the engine counts its commands)."""


@dataclass
class _Pending:
    op: int
    addr: int
    expect: int | None        # the data a good response carries (None: any, a READ's word)
    frame: bytes
    safe: bool                # repeating it is harmless (a read, a memory write)


def command_addresses() -> frozenset[int]:
    """Bus addresses whose writes start something (engine commands): never repeated blindly."""
    from memprop.rtl import hostmap as hm

    return frozenset({hm.address(hm.REG, hm.R_CMD)})


class LinkClient:
    """`write`/`read` for `EngineDriver` over a byte pipe (`send`, `recv`, `resync` coroutines).

    Retries (`retries` per request, default 3): a request the link rejected was not executed
    (nor was anything sent behind it), and a damaged or missing response may hide an executed
    request; either way, after resynchronising, every request still in flight is sent again when
    repeating it is harmless (reads, memory and register writes). A write to an address in
    `commands` (the engine's command register) is sent alone and never repeated blindly: if
    its response is lost or damaged the client raises `LinkUncertain` and the caller decides
    (`memprop.boards.session.BoardDriver` asks the engine's command counter). A rejected
    command was not executed and is sent again.

    Byte counters: `bytes_sent`, `bytes_received`, `payload_bytes` (the 4-byte data words of
    writes), `retried` (requests sent again), `frames` (frames sent).
    """

    def __init__(self, pipe, *, max_burst: int = lk.MAX_BURST, window: int = 4, posted: bool = True,
                 retries: int = 3, commands: frozenset[int] | None = None):
        if not 1 <= max_burst <= lk.MAX_BURST:
            raise ValueError(f"max_burst must be in 1..{lk.MAX_BURST}, not {max_burst!r}")
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window!r}")
        if retries < 0:
            raise ValueError(f"retries must be at least 0, not {retries!r}")
        self.pipe = pipe
        self.max_burst = max_burst
        self.window = window
        self.posted = posted
        self.retries = retries
        self.commands = command_addresses() if commands is None else frozenset(commands)
        self._run_addr = 0
        self._run: list[int] = []
        self._outstanding: deque[_Pending] = deque()
        self.frames = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.payload_bytes = 0
        self.retried = 0
        self.info_word = 0
        self._answered = False        # a good response has arrived since the client was made

    async def info(self) -> tuple[int, int]:
        """(link version, burst capacity in words); also sets `max_burst` to the link's."""
        await self.flush()
        resp = await self._transact(encode_info(), lk.OP_INFO, 0)
        self.info_word = resp.data
        version, burst = resp.data >> 24, ((resp.data >> 16) & 0xFF) + 1
        if version != lk.VERSION:
            raise LinkCorrupt(f"link version {version}, this host speaks version {lk.VERSION}")
        self.max_burst = min(self.max_burst, burst)
        return version, burst

    async def write(self, addr: int, data: int) -> None:
        _check_addr(addr)
        _word(data)
        if addr in self.commands:
            await self.flush()
            await self._transact(encode_write(addr, data), lk.OP_WRITE, addr, expect=0, safe=False)
            return
        if not self.posted:
            await self._transact(encode_write(addr, data), lk.OP_WRITE, addr, expect=0)
            return
        if self._run and (addr != self._run_addr + len(self._run) or len(self._run) >= self.max_burst):
            await self._send_run()
        if not self._run:
            self._run_addr = addr
        self._run.append(data)

    async def read(self, addr: int) -> int:
        await self.flush()
        return (await self._transact(encode_read(addr), lk.OP_READ, addr)).data

    async def read_many(self, addrs) -> list[int]:
        """Reads of many addresses with up to `window` requests in flight (no protocol change: the
        responses come back in order), instead of one round trip each."""
        await self.flush()
        out: list[int] = []
        for addr in addrs:
            await self._send(_Pending(lk.OP_READ, addr, None, encode_read(addr), True))
            if len(self._outstanding) >= self.window:
                out.append((await self._collect()).data)
        while self._outstanding:
            out.append((await self._collect()).data)
        return out

    async def push(self) -> None:
        """Send the gathered writes now, without waiting for their responses."""
        await self._send_run()

    async def flush(self) -> None:
        """Send the gathered writes and check every outstanding response."""
        await self._send_run()
        while self._outstanding:
            await self._collect()

    # -- internals --------------------------------------------------------------------------------
    async def _send(self, pending: _Pending) -> None:
        await self._guard(self.pipe.send(pending.frame))
        self.frames += 1
        self.bytes_sent += len(pending.frame)
        self._outstanding.append(pending)

    async def _send_run(self) -> None:
        if not self._run:
            return
        addr, words = self._run_addr, self._run
        self._run = []
        if len(words) == 1:
            pending = _Pending(lk.OP_WRITE, addr, 0, encode_write(addr, words[0]), True)
        else:
            pending = _Pending(lk.OP_BURST, addr, len(words), encode_burst(addr, words), True)
        self.payload_bytes += 4 * len(words)
        await self._send(pending)
        if len(self._outstanding) >= self.window:
            await self._collect()

    async def _transact(self, frame: bytes, op: int, addr: int, *, expect: int | None = None,
                        safe: bool = True) -> Response:
        if op in (lk.OP_WRITE, lk.OP_BURST):
            self.payload_bytes += len(frame) - 7 - (op == lk.OP_BURST)
        await self._send(_Pending(op, addr, expect, frame, safe))
        return await self._collect()

    async def _collect(self) -> Response:
        attempt = 0
        while True:
            try:
                return await self._receive()
            except LinkError as exc:
                pending = list(self._outstanding)
                await self._abort()
                rejected = isinstance(exc, LinkRejected)
                if attempt >= self.retries or not pending:
                    raise
                if isinstance(exc, LinkTimeout) and not self._answered:
                    raise                 # nothing has ever answered: no board, or the wrong port
                if not rejected and not all(p.safe for p in pending):
                    what = ", ".join(f"{op_name(p.op)} at {p.addr:#08x}" for p in pending if not p.safe)
                    raise LinkUncertain(f"{exc}; the {what} may or may not have been carried out") from None
                attempt += 1
                for p in pending:
                    self.retried += 1
                    await self._send(p)

    async def _receive(self) -> Response:
        p = self._outstanding[0]
        raw = await self.pipe.recv(lk.RESPONSE_BYTES)
        self.bytes_received += len(raw)
        resp = decode_response(raw)
        what = f"{op_name(p.op)} at {p.addr:#08x}"
        if not resp.ok:
            raise LinkRejected(f"the link rejected the {what}: {status_name(resp.status)} "
                               f"(response op {resp.op:#04x})", resp.status)
        if resp.op != p.op or (p.expect is not None and resp.data != p.expect):
            raise LinkCorrupt(f"response {raw.hex()} does not answer the {what}")
        self._outstanding.popleft()
        self._answered = True
        return resp

    async def _guard(self, coro):
        try:
            return await coro
        except LinkError:
            await self._abort()
            raise

    async def _abort(self) -> None:
        self._run = []
        self._outstanding.clear()
        await self.pipe.resync()

    @property
    def clock_hz(self) -> int | None:
        """The board's clock, when its link reports it (INFO's low 16 bits, in 10 kHz; 0: unknown)."""
        units = self.info_word & 0xFFFF
        return units * 10_000 if units else None


# -- byte pipes ------------------------------------------------------------------------------------


class _SerialPipe:
    def __init__(self, port, timeout: float, quiet: float):
        self.port = port
        self.timeout = timeout
        self.quiet = quiet

    async def send(self, data: bytes) -> None:
        self.port.write(data)

    async def recv(self, n: int) -> bytes:
        deadline = time.monotonic() + self.timeout
        got = b""
        while len(got) < n:
            got += self.port.read(n - len(got))
            if len(got) < n and time.monotonic() > deadline:
                raise LinkTimeout(f"timeout after {self.timeout} s: {len(got)} of {n} response bytes "
                                  f"({got.hex() or 'nothing'}); is the board programmed and the baud rate right?")
        return got

    async def resync(self) -> None:
        """Wait until no byte has arrived for `quiet` seconds (the link has answered everything and
        ended any discarding), dropping what arrives, then empty the input buffer."""
        start = last = time.monotonic()
        while True:
            time.sleep(min(self.quiet, 0.02))
            waiting = getattr(self.port, "in_waiting", 0)
            now = time.monotonic()
            if waiting:
                self.port.read(waiting)
                last = now
            elif now - last >= self.quiet or now - start > 10 * self.quiet + 2:
                break
        self.port.reset_input_buffer()


class SerialTransport(LinkClient):
    """The link over a serial port (pyserial, an optional dependency: `pip install pyserial`).

    `port` is a device name (`/dev/ttyUSB1`, `COM5`), a pyserial URL (`socket://host:port`,
    `rfc2217://...`, `loop://`) or an already open serial-like object with `write`, `read` and
    `reset_input_buffer`. `quiet` (seconds) must exceed the link's
    timeout: after an error the host waits that long before it talks again.
    """

    def __init__(self, port, baud: int = 1_000_000, *, timeout: float = 1.0, quiet: float = 0.2,
                 max_burst: int = lk.MAX_BURST, window: int = 4, posted: bool = True, retries: int = 3):
        if isinstance(port, str):
            try:
                import serial
            except ImportError:
                raise ImportError("SerialTransport needs pyserial: pip install pyserial "
                                  "(or the memprop 'board' extra)") from None
            port = serial.serial_for_url(port, baudrate=baud, timeout=min(timeout, 0.05))
        self.port = port
        self.baud = baud
        super().__init__(_SerialPipe(port, timeout, quiet), max_burst=max_burst, window=window, posted=posted,
                         retries=retries)

    def close(self) -> None:
        close = getattr(self.port, "close", None)
        if close is not None:
            close()


class _SimPipe:
    """Bytes into `link.rx` (with its backpressure), bytes out of a list filled by a drainer."""

    def __init__(self, ctx, rx, received: deque, limit: int, quiet: int):
        self.ctx = ctx
        self.rx = rx
        self.received = received
        self.limit = limit
        self.quiet = quiet

    async def send(self, data: bytes) -> None:
        ctx, rx = self.ctx, self.rx
        for byte in data:
            ctx.set(rx.payload, byte)
            ctx.set(rx.valid, 1)
            await ctx.tick().until(rx.ready)
        ctx.set(rx.valid, 0)

    async def recv(self, n: int) -> bytes:
        waited = 0
        while len(self.received) < n:
            if waited >= self.limit:
                got = bytes(self.received)
                self.received.clear()
                raise LinkTimeout(f"timeout after {self.limit} cycles: {len(got)} of {n} response bytes "
                                  f"({got.hex() or 'nothing'})")
            await self.ctx.tick()
            waited += 1
        return bytes(self.received.popleft() for _ in range(n))

    async def idle(self, cycles: int) -> None:
        await self.ctx.tick().repeat(cycles)

    async def resync(self) -> None:
        while True:
            seen = len(self.received)
            await self.ctx.tick().repeat(self.quiet)
            if len(self.received) == seen:
                break
        self.received.clear()


class SimulatedLinkTransport(LinkClient):
    """The link and the engine in Amaranth's simulator; see `run_simulated`.

    `pipe` gives the tests raw byte access (`send`, `recv`, `idle`) for corrupt frames.
    """

    def __init__(self, ctx, rx, received: deque, *, link_timeout: int, limit: int = 200_000,
                 max_burst: int = lk.MAX_BURST, window: int = 4, posted: bool = True, retries: int = 3):
        pipe = _SimPipe(ctx, rx, received, limit, quiet=2 * link_timeout + 4 * lk.RESPONSE_BYTES)
        super().__init__(pipe, max_burst=max_burst, window=window, posted=posted, retries=retries)


def run_simulated(cfg, session, *, timeout: int = 64, max_burst: int = 32, fifo_depth: int = 16,
                  window: int = 4, posted: bool = True, vcd: str | None = None, init=None):
    """Run `await session(transport, design)` against the engine behind the link; return its result.

    The design is `memprop.boards.top.LinkedEngine` (what the board puts behind its UART),
    clocked at 100 MHz; `timeout` is the link's in cycles; `init` bakes weights in (an
    `image.Image`, as `memprop build --weights`). The transport is flushed when the session returns.
    """
    from amaranth.sim import Simulator

    from .top import LinkedEngine

    design = LinkedEngine(cfg, timeout=timeout, max_burst=max_burst, fifo_depth=fifo_depth, init=init)
    received: deque[int] = deque()
    result = {}

    async def drain(ctx):
        ctx.set(design.tx.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(design.tx.valid, design.tx.payload):
            if valid:
                received.append(payload)

    async def main(ctx):
        transport = SimulatedLinkTransport(ctx, design.rx, received, link_timeout=timeout, max_burst=max_burst,
                                           window=window, posted=posted)
        result["value"] = await session(transport, design)
        await transport.flush()

    sim = Simulator(design)
    sim.add_clock(1e-8)
    sim.add_testbench(drain, background=True)
    sim.add_testbench(main)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return result["value"]
