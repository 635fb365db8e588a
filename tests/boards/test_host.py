"""Host side of the link: frame encode/decode, the posted-write client, SerialTransport errors."""

from __future__ import annotations

import asyncio
import sys

import pytest

from memprop.boards import host
from memprop.rtl import link as lk

from .fakelink import FakePort


def test_crc_reference():
    assert lk.crc16(b"123456789") == 0x29B1          # CRC-16/CCITT-FALSE check value
    frame = host.encode_write(0x123456, 0xDEADBEEF)
    assert lk.crc16(frame) == 0                       # a frame followed by its CRC leaves 0


def test_request_round_trip():
    cases = [(host.encode_read(0x400007), lk.OP_READ, 0x400007, ()),
             (host.encode_write(0x000004, 0xCAFEF00D), lk.OP_WRITE, 4, (0xCAFEF00D,)),
             (host.encode_burst(0x100000, range(5)), lk.OP_BURST, 0x100000, (0, 1, 2, 3, 4)),
             (host.encode_burst(0x200000, [0xFFFFFFFF] * 256), lk.OP_BURST, 0x200000, (0xFFFFFFFF,) * 256),
             (host.encode_info(), lk.OP_INFO, 0, ())]
    for frame, op, addr, words in cases:
        assert host.decode_request(frame) == host.Request(op, addr, words)
    assert host.encode_write(0x000004, 0xCAFEF00D).hex() == "a5020000" "04cafef00d" + \
        f"{lk.crc16(bytes.fromhex('a502000004cafef00d')):04x}"
    assert len(host.encode_read(0)) == 7 and len(host.encode_write(0, 0)) == 11
    assert len(host.encode_burst(0, [0] * 3)) == 8 + 12


def test_response_round_trip():
    raw = host.encode_response(lk.OP_READ, lk.ST_OK, 0x01020304)
    assert len(raw) == lk.RESPONSE_BYTES and raw[0] == lk.SYNC_RESPONSE
    assert host.decode_response(raw) == host.Response(lk.OP_READ, lk.ST_OK, 0x01020304)


@pytest.mark.parametrize("mangle, match", [
    (lambda r: r[:-1], "response of 8 bytes"),
    (lambda r: b"\x00" + r[1:], "not the sync byte"),
    (lambda r: r[:3] + bytes([r[3] ^ 1]) + r[4:], "CRC mismatch"),
])
def test_corrupt_responses(mangle, match):
    with pytest.raises(host.LinkCorrupt, match=match):
        host.decode_response(mangle(host.encode_response(lk.OP_WRITE, lk.ST_OK)))


@pytest.mark.parametrize("call, match", [
    (lambda: host.encode_read(1 << 24), "not a 24-bit bus address"),
    (lambda: host.encode_write(0, -1), "not an unsigned 32-bit value"),
    (lambda: host.encode_burst(0, []), "1..256 words, not 0"),
    (lambda: host.encode_burst(0, [0] * 257), "not 257"),
    (lambda: host.encode_burst((1 << 24) - 2, [0] * 3), "runs past the address space"),
])
def test_encode_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_decode_request_errors():
    good = bytearray(host.encode_burst(8, [1, 2]))
    with pytest.raises(ValueError, match="CRC"):
        host.decode_request(bytes(good[:-1]) + b"\x00")
    good[5] = 7                                         # count says 8 words
    with pytest.raises(ValueError):
        host.decode_request(bytes(good[:-2]) + lk.crc16(bytes(good[:-2])).to_bytes(2, "big"))


def run(coro):
    return asyncio.run(coro)


def test_serial_transport_posts_and_gathers_bursts():
    port = FakePort()
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0)

    async def go():
        for i in range(10):                 # one run of 10: one BURST
            await t.write(0x400000 + i, i * 3)
        await t.write(0x100005, 7)           # a lone write
        await t.write(0x200000, 9)
        assert await t.read(0x400004) == 12  # flushes first
        for i in range(300):                 # longer than a burst: 256 + 44
            await t.write(0x400000 + i, i)
        await t.flush()

    run(go())
    ops = [(f.op, f.addr, len(f.words)) for f in port.frames]
    assert ops == [(lk.OP_BURST, 0x400000, 10), (lk.OP_WRITE, 0x100005, 1), (lk.OP_WRITE, 0x200000, 1),
                   (lk.OP_READ, 0x400004, 0), (lk.OP_BURST, 0x400000, 256), (lk.OP_BURST, 0x400100, 44)]
    assert port.memory[0x400000 + 299] == 299


def test_info_limits_the_burst():
    port = FakePort(max_burst=16)
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0)

    async def go():
        assert await t.info() == (lk.VERSION, 16)
        for i in range(40):
            await t.write(0x400000 + i, i)
        await t.flush()

    run(go())
    assert [len(f.words) for f in port.frames[1:]] == [16, 16, 8]


def test_unposted_writes_wait_for_each_response():
    port = FakePort()
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0, posted=False)

    async def go():
        await t.write(1, 2)
        assert not port.out                  # the response was read before write() returned
        await t.write(2, 3)

    run(go())
    assert [f.op for f in port.frames] == [lk.OP_WRITE, lk.OP_WRITE]


