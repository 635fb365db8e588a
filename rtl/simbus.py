"""A transport for EngineDriver inside Amaranth's own simulator (async testbenches)."""

from __future__ import annotations


class AmaranthBus:
    def __init__(self, ctx, bus, busy=None):
        self.ctx = ctx
        self.bus = bus
        self.busy = busy
        if busy is not None:
            self.wait_idle = self._wait_idle

    async def _wait_idle(self) -> None:
        """Until the engine's `busy` output is low (only when the pin was given)."""
        await self.ctx.tick().until(~self.busy)

    async def write(self, addr: int, data: int) -> None:
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.addr, addr)
        ctx.set(bus.wdata, data & 0xFFFFFFFF)
        ctx.set(bus.we, 1)
        await ctx.tick()
        ctx.set(bus.we, 0)
        await ctx.tick()   # STATE writes take a second cycle (both buffer halves)

    async def read(self, addr: int) -> int:
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.addr, addr)
        ctx.set(bus.re, 1)
        await ctx.tick()
        ctx.set(bus.re, 0)
        while not ctx.get(bus.rvalid):
            await ctx.tick()
        return ctx.get(bus.rdata)
