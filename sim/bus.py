"""A transport for EngineDriver inside a cocotb simulation of the engine's Verilog."""

from __future__ import annotations

from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge


class CocotbBus:
    """Drives the flattened `bus__*` ports of Amaranth's Verilog (`clk`, synchronous `rst`)."""

    def __init__(self, dut, timeout_cycles: int = 1000):
        self.dut = dut
        self.timeout = timeout_cycles
        self.cycles = 0

    async def reset(self) -> None:
        dut = self.dut
        for name, value in (("bus__we", 0), ("bus__re", 0), ("bus__addr", 0), ("bus__wdata", 0)):
            getattr(dut, name).value = value
        dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    async def write(self, addr: int, data: int) -> None:
        dut = self.dut
        dut.bus__addr.value = addr
        dut.bus__wdata.value = data & 0xFFFFFFFF
        dut.bus__we.value = 1
        await RisingEdge(dut.clk)
        dut.bus__we.value = 0
        await RisingEdge(dut.clk)      # a STATE write needs the next cycle (second buffer half)
        self.cycles += 2

    async def read(self, addr: int) -> int:
        dut = self.dut
        dut.bus__addr.value = addr
        dut.bus__re.value = 1
        await RisingEdge(dut.clk)
        dut.bus__re.value = 0
        for _ in range(self.timeout):
            await RisingEdge(dut.clk)
            await ReadOnly()
            self.cycles += 1
            if int(dut.bus__rvalid.value):
                data = int(dut.bus__rdata.value)
                await RisingEdge(dut.clk)
                return data
        raise TimeoutError(f"no read answer for address {addr:#x} within {self.timeout} cycles")

    async def wait_idle(self) -> None:
        """Until the engine's `busy` output falls: no Python work per simulated cycle."""
        if int(self.dut.busy.value):
            await FallingEdge(self.dut.busy)
            await RisingEdge(self.dut.clk)
