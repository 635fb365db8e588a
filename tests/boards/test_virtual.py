"""The board in a user's hands, on the virtual board (the board design in Verilator behind a pty).

The round trip of the issue, over the pseudo-terminal with pyserial: train on the CPU in fixed
point -> `board load` -> `board recall` -> `board train` one epoch -> `board read`; recall
results and the codes read back equal the fixed-point model's bit for bit. Plus plain pyserial
and the host driver on the same port, one-line errors for bad input, and retries under damaged
replies and requests. One design (N = 16) is built once for the module (~40 s, cached).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from memprop.boards import host, virtual
from memprop.boards.session import BoardSession, model_train
from memprop.cli import main
from memprop.model import patterns as pattern_sets
from memprop.model import weights
from memprop.model.config import Config
from memprop.rtl import hostmap as hm
from memprop.rtl import link as lk
from memprop.rtl.driver import EngineDriver
from memprop.sim.simulators import unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason("verilator") is not None,
                                reason=f"Verilator: {unavailable_reason('verilator')}")

CFG = Config.for_algorithm("eqprop", network={"n": 16}, numerics="fixed", device={"preset": "linear-64"},
                           train={"batch_size": 2, "seed": 5, "epochs": 30}, hw={"lanes": 4})
GLYPHS = """\
#..#
.##.
.##.
#..#

####
#...
#...
####

...#
..##
.###
####

