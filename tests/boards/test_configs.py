"""Which Config a board runs: the registry of designs, design ids, the weight checksum."""

from __future__ import annotations

import zlib

from memprop.boards import configs
from memprop.boards.image import checksum, config_differences
from memprop.model.config import Config
from memprop.rtl.hostmap import design_id

CFG = Config.for_algorithm("eqprop", network={"n": 12}, numerics="fixed", device={"preset": "linear-64"},
                           train={"batch_size": 2}, hw={"lanes": 4})


def test_design_id_covers_the_learning_constants_not_the_schedule():
    assert design_id(CFG) == design_id(CFG.replace(train={"epochs": 5, "seed": 9, "repeats": 3}))
    for change in ({"train": {"lr": 0.05}}, {"train": {"batch_size": 4}}, {"hw": {"lanes": 2}},
                   {"device": {"preset": "linear-256"}}, {"train": {"nudge": "centered"}}):
        assert design_id(CFG.replace(**change)) != design_id(CFG), change
    assert CFG.replace(train={"lr": 0.05}).fingerprint == CFG.fingerprint     # what the id adds


def test_registry_remembers_and_matches(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMPROP_CACHE", str(tmp_path))
    other = CFG.replace(train={"lr": 0.05})
    configs.remember(CFG, "test build", board=None, clock_hz=12_000_000)
    configs.remember(other, "other build")
    (tmp_path / "configs" / "junk.json").write_text("{not json")
    found = configs.known()
    sources = [k.source for k in found]
    assert "test build" in sources and "other build" in sources and "the ulx3s default" in sources
    fp = CFG.fingerprint
    by_id = [k for k in found if configs.matches(k.cfg, fp, 4, 12, 2, design_id(CFG))]
    assert [k.source for k in by_id] == ["test build"] and by_id[0].clock_hz == 12_000_000
    by_shape = [k.source for k in found if configs.matches(k.cfg, fp, 4, 12, 2, None)]
    assert set(by_shape) == {"test build", "other build"}          # a version-1 engine cannot tell them apart
    assert not [k for k in found if configs.matches(k.cfg, fp, 2, 12, 2, None)]


def test_registry_in_a_read_only_place(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("MEMPROP_CACHE", str(blocked))             # a file where the folder should be
    assert configs.remember(CFG, "x") is None
    assert [k.source for k in configs.known()][0] == "the icebreaker default"


def test_checksum_is_zlib_crc32_of_little_endian_entries():
    codes, bias = [0x1234, 0xABC, 0x0FFF], [0x0102, 0x0003]
    blob = bytes([0x34, 0x12, 0xBC, 0x0A, 0xFF, 0x0F, 0x02, 0x01, 0x03, 0x00]) + (7).to_bytes(4, "little") + \
        (9).to_bytes(4, "little")
    assert checksum(codes, bias, 7, 9, 12) == zlib.crc32(blob)
    assert checksum([1, 2], [3], 0, 0, 20) == zlib.crc32(bytes([1, 0, 0, 2, 0, 0, 3, 0, 0]) + bytes(8))


def test_config_differences_name_the_fields():
    other = CFG.replace(device={"preset": "linear-256"}, network={"n": 16})
    assert config_differences(other, CFG) == ["network.n: 16 vs 12", "device.preset: 'linear-256' vs 'linear-64'"]


def test_design_id_names_per_layer_rates_and_decay_only_when_set():
    """Per-layer rates and their decay make another learner (another id); a design without them
    keeps the id it had before they existed (the old formula, the train fields of DESIGN_TRAIN_FIELDS)."""
    import hashlib
    import json

    from memprop.rtl.hostmap import DESIGN_TRAIN_FIELDS

    layered = Config.for_algorithm("eqprop", numerics="fixed", device={"preset": "linear-64"},
                                   network={"n": 10, "topology": "layered", "layers": (3, 4, 3)})
    rated = layered.replace(train={"layer_lr": (0.1, 0.05)})
    decaying = rated.replace(train={"lr_decay": 0.5})
    assert len({design_id(c) for c in (layered, rated, decaying)}) == 3
    assert design_id(layered.replace(hw={"fold": True})) != design_id(layered)
    assert design_id(layered.replace(hw={"dsp": "mult18x18d"})) == design_id(layered)
    assert design_id(layered.replace(hw={"keep_sums": True})) != design_id(layered)
    for cfg in (CFG, layered):
        what = cfg.model_dump(include={"numerics", "network", "fixed", "device", "hw"})
        what["train"] = {k: getattr(cfg.train, k) for k in DESIGN_TRAIN_FIELDS}
        assert what["hw"].pop("fold") is False      # hw.fold came later: an unfolded design keeps its id
        assert what["hw"].pop("dsp") == "auto"      # and hw.dsp, which never changes what it computes
        assert what["hw"].pop("keep_sums") is False  # hw.keep_sums came later as well
        blob = json.dumps(what, sort_keys=True, separators=(",", ":"), default=str).encode()
        assert design_id(cfg) == hashlib.sha256(blob).hexdigest()[:16]
