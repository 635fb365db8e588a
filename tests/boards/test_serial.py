"""The board design without pins (UART + link + engine) in simulation, bit by bit on the line."""

from __future__ import annotations

from amaranth.sim import Simulator

from memprop.boards import host
from memprop.boards.top import SerialEngine
from memprop.model.config import Config
from memprop.rtl import hostmap as hm
from memprop.rtl import link as lk

CFG = Config.for_algorithm("eqprop", network={"n": 6}, numerics="fixed", train={"batch_size": 1, "seed": 5},
                           device={"preset": "linear-64"}, hw={"lanes": 1})
D = 8                                   # clock cycles per bit
SEED = hm.address(hm.REG, hm.R_SEED)


def test_frames_over_the_uart_line():
    dut = SerialEngine(CFG, clk_freq=D, baud=1, timeout=40 * D, max_burst=16, fifo_depth=16)
    received = []

    async def send(ctx, data: bytes, bad_stop_at: int | None = None):
        for k, byte in enumerate(data):
            stop = 0 if k == bad_stop_at else 1
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [stop]:
                ctx.set(dut.rx, bit)
                await ctx.tick().repeat(D)
            ctx.set(dut.rx, 1)
            await ctx.tick().repeat(D)

    async def response(ctx) -> host.Response:
        for _ in range(200 * D):
            if len(received) >= lk.RESPONSE_BYTES:
                break
            await ctx.tick().repeat(D)
        raw = bytes(received[:lk.RESPONSE_BYTES])
        del received[:lk.RESPONSE_BYTES]
        return host.decode_response(raw)

    async def monitor(ctx):             # a Python UART receiver on the tx line, sampling mid-bit
        t, byte = None, 0
        async for _, _, line in ctx.tick().sample(dut.tx):
            if t is None:
                if not line:
                    t, byte = 0, 0
                continue
            t += 1
            k, phase = divmod(t - D // 2, D)
            if phase == 0 and 1 <= k <= 8:
                byte |= line << (k - 1)
            elif phase == 0 and k == 9:
                assert line == 1, "stop bit"
                received.append(byte)
                t = None

    async def bench(ctx):
        await send(ctx, host.encode_read(hm.address(hm.REG, hm.R_FP_HI)))
        assert await response(ctx) == host.Response(lk.OP_READ, lk.ST_OK, int(CFG.fingerprint, 16) >> 32)
        await send(ctx, host.encode_write(SEED, 0x01020304))
        assert (await response(ctx)).ok
        # a byte with a bad stop bit inside a frame: reported, the frame not executed
        await send(ctx, host.encode_write(SEED, 0xFFFF), bad_stop_at=6)
        r = await response(ctx)
        assert (r.op, r.status) == (lk.OP_WRITE, lk.ST_LOST_BYTE)
        await send(ctx, host.encode_read(SEED))
        assert await response(ctx) == host.Response(lk.OP_READ, lk.ST_OK, 0x01020304)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(bench)
    sim.run()
