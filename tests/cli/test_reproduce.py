"""`memprop reproduce --quick`: every output is written, the numbers are consistent, and the
results do not depend on the number of worker processes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from memprop.cli import main
from memprop.model.config import Config
from memprop.model.masks import connectivity
from memprop.reproduce import FLIPS, RULES, THRESHOLDS, TRAINED

OUTPUTS = ("results.md", "results.json", "patterns.png", "band_sweep.png", "epochs.png", "reconstructions.png")
TOP_KEYS = {"version", "quick", "protocol", "patterns", "table1", "seed_protocols", "band_sweep", "epochs", "examples",
            "runs", "timing"}

# Four distinct 4 x 5 glyphs (N = 20): a user set of another size than the built-in one.
SMALL_SET = """\
#...#
.#.#.
..#..
.#.#.

#####
#...#
#...#
#####

..#..
..#..
#####
..#..

#....
##...
###..
####.
"""


def reproduce(out, *args: str) -> dict:
    result = CliRunner().invoke(main, ["reproduce", "--quick", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    return out, reproduce(out, "--jobs", "2")


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("patterns") / "small.txt"
    path.write_text(SMALL_SET)
    return path


def band_config(algo: str, n: int, k: int) -> Config:
    network = {"n": n, "topology": "band", "band": k} if k else {"n": n}
    return Config.for_algorithm(algo, network=network)


def test_every_file_is_written_and_linked(builtin):
    out, _ = builtin
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    for name in OUTPUTS[2:]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"({name})" in (out / "results.md").read_text(), name


def test_json_keys_and_shapes(builtin):
    _, report = builtin
    assert set(report) == TOP_KEYS
    pats, table, band, curves = report["patterns"], report["table1"], report["band_sweep"], report["epochs"]
    count, n = pats["count"], pats["n"]
    assert (count, n) == (16, 100)
    assert len(pats["correlation"]) == count and all(len(row) == count for row in pats["correlation"])
    assert table["flips"] == list(FLIPS)
    assert set(table["accuracy"]) == set(RULES) == set(table["per_class"])
    assert all(len(acc) == len(FLIPS) for acc in table["accuracy"].values())
    assert all(len(acc) == count for acc in table["per_class"].values())
    ks = band["k"]
    assert ks[0] == 0 and len(ks) == 3 and ks == sorted(set(ks)) and ks[-1] < n
    assert set(band["accuracy"]) == set(TRAINED)
    assert all(len(by_flip) == len(FLIPS) and all(len(row) == len(ks) for row in by_flip)
               for by_flip in band["accuracy"].values())
    epochs = curves["epochs"]
    assert epochs == sorted(set(epochs)) and epochs[-1] == report["protocol"]["epochs"]
    assert all(len(acc) == len(epochs) for acc in curves["accuracy"].values())
    assert set(curves["first_epoch"]) == set(TRAINED)
    assert all(set(f) == {str(t) for t in THRESHOLDS} for f in curves["first_epoch"].values())
    examples = report["examples"]
    assert all(len(rec) == len(examples["indices"]) and all(len(r) == n for r in rec)
               for rec in examples["reconstructions"].values())
    assert all(len(run["fingerprint"]) == 16 for run in report["runs"].values())
    assert set(report["timing"]) == {"jobs", "executor", "resumed", "wall_seconds", "job_seconds"}


def test_every_accuracy_has_its_bound_and_both_criteria(builtin):
    out, report = builtin
    table, band, protocols = report["table1"], report["band_sweep"], report["seed_protocols"]
    assert len(table["bound"]) == len(FLIPS) and table["bound"] == band["bound"] == protocols["bound"]
    assert all(0.9 < b <= 1.0 for b in table["bound"]) and table["bound"] == sorted(table["bound"], reverse=True)
    assert set(table["accuracy_mse"]) == set(RULES)
    for algo in RULES:
        for exact, mse, bound in zip(table["accuracy"][algo], table["accuracy_mse"][algo], table["bound"]):
            assert exact <= bound                           # the bound of the very same inputs
            assert 0.0 <= mse <= 1.0
    assert len(table["per_class_bound"]) == report["patterns"]["count"]
    assert 0.0 <= report["epochs"]["bound"] <= 1.0
    assert set(protocols["runs"]) == {f"{a}/{i}" for a in TRAINED for i in ("input", "half", "random")} | {
        "eqprop/random/slow"}
    slow = report["runs"]["eqprop/K=0/init=random/slow"]["config"]
    assert slow["train"]["lr"] == 0.005 and slow["network"]["init_state"] == "random"
    text = (out / "results.md").read_text()
    assert "| nearest-pattern bound |" in text and "MSE of the final state" in text
    assert "ICECS 2019: v(0) = 0.5" in text and "Frontiers 2020: random v(0)" in text
    assert "Frontiers 2020: random v(0), lr 0.005" in text


def test_accuracies_are_probabilities(builtin):
    _, report = builtin
    table, band, curves = report["table1"], report["band_sweep"], report["epochs"]
    values = [a for acc in table["accuracy"].values() for a in acc]
    values += [a for acc in table["per_class"].values() for a in acc]
    values += [a for by_flip in band["accuracy"].values() for row in by_flip for a in row]
    values += [a for acc in curves["accuracy"].values() for a in acc]
    assert values and all(0.0 <= a <= 1.0 for a in values)


def test_synapse_counts_match_the_masks(builtin):
    _, report = builtin
    band, n = report["band_sweep"], report["patterns"]["n"]
    for j, k in enumerate(band["k"]):
        assert band["synapses"][j] == n * n - k * (k + 1)
        for algo in TRAINED:
            net = band_config(algo, n, k).network
            assert not net.self_connections
            expected = n * n - k * (k + 1) - n
            assert band["mask_entries"][algo][j] == expected == int(connectivity(net).sum())


def without_timing(out) -> str:
    """results.json as written, less its timing section (the only thing that may differ)."""
    report = json.loads((out / "results.json").read_text())
    report.pop("timing")
    return json.dumps(report, indent=2)


def test_results_do_not_depend_on_jobs(tmp_path, small_set):
    one = reproduce(tmp_path / "one", "--patterns", str(small_set), "--jobs", "1")
    two = reproduce(tmp_path / "two", "--patterns", str(small_set), "--jobs", "2")
    assert one.pop("timing")["jobs"] == 1 and two.pop("timing")["jobs"] == 2
    assert one == two
    assert without_timing(tmp_path / "one") == without_timing(tmp_path / "two")     # byte for byte
    assert one["band_sweep"]["k"] == [0, 10, 18]  # K derived from N = 20, not the built-in N = 100


@pytest.mark.slow
def test_builtin_quick_run_is_byte_identical_with_one_or_two_jobs(tmp_path, builtin):
    """The issue's target: `memprop reproduce --quick` with --jobs 1 and --jobs 2, same JSON bytes."""
    out, _ = builtin
    reproduce(tmp_path / "one", "--jobs", "1")
    assert without_timing(tmp_path / "one") == without_timing(out)


def test_bad_pattern_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("#.#\n#x#\n")
    result = CliRunner().invoke(main, ["reproduce", "--quick", "--out", str(tmp_path / "out"), "--patterns", str(bad)])
    assert result.exit_code != 0
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert not (tmp_path / "out").exists()
