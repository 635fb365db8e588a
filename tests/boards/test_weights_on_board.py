"""Engine version 2 through the link, in Amaranth's simulator: CHECKSUM, BEGIN_LOAD/COMMIT
(a load takes effect whole), the command counter, the design id and version registers."""

from __future__ import annotations

import numpy as np

from memprop.boards.host import run_simulated
from memprop.boards.image import checksum, image_of
from memprop.model import fixed
from memprop.model.config import Config
from memprop.rtl import hostmap as hm
from memprop.rtl.checksum import checksum_cycles, crc32_byte
from memprop.rtl.driver import EngineDriver
from memprop.rtl.verify import make_case

CFG = Config.for_algorithm("eqprop", network={"n": 6}, numerics="fixed", train={"batch_size": 1, "seed": 3},
                           device={"preset": "linear-64"}, hw={"lanes": 3})


def test_crc_step_is_zlibs():
    import zlib

    data = bytes(range(7, 200, 3))
    crc = 0xFFFFFFFF
    for byte in data:
        crc = crc32_byte(crc, byte)
    assert crc ^ 0xFFFFFFFF == zlib.crc32(data)


async def engine_checksum(driver, bank=hm.BANK_ACTIVE) -> tuple[int, int]:
    cycles = await driver.run(hm.OP_CHECKSUM, set_=bank)
    return await driver.reg(hm.R_CHECKSUM), cycles


def test_checksum_load_and_commit():
    old = make_case(CFG, 1).params
    new = make_case(CFG, 2).params
    new.updates = 77
    fmt = fixed.Formats(CFG)
    img_old, img_new = image_of(old, CFG, seed=11), image_of(new, CFG, seed=12)
    assert img_old.checksum != img_new.checksum
    lay = hm.Layout(fmt)
    drive = make_case(CFG, 3).drive
    one = fixed.FixedDrive(drive.v0[:1], drive.x[:1], drive.clamped)

    def model_relax(params):
        W, b = params.weights(fmt.device)
        return fixed.fixed_relax(fmt, W, b, one).v[0]

    async def session(t, design):
        d = EngineDriver(lay, t)
        out = {"version": await d.reg(hm.R_VERSION),
               "design": (await d.reg(hm.R_DESIGN_HI) << 32) | await d.reg(hm.R_DESIGN_LO)}
        for addr, word in img_old.writes():
            await t.write(addr, word)
        out["old"] = await engine_checksum(d)
        commands = await d.reg(hm.R_COMMANDS)
        # a load that stops half-way: the active bank (and t, seed) stay the old ones
        await d.run(hm.OP_BEGIN_LOAD)
        out["loading"] = await d.reg(hm.R_CMD)
        writes = img_new.writes()
        for addr, word in writes[:len(writes) // 2] + writes[-2:]:
            await t.write(addr, word)
        out["during"] = await engine_checksum(d)
        out["updates_during"] = await d.reg(hm.R_UPDATES)
        [r] = await d.recall(one)
        out["relax_during"] = r.v
        # the rest, then COMMIT: now the new weights, whole
        for addr, word in writes[len(writes) // 2:]:
            await t.write(addr, word)
        out["shadow"] = await engine_checksum(d, hm.BANK_SHADOW)
        await d.run(hm.OP_COMMIT)
        out["after"] = await engine_checksum(d)
        out["updates_after"] = await d.reg(hm.R_UPDATES)
        out["seed_after"] = await d.reg(hm.R_SEED)
        [r] = await d.recall(one)
        out["relax_after"] = r.v
        out["commands"] = await d.reg(hm.R_COMMANDS) - commands
        out["status"] = await d.reg(hm.R_CMD)
        back = await d.read_params(old)
        out["back_codes"] = back.codes_w * old.mask
        # a COMMIT without BEGIN_LOAD is refused
        await d.set_reg(hm.R_CMD, hm.command(hm.OP_COMMIT))
        out["lone_commit"] = await d.reg(hm.R_CMD)
        return out

    out = run_simulated(CFG, session)
    assert out["version"] == ((hm.ENGINE_VERSION << 24) | hm.FEATURE_ATOMIC_LOAD | hm.FEATURE_CHECKSUM
                              | (hm.FEATURE_RELAX_STORE if lay.relax_store else 0))
    assert f"{out['design']:016x}" == hm.design_id(CFG)
    words = lay.schedule.depth
    cyc = checksum_cycles(words, 3, 6, lay.entry_bits) + 1
    assert out["old"] == (img_old.checksum, cyc) and out["during"] == (img_old.checksum, cyc)
    assert out["loading"] & hm.STATUS_LOADING and not out["status"] & hm.STATUS_LOADING
    assert out["updates_during"] == old.updates
    assert np.array_equal(out["relax_during"], model_relax(old))
    assert out["shadow"][0] == img_new.checksum and out["after"][0] == img_new.checksum
    assert (out["updates_after"], out["seed_after"]) == (77, 12)
    assert np.array_equal(out["relax_after"], model_relax(new))
    assert np.array_equal(out["back_codes"], new.codes_w * new.mask)
    assert out["commands"] == 7          # BEGIN_LOAD, CHECKSUM, RELAX, CHECKSUM, COMMIT, CHECKSUM, RELAX
    assert out["lone_commit"] & hm.STATUS_ERROR


def test_checksum_matches_host_for_the_fixed_model():
    """After LEARN too: the engine's checksum equals the host's of the model's codes."""
    case = make_case(CFG, 5)

    async def session(t, design):
        d = EngineDriver(hm.Layout(fixed.Formats(CFG)), t)
        await d.load_params(case.params)
        return (await engine_checksum(d))[0]

    img = image_of(case.params, CFG)
    assert run_simulated(CFG, session) == checksum(img.codes, img.bias, case.params.updates, CFG.train.seed,
                                                   img.layout.entry_bits)


def test_weights_baked_into_the_design():
    """`memprop build --weights`: the block-RAM code memory, biases, t and seed start with the image."""
    case = make_case(CFG, 7)
    img = image_of(case.params, CFG, seed=21)
    fmt = fixed.Formats(CFG)
    drive = make_case(CFG, 8).drive
    one = fixed.FixedDrive(drive.v0[:1], drive.x[:1], drive.clamped)

    async def session(t, design):
        d = EngineDriver(hm.Layout(fmt), t)
        [r] = await d.recall(one)
        return (await engine_checksum(d))[0], await d.reg(hm.R_UPDATES), await d.reg(hm.R_SEED), r.v

    crc, updates, seed, v = run_simulated(CFG, session, init=img)
    W, b = case.params.weights(fmt.device)
    assert (crc, updates, seed) == (img.checksum, case.params.updates, 21)
    assert np.array_equal(v, fixed.fixed_relax(fmt, W, b, one).v[0])


def test_build_refuses_to_bake_into_spram(tmp_path):
    from click.testing import CliRunner

    from memprop.cli import main

    result = CliRunner().invoke(main, ["build", "--board", "icebreaker", "--weights", str(tmp_path / "w.npz"),
                                       "--config", str(_spram_config(tmp_path)), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "SPRAM, which a bitstream cannot initialise" in result.output and "memprop board load" in result.output
    assert not (tmp_path / "b").exists()


def _spram_config(tmp_path):
    path = tmp_path / "spram.json"
    path.write_text(CFG.replace(hw={"code_memory": "spram"}).to_json())
    return path
