"""The virtual board: the board design in Verilator behind a pseudo-terminal.

`memprop board serve --sim` compiles `SerialEngine` (boards/top.py: UART + host link +
engine, the board design without its pins) with Verilator and a small C++ harness
(`vboard.cpp`) that bridges the UART pins to a pseudo-terminal opened here, and prints the
terminal's path. Every `memprop board` command, pyserial and the host driver then run
unchanged against it: the bytes cross the design's own UART receiver and transmitter and its
host link, bit by bit. Only the bit time differs from a board's: `DIVISOR` (4) clock cycles
per bit instead of 12 or 25, so the simulation spends its cycles on the engine, not on idle
line time; the protocol does not change.

The design's clock is nominal (`clock_hz`, the board's for `--board`): it turns cycle counts
into microseconds and is reported by the link's INFO, as a board's is. The link's timeout
(`LINK_TIMEOUT` cycles) takes `IDLE_MS` of wall time while the host is quiet (the harness
lets simulated time follow the wall clock then), so a host that stalls between two bytes of a
frame behaves as on a board (20 ms there), and `SerialTransport`'s `quiet` (0.2 s) covers it.

Builds are cached per design (the Verilog, the harness, Verilator's version and flags) in
`$MEMPROP_CACHE/virtual/` (default `~/.cache/memprop/virtual/`): about 30 s for N = 16 and two
minutes for N = 100 on two cores, once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import tty
from pathlib import Path

from memprop.model.config import Config

from . import configs

TOP = "memprop_board"
HARNESS = Path(__file__).with_name("vboard.cpp")
#: Clock cycles per UART bit in the virtual board (the UART's minimum).
DIVISOR = 4
#: The link's timeout in cycles; it takes IDLE_MS of wall time while the host is quiet.
LINK_TIMEOUT = 16384
#: Cycles after the last byte in which the link has certainly answered (a 256-word burst executes
#: in ~520 cycles, a response takes 9 x 10 x DIVISOR).
RESPOND = 4096
IDLE_MS = 100
#: Nominal clock of a virtual board made from a --config (no board named).
DEFAULT_CLOCK_HZ = 25_000_000
VERILATOR_FLAGS = ("--cc", "--exe", "--build", "-j", "2", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3",
                   "--x-assign", "fast", "--x-initial", "fast", "--noassert")
#: C++ optimisation: -O2 runs about twice as fast as Verilator's default -Os for this design.
MAKE_FLAGS = "OPT_FAST=-O2 OPT_SLOW=-O1 OPT_GLOBAL=-O2"


class VirtualBoardError(RuntimeError):
    """The virtual board cannot be built or started; the message says why."""


def design(cfg: Config, clock_hz: int):
    """The board design without pins, at `DIVISOR` cycles per bit (baud = clock / DIVISOR)."""
    from .top import SerialEngine

    return SerialEngine(cfg, clk_freq=clock_hz, baud=clock_hz / DIVISOR, timeout=LINK_TIMEOUT, max_burst=256,
                        fifo_depth=16)


def _verilator():
    from memprop.sim.simulators import SimulatorUnavailable, build_env, setup

    try:
        exe = setup("verilator")
    except SimulatorUnavailable as exc:
        raise VirtualBoardError(f"the virtual board needs Verilator: {exc}") from None
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return exe, version, build_env("verilator")


def build(cfg: Config, clock_hz: int = DEFAULT_CLOCK_HZ, *, cache: Path | None = None, progress: bool = True) -> Path:
    """The harness executable for `cfg` (built once per design; later calls return the cached one)."""
    from amaranth.back import verilog

    if cfg.numerics != "fixed":
        raise VirtualBoardError(f"the board runs the fixed-point model: the config has numerics {cfg.numerics!r}")
    text = verilog.convert(design(cfg, clock_hz), name=TOP, emit_src=False)
    exe, version, env = _verilator()
    key = hashlib.sha256("\0".join([text, HARNESS.read_text(), version, " ".join(VERILATOR_FLAGS), MAKE_FLAGS])
                         .encode()).hexdigest()[:16]
    root = (cache or configs.cache_dir()) / "virtual"
    out = root / key
    binary = out / "vboard"
    if binary.is_file():
        return binary
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)            # another process may be building the same design
        if binary.is_file():
            return binary
        work = root / f"{key}.build{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        (work / f"{TOP}.v").write_text(text)
        shutil.copy(HARNESS, work / HARNESS.name)
        cmd = [exe, *VERILATOR_FLAGS, "--top-module", TOP, "-MAKEFLAGS", MAKE_FLAGS, f"{TOP}.v", HARNESS.name,
               "-o", "vboard", "--Mdir", "obj"]
        log = work / "build.log"
        _run_with_progress(cmd, work, {**os.environ, **env}, log, progress,
                           f"building the virtual board (Verilator, once per design; N={cfg.network.n}, "
                           f"P={cfg.hw.lanes})")
        built = work / "obj" / "vboard"
        if not built.is_file():
            raise VirtualBoardError(f"Verilator did not build the virtual board; see {log}")
        shutil.move(str(built), work / "vboard")
        (work / "config.json").write_text(cfg.to_json())
        shutil.rmtree(work / "obj", ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        work.rename(out)
    return binary


def _run_with_progress(cmd, cwd: Path, env: dict, log: Path, progress: bool, what: str) -> None:
    from tqdm.auto import tqdm

    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        with tqdm(desc=what, unit="s", disable=None if progress else True, leave=False,
                  bar_format="{desc}: {elapsed}") as bar:
            while proc.poll() is None:
                time.sleep(1.0)
                bar.update(1)
    if proc.returncode != 0:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        raise VirtualBoardError(f"Verilator failed to build the virtual board (exit {proc.returncode}; "
                                f"log {log}): {tail[-400:]}")


class VirtualBoard:
    """A running virtual board: `start()` returns the pseudo-terminal's path; `stop()` ends it.

    `flip_reply=K` / `flip_request=K` flip a bit of every K-th byte to / from the host (fault
    tests); `link` makes a symbolic link to the terminal (a stable name for scripts).
    """

    def __init__(self, cfg: Config, *, clock_hz: int = DEFAULT_CLOCK_HZ, board: str | None = None,
                 flip_reply: int = 0, flip_request: int = 0, link: str | Path | None = None,
                 cache: Path | None = None, progress: bool = True):
        self.cfg = cfg
        self.clock_hz = int(clock_hz)
        self.board = board
        self.flip_reply = flip_reply
        self.flip_request = flip_request
        self.link = Path(link) if link else None
        self.cache = cache
        self.progress = progress
        self.proc: subprocess.Popen | None = None
        self.port: str | None = None
        self._slave: int | None = None
        self._stats_file: Path | None = None

    def start(self) -> str:
        binary = build(self.cfg, self.clock_hz, cache=self.cache, progress=self.progress)
        configs.remember(self.cfg, "virtual board", board=self.board, clock_hz=self.clock_hz)
        master, slave = os.openpty()
        tty.setraw(slave)
        self._slave = slave                 # kept open: the harness never sees a hang-up between clients
        self.port = os.ttyname(slave)
        self._stats_file = binary.parent / f"stats-{os.getpid()}-{slave}.json"
        cmd = [str(binary), "--fd", str(master), "--divisor", str(DIVISOR), "--link-timeout", str(LINK_TIMEOUT),
               "--respond", str(RESPOND), "--idle-ms", str(IDLE_MS), "--stats", str(self._stats_file),
               "--stats-every", "1", "--flip-reply", str(self.flip_reply), "--flip-request", str(self.flip_request)]
        try:
            self.proc = subprocess.Popen(cmd, pass_fds=(master,), stdin=subprocess.DEVNULL)
        finally:
            os.close(master)
        if self.link is not None:
            if self.link.is_symlink() or self.link.exists():
                self.link.unlink()
            self.link.symlink_to(self.port)
        return self.port

    def stats(self) -> dict:
        """Cycles simulated, bytes each way, seconds spent simulating (updated every second and at stop)."""
        try:
            return json.loads(self._stats_file.read_text()) if self._stats_file else {}
        except (OSError, ValueError):
            return {}

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> dict:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        stats = self.stats()
        if self._stats_file is not None:
            self._stats_file.unlink(missing_ok=True)
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
        return stats

    def __enter__(self) -> "VirtualBoard":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
