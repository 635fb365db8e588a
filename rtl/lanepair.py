"""Two learning lanes' fixed-point copies in one dual-port block RAM.

STORE writes the fixed points and LEARN reads them, never in the same cycle. So lane A's read
and the write share one address (STORE's while it writes) and become one read/write port, and
lane B reads through the second port. That port is transparent to the write: a DP16KD does not
promise the old word to one port while the other writes it, so for a non-transparent port
yosys duplicates the memory; transparency it emulates with a comparator (never exercised by
the learner: LEARN reads only after STORE). With `lanes=1` (an odd last lane) the memory
serves lane A alone. The learner (learn.py) and the gate-level probe (sim/bram.py) both build
this component, so the probe checks the construct the learner uses.
"""

from amaranth import Module, Mux, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out


class LanePairMemory(wiring.Component):
    def __init__(self, shape, depth: int, addr_bits: int, lanes: int = 2):
        if lanes not in (1, 2):
            raise ValueError(f"a lane-pair memory serves 1 or 2 lanes, not {lanes}")
        if depth > 1 << addr_bits:
            raise ValueError(f"depth {depth} needs more than {addr_bits} address bits")
        self.shape, self.depth, self.lanes = shape, depth, lanes
        members = {"w_en": In(1), "w_addr": In(unsigned(addr_bits)), "w_data": In(shape),
                   "a_addr": In(unsigned(addr_bits)), "a_data": Out(shape)}
        if lanes == 2:
            members |= {"b_addr": In(unsigned(addr_bits)), "b_data": Out(shape)}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=self.shape, depth=self.depth, init=[])
        wr = mem.write_port()
        shared = Mux(self.w_en, self.w_addr, self.a_addr)
        lane_a = mem.read_port()
        m.d.comb += [wr.en.eq(self.w_en), wr.addr.eq(shared), wr.data.eq(self.w_data),
                     lane_a.addr.eq(shared), self.a_data.eq(lane_a.data)]
        if self.lanes == 2:
            lane_b = mem.read_port(transparent_for=(wr,))
            m.d.comb += [lane_b.addr.eq(self.b_addr), self.b_data.eq(lane_b.data)]
        return m
