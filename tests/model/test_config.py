"""Config: validation with clear one-line errors, JSON round trip, fingerprint scope."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from memprop.model.config import ALGORITHM_DEFAULTS, Config, ConfigError


@pytest.mark.parametrize("build, message", [
    (lambda: Config.create(network={"n": 10, "topology": "band", "band": 10}),
     r"network: band topology needs 0 < band < n, got band=10 with n=10"),
    (lambda: Config.create(network={"n": 10, "topology": "band", "band": 25}), r"band=25 with n=10"),
    (lambda: Config.create(network={"n": 10, "topology": "band", "band": 0}), r"0 < band < n"),
    (lambda: Config.create(network={"n": 10, "band": 3}), r"band=3 is only meaningful with topology='band'"),
    (lambda: Config.create(network={"n": 10, "topology": "layered", "layers": (3, 4, 4)}),
     r"layer sizes \(3, 4, 4\) sum to 11, but n=10"),
    (lambda: Config.create(network={"n": 10, "topology": "layered", "layers": (10,)}),
     r"at least \(input, output\) layer sizes"),
    (lambda: Config.create(network={"n": 10, "topology": "layered", "layers": (0, 10)}),
     r"layer sizes must be positive"),
    (lambda: Config.create(network={"n": 10, "layers": (5, 5)}), r"use topology='layered'"),
    (lambda: Config.create(network={"activation": "hard_tanh", "dynamics": "bounded"}, train={"algo": "rbp"}),
     r"algo 'rbp' runs the additive network.*dynamics='additive'"),
    (lambda: Config.for_algorithm("rbp", network={"activation": "hard_tanh", "dynamics": "bounded"}),
     r"algo 'rbp' runs the additive network"),
    (lambda: Config.create(network={"activation": "tanh", "dynamics": "bounded"}),
     r"bounded dynamics .*use dynamics='euler' with tanh"),
    (lambda: Config.create(network={"activation": "hard_tanh", "dynamics": "euler"}), r"cycles at the box edge"),
    (lambda: Config.for_algorithm("eqprop", network={"activation": "tanh", "dynamics": "additive"}),
     r"algo 'eqprop' needs energy dynamics"),
    (lambda: Config.for_algorithm("storkey", network={"n": 10, "topology": "layered", "layers": (5, 5)}),
     r"'storkey' is a Hopfield rule"),
    (lambda: Config.for_algorithm("rbp", train={"nudge": "centered"}), r"nudge='centered' applies to eqprop only"),
    (lambda: Config.create(network={"n": 10, "bogus": 1}), r"network\.bogus: Extra inputs are not permitted"),
    (lambda: Config.create(train={"learning_rate": 0.1}), r"train\.learning_rate: Extra inputs"),
    (lambda: Config.create(netwrk={"n": 10}), r"netwrk: Extra inputs"),
    (lambda: Config.create(network={"n": 1}), r"network\.n: .*greater than or equal to 2"),
    (lambda: Config.create(network={"eps": 0.0}), r"network\.eps"),
    (lambda: Config.create(train={"train_flip": 0.5}), r"train\.train_flip"),
    (lambda: Config.create(train={"seed": -1}), r"train\.seed"),
    (lambda: Config.create(network={"activation": "relu"}), r"network\.activation"),
    (lambda: Config.for_algorithm("backprop"), r"unknown algorithm 'backprop'"),
    (lambda: Config().replace(nosection={"x": 1}), r"unknown config section 'nosection'"),
    (lambda: Config().replace(network={"n": 10, "topology": "band", "band": 12}), r"0 < band < n"),
    (lambda: Config.from_json("{not json"), r"config is not valid JSON"),
    (lambda: Config.from_json("[1, 2]"), r"config JSON must be an object"),
    (lambda: Config.from_json('{"network": {"n": 8, "colour": "red"}}'), r"network\.colour: Extra inputs"),
    (lambda: Config.create(hw={"lanes": 4, "lutram_act_lanes": 5}), r"lutram_act_lanes=5 exceeds lanes=4"),
    (lambda: Config.create(hw={"lutram_act_lanes": -1}), r"hw\.lutram_act_lanes"),
])
def test_invalid_configs_raise_config_error(build, message):
    with pytest.raises(ConfigError, match=message) as info:
        build()
    assert "\n" not in str(info.value)           # one line


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.network.n = 5  # type: ignore[misc]


@pytest.mark.parametrize("cfg", [
    Config(),
    Config.for_algorithm("rbp", network={"n": 49, "topology": "band", "band": 7}, train={"epochs": 12, "lr": 0.003}),
    Config.for_algorithm("eqprop", network={"n": 12, "topology": "layered", "layers": (5, 4, 3),
                                           "activation": "hard_sigmoid"}, train={"nudge": "centered", "beta": 0.5}),
    Config.for_algorithm("storkey", network={"n": 64, "self_connections": True}),
])
def test_json_round_trip(cfg):
    text = cfg.to_json()
    json.loads(text)                                    # valid JSON
    again = Config.from_json(text)
    assert again == cfg
    assert again.fingerprint == cfg.fingerprint
    assert again.to_json() == text
    assert isinstance(again.network.layers, tuple)


def test_for_algorithm_applies_defaults_then_overrides():
    for algo, defaults in ALGORITHM_DEFAULTS.items():
        cfg = Config.for_algorithm(algo)
        assert cfg.train.algo == algo
        for section, fields in defaults.items():
            for key, value in fields.items():
                assert getattr(getattr(cfg, section), key) == value
    cfg = Config.for_algorithm("rbp", train={"lr": 0.1})
    assert cfg.train.lr == 0.1 and cfg.network.activation == "tanh" and cfg.network.dynamics == "additive"
    # the algorithm argument wins over a conflicting train.algo
    assert Config.for_algorithm("eqprop", train={"algo": "rbp"}).train.algo == "eqprop"


def test_replace_validates_and_keeps_the_rest():
    cfg = Config.for_algorithm("eqprop", network={"n": 36})
    other = cfg.replace(network={"topology": "band", "band": 4})
    assert other.network.band == 4 and other.network.n == 36 and other.train == cfg.train
    assert cfg.network.topology == "dense"                 # the original is unchanged


@pytest.mark.parametrize("network_change", [
    {"n": 64}, {"topology": "band", "band": 3}, {"self_connections": True}, {"activation": "hard_sigmoid"},
    {"dynamics": "euler", "activation": "tanh"}, {"eps": 0.25}, {"max_steps": 200}, {"tol": 1e-6}, {"input_gain": 0.25},
])
def test_fingerprint_changes_with_network_fields(network_change):
    base = Config.for_algorithm("eqprop", network={"n": 100})
    changed = base.replace(network=network_change)
    assert changed.fingerprint != base.fingerprint
    assert len(base.fingerprint) == 16 and int(base.fingerprint, 16) >= 0


@pytest.mark.parametrize("train_change", [
    {"epochs": 7}, {"lr": 0.5}, {"max_step": 0.1}, {"beta": 0.25}, {"nudge": "centered"}, {"repeats": 2},
    {"batch_size": 3}, {"shuffle": True}, {"train_flip": 0.2}, {"init_scale": 0.3}, {"seed": 99},
    {"side_init": 0.0}, {"algo": "hebbian"},
])
def test_fingerprint_ignores_train_fields(train_change):
    base = Config.for_algorithm("eqprop", network={"n": 100})
    assert base.replace(train=train_change).fingerprint == base.fingerprint


def test_fingerprint_is_stable_across_calls_and_construction_paths():
    a = Config.for_algorithm("eqprop", network={"n": 30})
    b = Config.create(network={"n": 30, "activation": "hard_tanh", "dynamics": "bounded"}, train={"algo": "eqprop"})
    assert a.fingerprint == b.fingerprint == a.fingerprint
