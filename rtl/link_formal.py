"""Formal properties of the host link (rtl/link.py) and the harness that proves them.

The harness drives `HostLink` with any byte stream (`rx`, free), any loss flags (`rx_lost`),
any response consumer (`tx.ready`, free) and a bus target that answers a read two cycles
after it (as the engine does) with any word. Small parameters keep the state space small;
nothing in the properties depends on them.

A monitor beside the parser re-reads every frame from the bytes the parser consumes: its
own bit-serial CRC (rtl/formal.py `crc16_bitwise`, not the link's XOR taps), the fields at
their positions, the frame length the opcode implies. The properties compare the link's bus
transactions and responses with that monitor. Lemmas tie the parser's registers to the
monitor so that the proofs close by k-induction; a progress measure (`phi`, an upper bound
on the cycles the link still needs when no byte arrives) proves that the link cannot
deadlock.
"""

from __future__ import annotations

from amaranth import Cat, Const, Elaboratable, Module, Mux, ResetSignal, Signal
from amaranth.asserts import AnyConst, AnySeq

from .formal import Properties, attach, crc16_bitwise, past
from .link import (CRC_INIT, OP_BURST, OP_INFO, OP_READ, OP_WRITE, RESPONSE_BYTES, ST_OK, SYNC_REQUEST,
                   SYNC_RESPONSE, HostLink, info_word)

__all__ = ["LinkProof", "link_properties", "quiet_bound"]

RECEIVING = ("OP", "ADDR", "COUNT", "DATA", "CRC")
EXECUTING = ("EXECUTE", "READ_WAIT", "WRITE_GAP", "BURST_WRITE", "BURST_GAP")
STATES = ("IDLE", *RECEIVING, "DISCARD", *EXECUTING, "RESPOND")

#: cycles from RESPOND to a finished response when the host takes every byte (queue + 9 bytes)
RESPOND_COST = RESPONSE_BYTES + 1


def _costs(timeout: int, max_burst: int) -> tuple[int, int, int]:
    """(per-byte cost C, cost of a pending loss flag, largest state cost) of the progress measure."""
    largest = max(timeout + 1 + RESPOND_COST, 2 * max_burst + RESPOND_COST + 1, RESPOND_COST + 4)
    return largest + 2, timeout + 3 + RESPOND_COST, largest


def quiet_bound(timeout: int, max_burst: int, fifo_depth: int) -> int:
    """Cycles without input (and with the host taking response bytes) after which the link is idle."""
    per_byte, lost_cost, largest = _costs(timeout, max_burst)
    return (per_byte + 1) * fifo_depth + largest + RESPONSE_BYTES + lost_cost


