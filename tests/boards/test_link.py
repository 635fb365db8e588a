# amaranth: UnusedElaboratable=no
"""The host link in simulation (link + engine, byte level): good frames execute, every kind of
corrupt frame is rejected with an error response and never executed."""

from __future__ import annotations

import random

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.sim import Simulator

from memprop.boards import host
from memprop.boards.host import run_simulated
from memprop.model.config import Config
from memprop.rtl import hostmap as hm
from memprop.rtl import link as lk

CFG = Config.for_algorithm("eqprop", network={"n": 8}, numerics="fixed", train={"batch_size": 1, "seed": 7},
                           device={"preset": "linear-64"}, hw={"lanes": 2})
SEED = hm.address(hm.REG, hm.R_SEED)
TIMEOUT = 64          # the link's timeout in cycles (run_simulated's default)


def test_crc_hardware_matches_reference():
    class Crc(Elaboratable):
        def __init__(self):
            self.crc, self.byte, self.out = Signal(16), Signal(8), Signal(16)

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.out.eq(lk.crc16_next(self.crc, self.byte))
            return m

    dut = Crc()
    r = random.Random(1)

    async def bench(ctx):
        for _ in range(300):
            crc, byte = r.randrange(1 << 16), r.randrange(256)
            ctx.set(dut.crc, crc)
            ctx.set(dut.byte, byte)
            assert ctx.get(dut.out) == lk.crc16(bytes([byte]), crc)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


def test_crc_zero_check_is_the_step_ending_at_zero():
    """The frame check `crc16_ends_at_zero` (a compare against CRC register bits) is exactly
    `crc16_next(crc, byte) == 0`: for every CRC value, with the byte that ends at 0 and others."""
    from memprop.rtl.crc import zero_check_taps
    from memprop.rtl.link import _crc16_raw

    step = lambda crc, byte: _crc16_raw(byte, crc)      # noqa: E731
    expect_taps, zero_taps = zero_check_taps(step, 16)
    par = lambda x, taps: sum(x >> k & 1 for k in taps) & 1      # noqa: E731
    ends = 0
    for crc in range(1 << 16):
        expected = sum(par(crc, taps) << i for i, taps in enumerate(expect_taps))
        viable = not any(par(crc, taps) for taps in zero_taps)
        for byte in (expected, expected ^ 1, expected ^ 0x80):
            assert (step(crc, byte) == 0) == (byte == expected and viable), (crc, byte)
        ends += viable
    assert ends == 256                                  # one CRC value in 256 can end at 0

    class Check(Elaboratable):
        def __init__(self):
            self.crc, self.byte, self.out = Signal(16), Signal(8), Signal()

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.out.eq(lk.crc16_ends_at_zero(self.crc, self.byte))
            return m

    dut = Check()
    r = random.Random(2)

    async def bench(ctx):
        for _ in range(300):
            crc = r.randrange(1 << 16) & (0xFF00 if r.random() < 0.5 else 0xFFFF)
            byte = crc >> 8 if r.random() < 0.5 else r.randrange(256)
            ctx.set(dut.crc, crc)
            ctx.set(dut.byte, byte)
            assert ctx.get(dut.out) == (lk.crc16(bytes([byte]), crc) == 0)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


async def respond(t) -> host.Response:
    return host.decode_response(await t.pipe.recv(lk.RESPONSE_BYTES))


async def raw(t, frame: bytes) -> host.Response:
    await t.pipe.send(frame)
    return await respond(t)


def with_crc(body: bytes) -> bytes:
    return body + lk.crc16(body).to_bytes(2, "big")


def test_good_frames_execute():
    async def session(t, design):
        r = await raw(t, host.encode_info())
        assert r == host.Response(lk.OP_INFO, lk.ST_OK, lk.info_word(32))
        r = await raw(t, host.encode_read(hm.address(hm.REG, hm.R_FP_LO)))
        assert (r.op, r.status, r.data) == (lk.OP_READ, lk.ST_OK, int(CFG.fingerprint, 16) & 0xFFFFFFFF)
        assert await raw(t, host.encode_write(SEED, 0xA5A55A5A)) == host.Response(lk.OP_WRITE, lk.ST_OK, 0)
        assert (await raw(t, host.encode_read(SEED))).data == 0xA5A55A5A
        # a burst into STATE: consecutive STATE writes need the idle cycle between them
        values = [(-1) & 0xFFFFFFFF, 5, 100, (-200) & 0xFFFFFFFF, 0, 256, 3, 7]
        r = await raw(t, host.encode_burst(hm.address(hm.STATE, 0), values))
        assert r == host.Response(lk.OP_BURST, lk.ST_OK, 8)
        status = (await raw(t, host.encode_read(hm.address(hm.REG, hm.R_CMD)))).data
        assert not status & hm.STATUS_ERROR
        got = [(await raw(t, host.encode_read(hm.address(hm.STATE, i)))).data for i in range(8)]
        assert got == values

    run_simulated(CFG, session)


