"""A Python model of the link for host-side tests: a serial-port-like object (write/read)."""

from __future__ import annotations

from memprop.boards import host
from memprop.rtl import link as lk


class FakePort:
    """Answers request frames like the link does, from a dict memory; knobs break it."""

    def __init__(self, max_burst: int = lk.MAX_BURST):
        self.memory: dict[int, int] = {}
        self.max_burst = max_burst
        self.out = bytearray()
        self.frames: list[host.Request] = []
        self.corrupt_next = 0         # flip a bit in the next n responses
        self.silent_next = 0          # swallow the next n requests (no response)
        self.reject_next = 0          # answer the next n requests with ST_BAD_CRC
        self.resets = 0

    def write(self, data: bytes) -> int:
        req = host.decode_request(data)
        self.frames.append(req)
        if self.silent_next:
            self.silent_next -= 1
            return len(data)
        if self.reject_next:
            self.reject_next -= 1
            resp = host.encode_response(req.op, lk.ST_BAD_CRC)
        elif req.op == lk.OP_READ:
            resp = host.encode_response(req.op, lk.ST_OK, self.memory.get(req.addr, 0))
        elif req.op == lk.OP_INFO:
            resp = host.encode_response(req.op, lk.ST_OK, lk.info_word(self.max_burst))
        elif req.op == lk.OP_BURST and len(req.words) > self.max_burst:
            resp = host.encode_response(req.op, lk.ST_BAD_LENGTH)
        else:
            for i, word in enumerate(req.words):
                self.memory[req.addr + i] = word
            resp = host.encode_response(req.op, lk.ST_OK, len(req.words) if req.op == lk.OP_BURST else 0)
        if self.corrupt_next:
            self.corrupt_next -= 1
            resp = resp[:4] + bytes([resp[4] ^ 0x10]) + resp[5:]
        self.out += resp
        return len(data)

    def read(self, n: int) -> bytes:
        got, self.out = bytes(self.out[:n]), self.out[n:]
        return got

    def reset_input_buffer(self) -> None:
        self.resets += 1
        self.out.clear()