#.#.
.#.#
#.#.
.#.#
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A cache (builds, config registry), the config, the patterns and CPU-trained weights."""
    root = tmp_path_factory.mktemp("virtual")
    old = os.environ.get("MEMPROP_CACHE")
    os.environ["MEMPROP_CACHE"] = str(root / "cache")
    (root / "cfg.json").write_text(CFG.to_json())
    (root / "glyphs.txt").write_text(GLYPHS)
    run = CliRunner().invoke(main, ["train", "--algo", "eqprop", "--numerics", "fixed", "--config", str(root / "cfg.json"),
                                    "--patterns", str(root / "glyphs.txt"), "--epochs", "30", "--seed", "2",
                                    "--out", str(root / "cpu.npz"), "--quiet"])
    assert run.exit_code == 0, run.output
    virtual.build(CFG, progress=False)
    yield root
    if old is None:
        os.environ.pop("MEMPROP_CACHE", None)
    else:
        os.environ["MEMPROP_CACHE"] = old


@pytest.fixture(scope="module")
def served(work):
    """`memprop board serve --sim` in a subprocess; yields the port (a symbolic link to the pty)."""
    port = work / "board.port"
    proc = subprocess.Popen([sys.executable, "-c", "from memprop.cli import main; main()", "board", "serve", "--sim",
                             "--config", str(work / "cfg.json"), "--link", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    try:
        first = proc.stdout.readline()        # printed once the terminal is open
        assert port.is_symlink(), first + proc.stdout.read()
        assert f"N=16, P=4, fingerprint {CFG.fingerprint}" in first and "/dev/pts/" in first
        yield str(port)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0 and "cycles simulated" in out, out


def cli(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def cli_json(*args) -> dict:
    code, out = cli(*args, "--json")
    assert code == 0, out
    return json.loads(out.strip().splitlines()[-1])


def test_round_trip_is_bit_exact(work, served):
    glyphs, cpu = work / "glyphs.txt", work / "cpu.npz"
    info = cli_json("board", "info", "--port", served)
    assert (info["fingerprint"], info["n"], info["lanes"], info["batch"], info["preset"]) == \
        (CFG.fingerprint, 16, 4, 2, "linear-64")
    assert info["clock_mhz"] == virtual.DEFAULT_CLOCK_HZ / 1e6 and info["config_source"] == "virtual board"

    loaded = cli_json("board", "load", "--port", served, "--weights", cpu)
    params, wcfg, _ = weights.load(cpu)
    from memprop.boards.image import image_of

    assert loaded["checksum"] == f"{image_of(params, CFG, seed=wcfg.train.seed).checksum:08x}"
    assert loaded["payload_bytes"] == 4 * loaded["words"] and loaded["efficiency"] > 0.9

    on_board = cli_json("board", "recall", "--port", served, "--patterns", glyphs, "--flip", 0.15, "--trials", 12,
                        "--seed", 3)
    model = cli_json("eval", "--weights", cpu, "--patterns", glyphs, "--flip", 0.15, "--trials", 12, "--seed", 3)
    assert set(model) <= set(on_board)
    assert {k: v for k, v in on_board.items() if k in model and k != "weights"} == \
        {k: v for k, v in model.items() if k != "weights"}
    assert on_board["recalls"] == 48 and on_board["cycles_per_recall"] > 0 and on_board["us_per_recall"] > 0

    trained = cli_json("board", "train", "--port", served, "--patterns", glyphs, "--epochs", 1, "--seed", 4,
                       "--out", work / "trained.npz")
    assert trained["samples"] == 4 * CFG.train.repeats and trained["updates"] == params.updates + trained["minibatches"]
    code, out = cli("board", "read", "--port", served, "--out", work / "back.npz")
    assert code == 0, out

    want = model_train(wcfg, params, pattern_sets.load(glyphs).values, 1, 4)
    for path in (work / "trained.npz", work / "back.npz"):
        got, gcfg, _ = weights.load(path)
        assert gcfg.fingerprint == CFG.fingerprint
        for name in ("codes_w", "codes_b", "class_w", "class_b", "mask"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), name
        assert got.updates == want.updates
    assert not np.array_equal(want.codes_w, params.codes_w)     # the epoch changed the devices

    after = cli_json("board", "recall", "--port", served, "--patterns", glyphs, "--flip", 0.1, "--trials", 8)
    model = cli_json("eval", "--weights", work / "back.npz", "--patterns", glyphs, "--flip", 0.1, "--trials", 8)
    assert after["per_class"] == model["per_class"] and after["accuracy"] == model["accuracy"]


def test_plain_pyserial_and_the_host_driver(served):
    serial = pytest.importorskip("serial")
    with serial.Serial(served, 1_000_000, timeout=2) as port:
        port.reset_input_buffer()
        port.write(host.encode_info())
        resp = host.decode_response(port.read(lk.RESPONSE_BYTES))
        assert resp.ok and resp.data >> 24 == lk.VERSION and resp.data & 0xFFFF == virtual.DEFAULT_CLOCK_HZ // 10_000
        port.write(host.encode_read(hm.address(hm.REG, hm.R_FP_HI)))
        assert host.decode_response(port.read(lk.RESPONSE_BYTES)).data == int(CFG.fingerprint, 16) >> 32

    async def driver_session():
        t = host.SerialTransport(served)
        try:
            await t.info()
            driver = EngineDriver(hm.Layout(host_formats()), t)
            await driver.check_identity()
            return await driver.reg(hm.R_INFO)
        finally:
            t.close()

    assert asyncio.run(driver_session()) == 4 | (16 << 8) | (2 << 20)


def host_formats():
    from memprop.model.numerics import Formats

    return Formats(CFG)


def one_line_error(code: int, out: str, match: str) -> None:
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), out
    assert match in lines[0], lines[0]


def test_bad_inputs_get_one_line_errors(work, served, tmp_path):
    one_line_error(*cli("board", "info", "--port", tmp_path / "ttyUSB9"), "cannot open serial port")
    master, slave = os.openpty()                      # a terminal with nothing behind it: a silent board
    try:
        one_line_error(*cli("board", "info", "--port", os.ttyname(slave), "--timeout", 0.2),
                       "no answer from a board on /dev/pts/")
    finally:
        os.close(master)
        os.close(slave)
    other = CFG.replace(device={"preset": "linear-256"})
    (tmp_path / "other.json").write_text(other.to_json())
    code, out = cli("train", "--algo", "eqprop", "--numerics", "fixed", "--config", tmp_path / "other.json",
                    "--patterns", work / "glyphs.txt", "--epochs", 1, "--out", tmp_path / "other.npz", "--quiet")
    assert code == 0, out
    one_line_error(*cli("board", "load", "--port", served, "--weights", tmp_path / "other.npz"),
                   "made for another configuration than the board's: device.preset: 'linear-256' vs 'linear-64' "
                   "on the board")
    code, out = cli("train", "--algo", "eqprop", "--patterns", work / "glyphs.txt", "--epochs", 1,
                    "--out", tmp_path / "float.npz", "--quiet")
    one_line_error(*cli("board", "load", "--port", served, "--weights", tmp_path / "float.npz"), "float weights")
    one_line_error(*cli("board", "recall", "--port", served, "--flip", 0.1), "patterns have 100 units")
    one_line_error(*cli("board", "info", "--port", served, "--config", tmp_path / "other.json"),
                   "--config describes fingerprint")


@pytest.mark.parametrize("fault", [{"flip_reply": 97}, {"flip_request": 1499}])
def test_damaged_bytes_are_retried_and_results_stay_exact(work, fault):
    from memprop.model import recall

    params, wcfg, _ = weights.load(work / "cpu.npz")
    pats = pattern_sets.load(work / "glyphs.txt")
    with virtual.VirtualBoard(CFG, progress=False, **fault) as vb:
        with BoardSession.open(vb.port) as session:
            session.load(params, wcfg)
            result, _ = session.recall(pats, 0.1, 4, seed=9)
            retried = session.transport.retried
        stats = vb.stats()
    assert result.to_dict() == recall.evaluate(params, wcfg, pats, 0.1, 4, seed=9).to_dict()
    assert retried > 0
    assert stats["flipped_out" if "flip_reply" in fault else "flipped_in"] > 0


PARTIAL_LOAD = """
import asyncio, sys, time
from memprop.boards.host import SerialTransport, encode_burst
from memprop.boards.image import image_of
from memprop.model import weights
from memprop.rtl import hostmap as hm

port, path = sys.argv[1], sys.argv[2]
params, cfg, _ = weights.load(path)
writes = image_of(params, cfg).writes()