def test_rejected_frame_is_reported_and_the_client_recovers():
    port = FakePort()
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0, retries=0)
    port.reject_next = 1

    async def go():
        await t.write(0x000004, 5)
        with pytest.raises(host.LinkRejected, match=r"rejected the WRITE at 0x000004: bad CRC") as exc:
            await t.read(0x000004)
        assert exc.value.status == lk.ST_BAD_CRC
        assert port.resets == 1
        await t.write(0x000004, 6)
        assert await t.read(0x000004) == 6

    run(go())


def test_corrupt_response_is_reported():
    port = FakePort()
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0, retries=0)
    port.corrupt_next = 1
    with pytest.raises(host.LinkCorrupt, match="CRC mismatch"):
        run(t.read(3))


def test_missing_response_times_out():
    port = FakePort()
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0)
    port.silent_next = 1
    with pytest.raises(host.LinkTimeout, match=r"0 of 9 response bytes .*baud rate"):
        run(t.read(3))
    assert run(t.read(3)) == 0               # and the next request works


def test_response_to_another_request_is_corrupt():
    port = FakePort()
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0, retries=0)
    port.out += host.encode_response(lk.OP_WRITE, lk.ST_OK)      # a stale response in the buffer
    with pytest.raises(host.LinkCorrupt, match="does not answer the READ"):
        run(t.read(3))


def test_serial_transport_without_pyserial(monkeypatch):
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(ImportError, match="SerialTransport needs pyserial"):
        host.SerialTransport("/dev/ttyUSB9")


def test_serial_transport_with_pyserial():
    """A real pyserial port: loop:// echoes each request back, which the client must refuse."""
    pytest.importorskip("serial")
    t = host.SerialTransport("loop://", timeout=0.2, quiet=0.01, posted=False, retries=0)
    try:
        with pytest.raises(host.LinkTimeout, match="7 of 9 response bytes"):
            run(t.read(5))                       # a READ frame is 7 bytes: too short for a response
        with pytest.raises(host.LinkCorrupt, match="not the sync byte"):
            run(t.write(5, 1))                   # a WRITE frame is 11: the first 9 are no response
        assert t.port.in_waiting == 0            # resynchronised: the rest was dropped
    finally:
        t.close()


# -- retries ---------------------------------------------------------------------------------------

CMD = 0x000000          # the engine's command register (REG region, R_CMD)


def test_a_corrupted_reply_is_retried():
    port = FakePort()
    port.memory[3] = 77
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0)

    async def go():
        assert await t.read(3) == 77                 # a good answer first: the board is there
        port.corrupt_next = 1
        assert await t.read(3) == 77
    run(go())
    assert t.retried == 1 and port.resets == 1
    assert [f.op for f in port.frames] == [lk.OP_READ] * 3


def test_a_rejected_burst_and_everything_behind_it_is_sent_again():
    port = FakePort()
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0, window=4)

    async def go():
        await t.info()
        port.reject_next = 1
        for i in range(600):                         # three bursts in one window: 256, 256, 88
            await t.write(0x400000 + i, i + 1)
        await t.flush()
    run(go())
    assert all(port.memory[0x400000 + i] == i + 1 for i in range(600))
    assert t.retried >= 1 and t.payload_bytes == 4 * 600


def test_retries_run_out():
    port = FakePort()
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0, retries=2)

    async def go():
        await t.read(0)
        port.corrupt_next = 3
        with pytest.raises(host.LinkCorrupt, match="CRC mismatch"):
            await t.read(3)
        assert await t.read(3) == 0
    run(go())
    assert t.retried == 2


def test_a_command_whose_reply_is_damaged_is_not_repeated():
    port = FakePort()
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0)

    async def go():
        await t.read(0)
        await t.write(0x100000, 1)
        await t.flush()
        port.corrupt_next = 1
        with pytest.raises(host.LinkUncertain, match="WRITE at 0x000000 may or may not"):
            await t.write(CMD, 0x41)
    run(go())
    writes = [f for f in port.frames if f.op == lk.OP_WRITE and f.addr == CMD]
    assert len(writes) == 1 and port.memory[0x100000] == 1


def test_a_rejected_command_was_not_executed_and_is_sent_again():
    port = FakePort()
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0)

    async def go():
        await t.read(0)
        port.reject_next = 1
        await t.write(CMD, 0x41)
    run(go())
    assert [f.addr for f in port.frames if f.op == lk.OP_WRITE] == [CMD, CMD] and t.retried == 1


def test_a_board_that_never_answered_is_not_retried():
    port = FakePort()
    port.silent_next = 10
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0)
    with pytest.raises(host.LinkTimeout, match="0 of 9 response bytes"):
        run(t.info())
    assert len(port.frames) == 1


def test_pipelined_reads():
    port = FakePort()
    port.memory.update({a: a * 7 for a in range(50)})
    t = host.SerialTransport(port, timeout=0.05, quiet=0.0, window=4)

    async def go():
        await t.read(0)
        port.corrupt_next = 1                        # a damaged reply in the middle of the pipeline
        return await t.read_many(range(50))
    assert run(go()) == [a * 7 for a in range(50)]
    assert t.retried >= 1 and t.bytes_received >= 51 * lk.RESPONSE_BYTES
