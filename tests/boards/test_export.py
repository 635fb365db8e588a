"""`memprop export`: hardware images of weight files, their round trip, and the refusals."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from memprop.boards import image as img
from memprop.boards.host import run_simulated
from memprop.cli import main
from memprop.model import weights
from memprop.model.config import Config
from memprop.model.fixed import FixedParams
from memprop.model.network import Params
from memprop.rtl.driver import EngineDriver
from memprop.rtl.verify import make_case

CFG = Config.for_algorithm("eqprop", network={"n": 8}, numerics="fixed", train={"batch_size": 1, "seed": 9},
                           device={"preset": "linear-64", "d2d_classes": 2, "d2d": 0.1}, hw={"lanes": 2})


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def clean_error(result, pattern: str) -> None:
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    [line] = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert re.search(pattern, line), line


@pytest.fixture
def fixed_file(tmp_path):
    params = make_case(CFG, 4).params
    path = weights.save(tmp_path / "fixed.npz", params, CFG)
    return path, params


@pytest.fixture
def float_file(tmp_path):
    cfg = Config.for_algorithm("eqprop", network={"n": 8})
    r = np.random.default_rng(0)
    W = r.uniform(-0.3, 0.3, (8, 8))
    W = (W + W.T) / 2
    np.fill_diagonal(W, 0)
    params = Params(W=W, b=r.uniform(-0.2, 0.2, 8), mask=~np.eye(8, dtype=bool))
    return weights.save(tmp_path / "float.npz", params, cfg), params


def write_config(tmp_path, cfg: Config):
    path = tmp_path / "hw.json"
    path.write_text(cfg.to_json())
    return path


def test_export_round_trip(tmp_path, fixed_file):
    path, params = fixed_file
    result = run("export", "--weights", path, "--out", tmp_path / "img")
    assert result.exit_code == 0, result.output
    assert f"fingerprint {CFG.fingerprint}" in result.output
    image = img.read_image(tmp_path / "img")
    assert image.fingerprint == CFG.fingerprint and image.seed == 9 and image.updates == params.updates
    back = image.params()
    mask = params.mask[None]
    assert np.array_equal(back.codes_w * mask, params.codes_w * mask)
    assert np.array_equal(back.class_w * mask, params.class_w * mask)
    assert np.array_equal(back.codes_b, params.codes_b) and np.array_equal(back.class_b, params.class_b)
    lines = (tmp_path / "img" / "codes.hex").read_text().split()
    assert [int(x, 16) for x in lines] == image.codes
    assert len((tmp_path / "img" / "bias.hex").read_text().split()) == 8


def test_export_for_more_lanes(tmp_path, fixed_file):
    """Same network, another P: the image is laid out for the target's stream."""
    path, params = fixed_file
    target = CFG.replace(hw={"lanes": 3})
    result = run("export", "--weights", path, "--config", write_config(tmp_path, target), "--out", tmp_path / "img")
    assert result.exit_code == 0, result.output
    image = img.read_image(tmp_path / "img" / "image.json")
    assert image.cfg.hw.lanes == 3
    assert np.array_equal(image.params().codes_w * params.mask[None], params.codes_w * params.mask[None])


def test_image_programs_the_engine(tmp_path, fixed_file):
    """The exported image, written over the simulated link, is what the engine then holds."""
    path, params = fixed_file
    assert run("export", "--weights", path, "--out", tmp_path / "img").exit_code == 0
    image = img.read_image(tmp_path / "img")

    async def session(t, design):
        driver = EngineDriver(design.engine.layout, t)
        await img.program(driver, image)
        return await driver.read_params(params)

    back = run_simulated(CFG, session)
    assert np.array_equal(back.codes_w * params.mask[None], params.codes_w * params.mask[None])
    assert np.array_equal(back.codes_b, params.codes_b) and back.updates == params.updates


def test_program_refuses_another_layout(fixed_file):
    _, params = fixed_file
    image = img.image_of(params, CFG.replace(hw={"lanes": 3}))

    async def session(t, design):
        with pytest.raises(img.ImageError, match="P=3"):
            await img.program(EngineDriver(design.engine.layout, t), image)

    run_simulated(CFG, session)