async def main():
    t = SerialTransport(port)
    await t.info()
    await t.write(hm.address(hm.REG, hm.R_CMD), hm.command(hm.OP_BEGIN_LOAD))
    for addr, word in writes[: len(writes) // 2]:
        await t.write(addr, word)
    await t.flush()
    frame = encode_burst(*writes[len(writes) // 2][:1], [w for _, w in writes[len(writes) // 2:][:40]])
    t.port.write(frame[: len(frame) // 2])     # and then the host dies in the middle of a frame
    t.port.flush()
    print("ready", flush=True)
    time.sleep(600)

asyncio.run(main())
"""


def test_a_host_that_dies_mid_load_leaves_the_old_weights(work, served, tmp_path):
    """Old weights A on the board; a host begins loading B and is killed half-way through a
    frame: the engine is idle, computes with A (checksum and recall), and a later load of B
    takes effect whole. Then `board load` killed at random moments: always A or B."""
    import signal

    from memprop.boards.image import image_of
    from memprop.model import recall

    params_a, cfg_a, _ = weights.load(work / "cpu.npz")
    code, out = cli("train", "--algo", "eqprop", "--numerics", "fixed", "--config", work / "cfg.json", "--patterns",
                    work / "glyphs.txt", "--epochs", 3, "--seed", 8, "--out", tmp_path / "b.npz", "--quiet")
    assert code == 0, out
    params_b, cfg_b, _ = weights.load(tmp_path / "b.npz")
    crc_a = f"{image_of(params_a, CFG, seed=cfg_a.train.seed).checksum:08x}"
    crc_b = f"{image_of(params_b, CFG, seed=cfg_b.train.seed).checksum:08x}"
    assert cli_json("board", "load", "--port", served, "--weights", work / "cpu.npz")["checksum"] == crc_a

    proc = subprocess.Popen([sys.executable, "-c", PARTIAL_LOAD, served, str(tmp_path / "b.npz")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    info = cli_json("board", "info", "--port", served)
    assert not info["registers"]["busy"] and info["registers"]["loading"]
    assert info["checksum"] == crc_a
    pats = pattern_sets.load(work / "glyphs.txt")
    on_board = cli_json("board", "recall", "--port", served, "--patterns", work / "glyphs.txt", "--flip", 0.1,
                        "--trials", 4)
    assert on_board["per_class"] == recall.evaluate(params_a, cfg_a, pats, 0.1, 4, seed=0).per_class
    assert cli_json("board", "load", "--port", served, "--weights", tmp_path / "b.npz")["checksum"] == crc_b

    for delay, weights_file in ((0.3, work / "cpu.npz"), (0.9, tmp_path / "b.npz"), (1.5, work / "cpu.npz")):
        proc = subprocess.Popen([sys.executable, "-c", "from memprop.cli import main; main()", "board", "load",
                                 "--port", served, "--weights", str(weights_file)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        info = cli_json("board", "info", "--port", served)
        assert not info["registers"]["busy"] and info["checksum"] in (crc_a, crc_b)


@pytest.mark.slow
@pytest.mark.parametrize("fold", [False, True], ids=["default", "fold"])
def test_round_trip_n100(fold, tmp_path):
    """The ULX3S design (N = 100 dense, P = 32; also folded, hw.fold) on the virtual board: load
    <= 1 s at 1 Mbaud from the bytes on the wire, recall and one epoch of training bit-exact, codes
    read back bit-exact."""
    from memprop.boards.build import get_board
    from memprop.model import recall, training

    os.environ.setdefault("MEMPROP_CACHE", str(tmp_path / "cache"))
    cfg = get_board("ulx3s").default_config().replace(train={"epochs": 3}, hw={"fold": fold})
    pats = pattern_sets.load()
    params, _ = training.train(cfg, pats, progress=False)
    with virtual.VirtualBoard(cfg, clock_hz=25_000_000, progress=False) as vb:
        with BoardSession.open(vb.port) as session:
            report = session.load(params, cfg)
            assert report.wire_seconds <= 1.0 and report.efficiency > 0.95, report.to_dict()
            result, stats = session.recall(pats, 0.1, 2, seed=5)
            assert result.to_dict() == recall.evaluate(params, cfg, pats, 0.1, 2, seed=5).to_dict()
            session.train(pats, 1, seed=6)
            back, _, _ = session.read()
    want = model_train(cfg, params, pats.values, 1, 6)
    for name in ("codes_w", "codes_b", "class_w", "class_b"):
        assert np.array_equal(getattr(back, name), getattr(want, name)), name
    assert back.updates == want.updates


def test_the_demo_stage(work):
    """`memprop demo`'s virtual-board stage on the module's design: load, recall = the model's."""
    from memprop.demo import _virtual_board

    params, wcfg, _ = weights.load(work / "cpu.npz")
    out, line = _virtual_board("ulx3s", CFG, params, pattern_sets.load(work / "glyphs.txt"), quick=True,
                               clock_hz=virtual.DEFAULT_CLOCK_HZ)
    assert out["equals_model"] and out["load"]["atomic"] and out["recall"]["recalls"] == 4
    assert "= the model's" in line and "checksum" in line