def test_pipelined_frames_answer_in_order():
    async def session(t, design):
        frames = [host.encode_write(SEED, 11), host.encode_read(SEED), host.encode_burst(hm.address(hm.BIAS, 0), [1, 2, 3]),
                  host.encode_read(hm.address(hm.BIAS, 2)), host.encode_info()]
        await t.pipe.send(b"".join(frames))
        got = [await respond(t) for _ in frames]
        assert [(r.op, r.status, r.data) for r in got] == [
            (lk.OP_WRITE, 0, 0), (lk.OP_READ, 0, 11), (lk.OP_BURST, 0, 3), (lk.OP_READ, 0, 3),
            (lk.OP_INFO, 0, lk.info_word(32))]

    run_simulated(CFG, session)


def corrupt_crc(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0x01])


CORRUPTIONS = {
    "bad crc": (lambda: corrupt_crc(host.encode_write(SEED, 0x1234)), lk.OP_WRITE, lk.ST_BAD_CRC),
    "bad crc in data": (lambda: (lambda f: f[:7] + bytes([f[7] ^ 0x40]) + f[8:])(host.encode_write(SEED, 0x1234)),
                        lk.OP_WRITE, lk.ST_BAD_CRC),
    "bad sync": (lambda: b"\x5a" + host.encode_write(SEED, 0x1234)[1:], 0, lk.ST_BAD_SYNC),
    "line noise": (lambda: bytes([0x00, 0xFF, 0x13]), 0, lk.ST_BAD_SYNC),
    "unknown opcode": (lambda: with_crc(bytes([lk.SYNC_REQUEST, 0x07, 0x40, 0, 4, 0, 0, 0x12, 0x34])), 0x07,
                       lk.ST_BAD_OPCODE),
    "truncated write": (lambda: host.encode_write(SEED, 0x1234)[:8], lk.OP_WRITE, lk.ST_TIMEOUT),
    "truncated before crc": (lambda: host.encode_write(SEED, 0x1234)[:-2], lk.OP_WRITE, lk.ST_TIMEOUT),
    "truncated burst": (lambda: host.encode_burst(SEED, [0x1234] * 3)[:-6], lk.OP_BURST, lk.ST_TIMEOUT),
    "burst too long": (lambda: host.encode_burst(SEED, [0x1234] * 33), lk.OP_BURST, lk.ST_BAD_LENGTH),
    "burst bad crc": (lambda: corrupt_crc(host.encode_burst(SEED - 1, [7, 0x1234, 9])), lk.OP_BURST, lk.ST_BAD_CRC),
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corrupt_frames_are_rejected_and_not_executed(name):
    make, op, status = CORRUPTIONS[name]

    async def session(t, design):
        assert (await raw(t, host.encode_write(SEED, 0x99))).ok
        r = await raw(t, make())
        assert (r.op, r.status, r.data) == (op, status, 0), host.status_name(r.status)
        assert (await raw(t, host.encode_read(SEED))).data == 0x99          # not executed
        assert (await raw(t, host.encode_write(SEED, 0x77))).ok             # and the link is back
        assert (await raw(t, host.encode_read(SEED))).data == 0x77

    run_simulated(CFG, session)


def test_error_response_waits_for_a_quiet_line():
    """After a bad frame the link swallows what follows until the line is quiet: a good frame
    sent right behind a corrupt one is not executed either (the host sees one error)."""

    async def session(t, design):
        await t.pipe.send(corrupt_crc(host.encode_write(SEED, 1)) + host.encode_write(SEED, 2))
        r = await respond(t)
        assert r.status == lk.ST_BAD_CRC
        await t.pipe.idle(4 * TIMEOUT)
        assert not t.pipe.received                                         # no second response
        assert (await raw(t, host.encode_read(SEED))).data == CFG.train.seed

    run_simulated(CFG, session)


def test_lost_uart_byte_is_reported():
    async def session(t, design):
        ctx = t.pipe.ctx
        frame = host.encode_write(SEED, 0x55)
        await t.pipe.send(frame[:4])
        ctx.set(design.rx_lost, 1)         # the UART saw a bad stop bit
        await ctx.tick()
        ctx.set(design.rx_lost, 0)
        await t.pipe.send(frame[5:])
        r = await respond(t)
        assert (r.op, r.status) == (lk.OP_WRITE, lk.ST_LOST_BYTE)
        assert (await raw(t, host.encode_read(SEED))).data == CFG.train.seed

    run_simulated(CFG, session)


def test_error_pulse():
    async def session(t, design):
        ctx = t.pipe.ctx
        pulses = 0
        await t.pipe.send(b"\x00")
        for _ in range(3 * TIMEOUT):
            await ctx.tick()
            pulses += ctx.get(design.error)
        assert pulses == 1
        assert (await respond(t)).status == lk.ST_BAD_SYNC

    run_simulated(CFG, session)


@pytest.mark.parametrize("kwargs, match", [
    ({"timeout": 1}, "timeout must be an integer of at least 2"),
    ({"timeout": 64, "max_burst": 0}, r"max_burst must be an integer in 1..256, not 0"),
    ({"timeout": 64, "max_burst": 300}, "not 300"),
    ({"timeout": 64, "fifo_depth": 1}, "fifo_depth"),
])
def test_link_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lk.HostLink(**kwargs)