def test_float_weights_need_from_float(tmp_path, float_file):
    path, _ = float_file
    clean_error(run("export", "--weights", path, "--out", tmp_path / "img"), r"float weights .*--from-float")


def test_from_float(tmp_path, float_file):
    path, params = float_file
    hw = Config.for_algorithm("eqprop", network={"n": 8}, numerics="fixed", device={"preset": "linear-256"})
    result = run("export", "--weights", path, "--from-float", "--config", write_config(tmp_path, hw),
                 "--out", tmp_path / "img")
    assert result.exit_code == 0, result.output
    assert "programmed from float weights (largest weight error" in result.output
    image = img.read_image(tmp_path / "img")
    want = FixedParams.from_float(hw, params.W, params.b)
    assert np.array_equal(image.params().codes_w * want.mask[None], want.codes_w * want.mask[None])


def test_from_float_needs_the_same_network(tmp_path, float_file):
    path, _ = float_file
    hw = Config.for_algorithm("eqprop", network={"n": 8, "eps": 0.25}, numerics="fixed")
    clean_error(run("export", "--weights", path, "--from-float", "--config", write_config(tmp_path, hw),
                    "--out", tmp_path / "img"), "network section differs")
    clean_error(run("export", "--weights", path, "--from-float", "--out", tmp_path / "img"),
                "needs a fixed-point hardware config")


def test_mismatched_config_is_refused(tmp_path, fixed_file):
    path, _ = fixed_file
    other = CFG.replace(device={"preset": "linear-256", "d2d_classes": 1, "d2d": None})
    clean_error(run("export", "--weights", path, "--config", write_config(tmp_path, other), "--out", tmp_path / "img"),
                r"made for config .* differ in: device")
    clean_error(run("export", "--weights", path, "--board", "icebreaker", "--out", tmp_path / "img"),
                r"differ in: network, fixed, device")


def test_bad_inputs(tmp_path, fixed_file):
    path, _ = fixed_file
    clean_error(run("export", "--weights", tmp_path / "missing.npz", "--out", tmp_path / "img"), "no such weight file")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    clean_error(run("export", "--weights", tmp_path / "junk.npz", "--out", tmp_path / "img"), "not a readable")
    float_cfg = tmp_path / "float.json"
    float_cfg.write_text(Config.for_algorithm("eqprop", network={"n": 8}).to_json())
    clean_error(run("export", "--weights", path, "--config", float_cfg, "--out", tmp_path / "img"),
                "hardware needs numerics 'fixed'")
    result = run("export", "--weights", path, "--config", float_cfg, "--board", "ulx3s", "--out", tmp_path / "img")
    assert result.exit_code == 2 and "not both" in result.output


def test_read_image_errors(tmp_path, fixed_file):
    path, _ = fixed_file
    assert run("export", "--weights", path, "--out", tmp_path / "img").exit_code == 0
    good = json.loads((tmp_path / "img" / "image.json").read_text())

    def check(data, match):
        (tmp_path / "bad.json").write_text(json.dumps(data))
        with pytest.raises(img.ImageError, match=match):
            img.read_image(tmp_path / "bad.json")

    check({**good, "format": "other"}, "format 'other'")
    check({**good, "fingerprint": "0" * 16}, "does not match its config")
    check({**good, "codes": good["codes"][:-1]}, "stream entries")
    check({**good, "bias": ["fffff"] * 8}, "does not fit")
    check({k: v for k, v in good.items() if k != "seed"}, "malformed")
    with pytest.raises(img.ImageError, match="not a readable image"):
        img.read_image(tmp_path / "nothing.json")


def test_export_for_a_board(tmp_path):
    from memprop.boards.build import get_board

    cfg = get_board("icebreaker").default_config()
    params = make_case(cfg, 1).params
    path = weights.save(tmp_path / "ice.npz", params, cfg)
    result = run("export", "--weights", path, "--board", "icebreaker", "--out", tmp_path / "img")
    assert result.exit_code == 0, result.output
    assert "N=100, P=4" in result.output
    image = img.read_image(tmp_path / "img")
    assert len(image.codes) == image.layout.schedule.length and image.fingerprint == cfg.fingerprint