def link_properties(props: Properties, *, rvalid_pipe: tuple):
    """The link's properties; `rvalid_pipe` = (pending, rvalid) of the harness's bus target."""

    def attach_fn(m: Module, link: HostLink, i):
        T, MB, FD = link.timeout, link.max_burst, link.fifo_depth
        bus = link.bus
        st = {name: i.fsm.ongoing(name) for name in STATES}
        receiving = Cat(*(st[s] for s in RECEIVING)).any()
        executing = Cat(*(st[s] for s in EXECUTING)).any()
        inp = i.rx_fifo.r_stream
        took = inp.valid & inp.ready
        byte = inp.payload
        pend, rvalid = rvalid_pipe

        # -- the frame monitor --------------------------------------------------------------
        max_len = 12 + 4 * (MB - 1)
        mon_len = Signal(range(max_len + 2), name="mon_len")      # bytes of the frame so far
        mon_crc = Signal(16, name="mon_crc")
        mon_sync, mon_op, mon_count = (Signal(8, name=n) for n in ("mon_sync", "mon_op", "mon_count"))
        mon_addr, mon_data, mon_word = Signal(24, name="mon_addr"), Signal(32, name="mon_data"), Signal(32, name="mon_word")
        watched = Signal(range(MB), name="mon_watched_word")       # any one word of a BURST
        m.d.comb += watched.eq(AnyConst(range(MB)))
        start = Signal(name="mon_frame_start")
        m.d.comb += start.eq(took & st["IDLE"])
        pos = mon_len
        word_of = Signal(range(2 * max_len), name="mon_word_of")
        m.d.comb += word_of.eq((pos - 6) >> 2)
        crc_first = crc16_bitwise(m, Const(CRC_INIT, 16), byte, "mon_crc_first")
        crc_next = crc16_bitwise(m, mon_crc, byte, "mon_crc_next")
        with m.If(start):
            m.d.sync += [mon_len.eq(1), mon_crc.eq(crc_first), mon_sync.eq(byte)]
        with m.Elif(took):
            m.d.sync += mon_crc.eq(crc_next)
            with m.If(mon_len != max_len + 1):
                m.d.sync += mon_len.eq(mon_len + 1)
            with m.If(pos == 1):
                m.d.sync += mon_op.eq(byte)
            with m.If((pos >= 2) & (pos <= 4)):
                m.d.sync += mon_addr.eq(Cat(byte, mon_addr[:16]))
            with m.If((mon_op == OP_WRITE) & (pos >= 5) & (pos <= 8)):
                m.d.sync += mon_data.eq(Cat(byte, mon_data[:24]))
            with m.If((mon_op == OP_BURST) & (pos == 5)):
                m.d.sync += mon_count.eq(byte)
            with m.If((mon_op == OP_BURST) & (pos >= 6) & (pos < 10 + 4 * mon_count) & (word_of == watched)):
                m.d.sync += mon_word.eq(Cat(byte, mon_word[:24]))
        valid_op = (mon_op == OP_READ) | (mon_op == OP_WRITE) | (mon_op == OP_BURST) | (mon_op == OP_INFO)
        exp_len = Signal(range(12 + 4 * 256), name="mon_expected_len")
        m.d.comb += exp_len.eq(Mux(mon_op == OP_WRITE, 11, Mux(mon_op == OP_BURST, 12 + 4 * mon_count, 7)))
        good = Signal(name="mon_good")            # a complete, well-formed frame with a correct CRC
        m.d.comb += good.eq((mon_sync == SYNC_REQUEST) & valid_op & ((mon_op != OP_BURST) | (mon_count < MB))
                            & (mon_len == exp_len) & (mon_crc == 0))

        # -- transactions of the current frame ------------------------------------------------
        writes = Signal(range(MB + 2), name="mon_writes")
        with m.If(st["IDLE"]):
            m.d.sync += writes.eq(0)
        with m.Elif(bus.we & (writes != MB + 1)):
            m.d.sync += writes.eq(writes + 1)
        executed_reg = Signal(name="mon_executed_reg")
        executed = Signal(name="mon_executed")
        m.d.comb += executed.eq(executed_reg | st["EXECUTE"])
        with m.If(st["IDLE"]):
            m.d.sync += executed_reg.eq(0)
        with m.Elif(st["EXECUTE"]):
            m.d.sync += executed_reg.eq(1)
        rdata = Signal(32, name="mon_rdata")
        with m.If(st["READ_WAIT"] & rvalid):
            m.d.sync += rdata.eq(bus.rdata)

        props.check(m, "link.corrupt_frame_never_executes",
                    ~(bus.we | bus.re) | (good & ((bus.we & ((mon_op == OP_WRITE) | (mon_op == OP_BURST)))
                                                  | (bus.re & ~bus.we & (mon_op == OP_READ)))),
                    "a bus write or read happens only for a complete frame with sync byte A5, a known opcode, "
                    "an allowed burst length, the length its opcode implies and a correct CRC")
        props.check(m, "link.transactions_carry_the_frame",
                    (~(bus.we & (mon_op == OP_WRITE)) | ((bus.addr == mon_addr) & (bus.wdata == mon_data)
                                                          & (writes == 0)))
                    & (~(bus.we & (mon_op == OP_BURST)) | ((bus.addr == (mon_addr + writes)[:24])
                                                            & (writes <= mon_count)
                                                            & ((writes != watched) | (bus.wdata == mon_word))))
                    & (~bus.re | (bus.addr == mon_addr)),
                    "a WRITE writes its word to its address once; a BURST writes word w to address a + w, "
                    "each word once and in order; a READ reads its address")
        was_we = past(m, bus.we, "mon_was_we")
        props.check(m, "link.write_gap", ~(was_we & bus.we),
                    "every bus write is followed by a cycle without a write (a STATE write needs it)")

        # -- requests and responses -------------------------------------------------------------
        was_idle = past(m, st["IDLE"], "mon_was_idle", init=1)
        was_queue = past(m, i.queue, "mon_was_queue")
        answered = Signal(name="mon_answered")
        with m.If(st["IDLE"]):
            m.d.sync += answered.eq(0)
        with m.Elif(i.queue):
            m.d.sync += answered.eq(1)
        props.check(m, "link.one_response_per_request",
                    (~(st["IDLE"] & ~was_idle) | was_queue) & (~i.queue | (~answered & st["RESPOND"] & ~i.sending)),
                    "every request (a frame, or a stray byte or loss outside a frame) ends with exactly one "
                    "response, queued only when the previous one has been sent")
        info = info_word(MB)
        props.check(m, "link.response_status",
                    ~i.queue | (((i.status == ST_OK) == executed)
                                & ((i.status == ST_OK) | (i.data == 0))
                                & ((i.status != ST_OK) | (i.op == mon_op))
                                & ~((i.status == ST_OK) & (mon_op == OP_BURST)
                                    & ((i.data != mon_count + 1) | (writes != mon_count + 1)))
                                & ~((i.status == ST_OK) & (mon_op == OP_WRITE) & ((i.data != 0) | (writes != 1)))
                                & ~((i.status == ST_OK) & (mon_op == OP_READ) & (i.data != rdata))
                                & ~((i.status == ST_OK) & (mon_op == OP_INFO) & (i.data != info))),
                    "a response says ok exactly when its frame was executed and echoes its opcode; it carries "
                    "the word read (READ), 0 (WRITE, errors), the words written (BURST) or the link info (INFO)")

        # -- the response stream ----------------------------------------------------------------
        tx = link.tx
        tx_active = Signal(name="mon_tx_active")
        tx_pos = Signal(range(RESPONSE_BYTES), name="mon_tx_pos")
        tx_crc = Signal(16, name="mon_tx_crc")
        resp = Signal(56, name="mon_response")
        sent_byte = tx.valid & tx.ready
        tx_crc_next = crc16_bitwise(m, tx_crc, tx.payload, "mon_tx_crc_next")
        with m.If(i.queue):
            m.d.sync += [tx_active.eq(1), tx_pos.eq(0), tx_crc.eq(CRC_INIT),
                         resp.eq(Cat(i.data, i.status, i.op, Const(SYNC_RESPONSE, 8)))]
        with m.Elif(sent_byte):
            m.d.sync += tx_pos.eq(tx_pos + 1)
            with m.If(tx_pos < 7):
                m.d.sync += tx_crc.eq(tx_crc_next)
            with m.If(tx_pos == RESPONSE_BYTES - 1):
                m.d.sync += [tx_active.eq(0), tx_pos.eq(0)]
        field_byte = Cat(*(resp[48 - 8 * p: 56 - 8 * p] for p in range(7))).word_select(tx_pos, 8)
        expected = Mux(tx_pos < 7, field_byte, Mux(tx_pos == 7, tx_crc[8:], tx_crc[:8]))
        props.check(m, "link.responses_well_formed",
                    (tx.valid == tx_active) & (~tx.valid | (tx.payload == expected)),
                    "each response goes out as 9 bytes without a gap in the stream: 5A, opcode, status, the "
                    "4 data bytes as queued and a correct CRC-16 (recomputed bit by bit)")
        was_stalled = past(m, tx.valid & ~tx.ready, "mon_tx_was_stalled")
        was_payload = past(m, tx.payload, "mon_tx_was_payload")
        props.check(m, "link.tx_stream_rules", ~was_stalled | (tx.valid & (tx.payload == was_payload)),
                    "a response byte offered on tx stays offered, unchanged, until it is taken")

        # -- FIFO and buffer ----------------------------------------------------------------------
        fifo = i.rx_fifo
        fifo_count = Signal(range(FD + 1), name="mon_fifo_count")
        w = fifo.w_stream
        wrote, read = w.valid & w.ready, took
        with m.If(wrote & ~read):
            m.d.sync += fifo_count.eq(fifo_count + 1)
        with m.Elif(read & ~wrote):
            m.d.sync += fifo_count.eq(fifo_count - 1)
        props.check(m, "link.fifo_no_overflow_underflow",
                    (fifo_count == fifo.level) & (fifo.level <= FD) & (~w.ready | (fifo.level < FD))
                    & (~inp.valid | (fifo.level > 0)) & ~(wrote & (fifo_count == FD)) & ~(read & (fifo_count == 0)),
                    "the receive FIFO takes a byte only when it has room and gives one only when it holds one; "
                    "its level counts the bytes in minus the bytes out")
        props.check(m, "link.burst_buffer_in_range",
                    (~i.buf_wr.en | (i.index < MB)) & (~st["BURST_WRITE"] | (i.index < MB)),
                    "the burst buffer is written only below its depth and every word sent to the bus was read "
                    "from below it")

        # -- lemmas: parser registers against the monitor -----------------------------------------
        is_burst, is_write = i.op == OP_BURST, i.op == OP_WRITE
        k = i.k

        def lemma(name, test, text):
            props.check(m, f"link.{name}", test, f"lemma: {text}", lemma=True)

        lemma("ranges", Cat(*st.values()).any() & (i.quiet <= T) & (i.sent <= RESPONSE_BYTES) & (~st["ADDR"] | (k <= 2))
              & (~st["CRC"] | (k <= 1)) & (mon_len <= max_len + 1),
              "counters stay in their ranges")
        lemma("frame_position",
              (~st["OP"] | (mon_len == 1))
              & (~st["ADDR"] | (mon_len == 2 + k))
              & (~st["COUNT"] | ((mon_len == 5) & is_burst))
              & (~(st["OP"] | st["ADDR"] | st["COUNT"]) | (i.index == 0))
              & (~(st["DATA"] & is_write) | (mon_len == 5 + k))
              & (~(st["DATA"] & is_burst) | ((mon_len == 6 + 4 * i.index + k) & (i.index <= i.count)))
              & (~st["DATA"] | is_write | is_burst)
              & (~st["CRC"] | (mon_len == exp_len - 2 + k) & (~is_burst | (i.index == i.count + 1))),
              "the parser's state, byte counter and burst index match the monitor's byte count")
        ran = executing | (st["RESPOND"] & executed)      # executing, or answering an executed frame
        lemma("frame_fields",
              (i.count_end == i.count + 1)
              & (~(receiving | ran) | (mon_sync == SYNC_REQUEST))
              & (~((receiving & ~st["OP"]) | ran) | ((i.op == mon_op) & valid_op))
              & (~receiving | (i.crc == mon_crc))
              & (~st["ADDR"] | ((k != 1) | (i.addr[:8] == mon_addr[:8])) & ((k != 2) | (i.addr[:16] == mon_addr[:16])))
              & (~((receiving & ~st["OP"] & ~st["ADDR"]) | ran) | (i.addr == mon_addr))
              & (~((st["DATA"] | st["CRC"] | ran) & is_burst) | ((i.count == mon_count) & (mon_count < MB)))
              & (~(st["DATA"] & is_write) | ((k != 1) | (i.data[:8] == mon_data[:8]))
                 & ((k != 2) | (i.data[:16] == mon_data[:16])) & ((k != 3) | (i.data[:24] == mon_data[:24])))
              & (~((st["CRC"] | st["EXECUTE"]) & is_write) | (i.data == mon_data))
              & (~(st["DATA"] & is_burst & (i.index == watched))
                 | ((k != 1) | (i.data[:8] == mon_word[:8])) & ((k != 2) | (i.data[:16] == mon_word[:16]))
                 & ((k != 3) | (i.data[:24] == mon_word[:24]))),
              "opcode, address, data, count and CRC registers hold what the monitor read")
        peek = i.burst_mem.read_port(domain="comb")
        m.d.comb += peek.addr.eq(watched)
        stored = is_burst & (watched <= i.count) & ((st["DATA"] & (i.index > watched)) | st["CRC"] | executing)
        lemma("burst_buffer", (~stored | (peek.data == mon_word))
              & (~(st["BURST_WRITE"] & (i.index == watched)) | (i.buf_rd.data == mon_word)),
              "the burst buffer holds the frame's words")
        lemma("execution_status",
              (~ran | (good & (i.status == ST_OK) & executed))
              & (~(receiving | st["DISCARD"]) | ~executed)
              & (~st["DISCARD"] | (i.status != ST_OK))
              & (~st["RESPOND"] | (((i.status == ST_OK) == executed) & ((i.status == ST_OK) | (i.data == 0))))
              & (~answered | st["IDLE"]),
              "execution follows a good frame; the status says so")
        lemma("execution_writes",
              (~st["EXECUTE"] | ((i.index == 0) & (writes == 0)))
              & (~st["BURST_WRITE"] | (is_burst & (i.index <= i.count) & (writes == i.index) & ~bus.we))
              & (~st["BURST_GAP"] | (is_burst & (i.index >= 1) & (i.index <= i.count + 1) & (writes + bus.we == i.index)))
              & (~st["WRITE_GAP"] | (is_write & bus.we & (writes == 0) & (bus.addr == mon_addr) & (bus.wdata == mon_data)))
              & (~bus.we | st["WRITE_GAP"] | st["BURST_GAP"])
              & (~(st["BURST_GAP"] & bus.we) | (bus.addr == (mon_addr + writes)[:24]))
              & (~(st["BURST_GAP"] & bus.we & (writes == watched)) | (bus.wdata == mon_word))
              & (~(receiving | st["DISCARD"] | st["EXECUTE"]) | (writes == 0)),
              "bus writes come from WRITE_GAP / BURST_GAP with the monitor's address, data and count")
        lemma("execution_reads",
              ((bus.re + pend + rvalid) == st["READ_WAIT"]) & (~st["READ_WAIT"] | (i.op == OP_READ))
              & (~bus.re | (bus.addr == mon_addr)),
              "one read is in flight exactly while the link waits for it")
        lemma("execution_response",
              (~(st["RESPOND"] & executed & is_burst) | ((i.data == i.count + 1) & (writes == i.count + 1)))
              & (~(st["RESPOND"] & executed & is_write) | ((i.data == 0) & (writes == 1)))
              & (~(st["RESPOND"] & executed & (i.op == OP_READ)) | (i.data == rdata))
              & (~(st["RESPOND"] & executed & (i.op == OP_INFO)) | (i.data == info)),
              "an executed frame's response data")
        lemma("serializer",
              (i.sending == tx_active) & (~tx_active | ((i.sent == tx_pos) & (i.out == (resp << (8 * tx_pos))[:56])
                                                       & (i.out_crc == tx_crc))),
              "the serializer's byte counter, shift register and CRC follow the monitor")

        # -- no deadlock: a progress measure -------------------------------------------------------
        per_byte, lost_cost, _ = _costs(T, MB)
        bound = quiet_bound(T, MB, FD)
        wait = Mux(rvalid, 0, Mux(pend, 1, 2))
        R = Signal(16, name="mon_state_cost")
        with m.If(receiving | st["DISCARD"]):
            m.d.comb += R.eq(T - i.quiet + 1 + RESPOND_COST)
        with m.If(st["EXECUTE"]):
            m.d.comb += R.eq(Mux(i.op == OP_READ, RESPOND_COST + 4,
                                 Mux(is_write, RESPOND_COST + 2,
                                     Mux(is_burst, 2 * (i.count + 1) + RESPOND_COST + 1, RESPOND_COST + 1))))
        with m.If(st["READ_WAIT"]):
            m.d.comb += R.eq(wait + 1 + RESPOND_COST)
        with m.If(st["WRITE_GAP"]):
            m.d.comb += R.eq(1 + RESPOND_COST)
        with m.If(st["BURST_WRITE"]):
            m.d.comb += R.eq(2 * (i.count + 1 - i.index) + RESPOND_COST)
        with m.If(st["BURST_GAP"]):
            m.d.comb += R.eq(2 * (i.count + 1 - i.index) + 1 + RESPOND_COST)
        with m.If(st["RESPOND"]):
            m.d.comb += R.eq(RESPOND_COST)
        phi = Signal(16, name="mon_phi")
        m.d.comb += phi.eq(per_byte * fifo.level + (fifo.level - inp.valid) + R
                           + Mux(i.sending, RESPONSE_BYTES - i.sent, 0) + Mux(i.lost, lost_cost, 0))
        calm = Signal(name="mon_calm")              # no byte offered, no loss reported
        productive = Signal(name="mon_productive")  # the host does not stall a response byte
        m.d.comb += [calm.eq(~link.rx.valid & ~link.rx_lost), productive.eq(~(tx.valid & ~tx.ready))]
        quiet_for = Signal(range(bound + 1), name="mon_quiet_for")
        with m.If(~calm):
            m.d.sync += quiet_for.eq(0)
        with m.Elif(productive & (quiet_for != bound)):
            m.d.sync += quiet_for.eq(quiet_for + 1)
        was_calm = past(m, calm, "mon_was_calm")
        was_productive = past(m, productive, "mon_was_productive")
        was_phi = past(m, phi, "mon_was_phi")
        idle = st["IDLE"] & (fifo.level == 0) & ~i.sending & ~i.lost
        lemma("progress",
              (phi <= bound) & ((phi == 0) == idle)
              & (~(was_calm & was_productive & (was_phi != 0)) | (phi < was_phi))
              & (~was_calm | (phi <= was_phi)),
              f"without input, the progress measure (at most {bound}) falls every cycle the host takes "
              f"response bytes, and never rises")
        lemma("quiet_budget", (phi == 0) | (phi + quiet_for <= bound),
              "the progress measure is at most the quiet cycles left")
        props.check(m, "link.idle_after_quiet_line", (quiet_for != bound) | idle,
                    f"after any byte sequence, B cycles without input (not counting cycles in which the host "
                    f"stalls a response byte) leave the link idle: parser waiting for a frame, FIFO empty, every "
                    f"response sent (no deadlock); B = quiet_bound(timeout, burst, FIFO) = {bound} here")

        # -- covers ----------------------------------------------------------------------------
        props.cover(m, "link.error_reply", i.queue & (i.status != ST_OK), "an error response")
        props.cover(m, "link.bad_crc_reply", i.queue & (i.status == 0x01), "a bad-CRC response")
        props.cover(m, "link.timeout_reply", i.queue & (i.status == 0x03), "a timeout response")
        props.cover(m, "link.fifo_full", fifo.level == FD, "the receive FIFO full")
        props.cover(m, "link.write_executed", bus.we & (mon_op == OP_WRITE), "a WRITE on the bus")
        props.cover(m, "link.longest_burst", bus.we & (mon_op == OP_BURST) & (writes == MB - 1),
                    "the last word of a longest BURST on the bus")
        props.cover(m, "link.read_answered", i.queue & (i.status == ST_OK) & (i.op == OP_READ), "a READ answered")
        props.cover(m, "link.response_sent", sent_byte & (tx_pos == RESPONSE_BYTES - 1), "a whole response sent")

    return attach_fn


class LinkProof(Elaboratable):
    """`HostLink` with a free byte stream, free loss flags, a free consumer and an engine-like bus."""

    def __init__(self, props: Properties, *, timeout: int = 2, max_burst: int = 2, fifo_depth: int = 2):
        self.props = props
        self.timeout, self.max_burst, self.fifo_depth = timeout, max_burst, fifo_depth

    def elaborate(self, platform):
        m = Module()
        Properties.assume(m, ~ResetSignal())
        link = HostLink(timeout=self.timeout, max_burst=self.max_burst, fifo_depth=self.fifo_depth)
        m.submodules.link = link
        pend, rvalid = Signal(name="bus_read_pending"), Signal(name="bus_rvalid")
        m.d.sync += [pend.eq(link.bus.re), rvalid.eq(pend)]
        m.d.comb += [link.rx.valid.eq(AnySeq(1)), link.rx.payload.eq(AnySeq(8)), link.rx_lost.eq(AnySeq(1)),
                     link.tx.ready.eq(AnySeq(1)), link.bus.rvalid.eq(rvalid), link.bus.rdata.eq(AnySeq(32))]
        attach(link, link_properties(self.props, rvalid_pipe=(pend, rvalid)))
        return m
