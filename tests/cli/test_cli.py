"""The `memprop` command line: train/eval round trips and clean one-line errors for bad input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from memprop.cli import main
from memprop.model import weights
from memprop.model.patterns import load as load_patterns


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_ok(result):
    assert result.exit_code == 0, result.output
    assert result.exception is None
    return result


def assert_clean_error(result, pattern: str) -> str:
    """Non-zero exit, no traceback, exactly one `Error: ...` line that matches `pattern`."""
    out = result.output
    assert result.exit_code != 0, out
    # a handled error ends in SystemExit; any other exception would be a crash (traceback)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out
    assert re.search(pattern, errors[0]), errors[0]
    if result.exit_code == 1:
        # package errors (not click usage errors): the error line is all there is
        assert out.strip() == errors[0], out
    return errors[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def eqprop_weights(workdir) -> Path:
    out = workdir / "W.npz"
    result = assert_ok(run("train", "--algo", "eqprop", "--epochs", "3", "--out", out, "--quiet"))
    assert out.exists()
    assert "wrote" in result.output and "N=100" in result.output and "3 epochs" in result.output
    return out


# -- round trips ------------------------------------------------------------------------------

def test_train_then_eval_json_round_trip(eqprop_weights):
    result = assert_ok(run("eval", "--weights", eqprop_weights, "--flip", "0.1", "--trials", "5", "--json"))
    lines = result.output.strip().splitlines()
    assert len(lines) == 1                                  # one JSON object, nothing else
    report = json.loads(lines[0])
    assert report["algo"] == "eqprop"
    assert report["flip"] == 0.1
    assert report["trials"] == 5
    assert len(report["per_class"]) == 16
    assert all(0.0 <= a <= 1.0 for a in report["per_class"])
    assert all(a * 5 == round(a * 5) for a in report["per_class"])      # successes out of 5 trials
    assert report["accuracy"] == pytest.approx(np.mean(report["per_class"]))
    assert report["patterns"] == "hex16"
    params, cfg, meta = weights.load(eqprop_weights)
    assert report["fingerprint"] == cfg.fingerprint == meta["fingerprint"]
    assert cfg.train.epochs == 3 and cfg.train.algo == "eqprop" and meta["algo"] == "eqprop"
    # the same command again gives the same answer (seeded)
    again = assert_ok(run("eval", "--weights", eqprop_weights, "--flip", "0.1", "--trials", "5", "--json"))
    assert json.loads(again.output) == report


def test_eval_text_output(eqprop_weights):
    result = assert_ok(run("eval", "--weights", eqprop_weights, "--flip", "0.05", "--trials", "3"))
    lines = result.output.strip().splitlines()
    assert re.match(r"eqprop: accuracy \d\.\d{4} at p=0\.05 \(3 trials x 16 patterns\)", lines[0])
    assert "; MSE < 0.1: " in lines[0] and "; nearest-pattern bound " in lines[0]
    assert len(lines) == 17 and all(re.match(r"\s+pattern\s+\d+: \d\.\d{3} \(bound \d\.\d{3}\)$", ln)
                                    for ln in lines[1:])


@pytest.mark.parametrize("algo, extra", [
    ("eqprop", ["--epochs", "2"]), ("rbp", ["--epochs", "2"]), ("hebbian", []), ("storkey", []),
])
def test_train_and_eval_each_algorithm(workdir, algo, extra):
    out = workdir / f"{algo}.npz"
    assert_ok(run("train", "--algo", algo, *extra, "--out", out, "--quiet"))
    params, cfg, meta = weights.load(out)
    assert cfg.train.algo == algo == meta["algo"]
    assert np.array_equal(params.W, params.W.T)
    result = assert_ok(run("eval", "--weights", out, "--flip", "0.05", "--trials", "4", "--json"))
    report = json.loads(result.output)
    assert report["algo"] == algo and report["trials"] == 4 and len(report["per_class"]) == 16


def test_train_options_reach_the_config(workdir, tmp_path):
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"network": {"eps": 0.25}, "train": {"repeats": 2, "epochs": 50}}))
    out = workdir / "band.npz"
    result = assert_ok(run("train", "--algo", "eqprop", "--band", "10", "--epochs", "1", "--seed", "5",
                           "--lr", "0.01", "--config", cfg_file, "--out", out, "--quiet"))
    # band K=10 on N=100 without the diagonal: 100^2 - 10*11 - 100 synapses
    assert "9790 synapses" in result.output
    params, cfg, _ = weights.load(out)
    assert int(params.mask.sum()) == 9790
    assert cfg.network.topology == "band" and cfg.network.band == 10
    assert cfg.network.eps == 0.25 and cfg.train.repeats == 2          # from the file
    assert cfg.train.epochs == 1 and cfg.train.seed == 5 and cfg.train.lr == 0.01   # options win


def test_train_takes_the_presets_pulse_rounding(workdir):
    """A preset that needs rounding with carry trains with it (and keeps its carries in the file);
    --rounding overrides it; --rounding without fixed point is refused."""
    out = workdir / "reram.npz"
    assert_ok(run("train", "--algo", "eqprop", "--numerics", "fixed", "--device", "reram-array-om", "--epochs", "1",
                  "--out", out, "--quiet"))
    params, cfg, _ = weights.load(out)
    assert cfg.fixed.rounding == "carry" and np.abs(params.carry_w).max() > 0
    assert_ok(run("train", "--algo", "eqprop", "--numerics", "fixed", "--device", "reram-array-om", "--epochs", "1",
                  "--rounding", "stochastic", "--out", out, "--quiet"))
    params, cfg, _ = weights.load(out)
    assert cfg.fixed.rounding == "stochastic" and not params.carry_w.any()
    assert_clean_error(run("train", "--algo", "eqprop", "--rounding", "carry", "--out", out), "--rounding applies")


def test_train_with_user_patterns(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "p.npy", rng.choice([0, 1], (4, 8, 8)))
    out = tmp_path / "W.npz"
    assert_ok(run("train", "--algo", "storkey", "--patterns", tmp_path / "p.npy", "--out", out, "--quiet"))
    _, cfg, meta = weights.load(out)
    assert cfg.network.n == 64 and meta["patterns"] == str(tmp_path / "p.npy")
    report = json.loads(assert_ok(run("eval", "--weights", out, "--patterns", tmp_path / "p.npy",
                                      "--flip", "0", "--trials", "2", "--json")).output)
    assert report["accuracy"] == 1.0            # 4 random patterns at N=64: clean recall is exact


def test_version_and_help():
    assert re.search(r"memprop, version \S+", assert_ok(run("--version")).output)
    out = assert_ok(run("--help")).output
    assert "train" in out and "eval" in out


# -- bad inputs: one-line errors, no tracebacks -----------------------------------------------

@pytest.fixture(scope="module")
def bad_files(workdir) -> dict[str, Path]:
    d = workdir / "bad"
    d.mkdir()
    files = {}

    def text(name, content):
        files[name] = d / name
        files[name].write_text(content)

    np.save(d / "nonbinary.npy", np.array([[0, 1, 2, 1], [1, 0, 1, 0]]))
    files["nonbinary.npy"] = d / "nonbinary.npy"
    text("ragged.txt", "##.\n#.\n\n##.\n#..\n")
    text("dup.txt", "#.\n.#\n\n##\n..\n\n#.\n.#\n")
    text("sizes.txt", "#.\n.#\n\n#..\n.#.\n")
    text("chars.txt", "#.\n.O\n")
    text("empty.txt", "")
    files["garbage.txt"] = d / "garbage.txt"
    files["garbage.txt"].write_bytes(b"\xff\xfe\x00\x81binary")
    np.savez(d / "archive.npz", x=np.array([[1, -1], [-1, 1]]))
    files["archive.npy"] = d / "archive.npy"
    files["archive.npy"].write_bytes((d / "archive.npz").read_bytes())
    files["cutzip.npy"] = d / "cutzip.npy"
    files["cutzip.npy"].write_bytes((d / "archive.npz").read_bytes()[:40])
    rng = np.random.default_rng(1)
    glyphs = rng.choice([-1, 1], (3, 8, 8))          # N = 64 glyphs
    text("n64.txt", "\n\n".join("\n".join("".join("#" if v > 0 else "." for v in row) for row in g)
                                for g in glyphs) + "\n")
    return files


@pytest.mark.parametrize("name, message", [
    ("nonbinary.npy", r"nonbinary\.npy: patterns must be binary"),
    ("ragged.txt", r"ragged\.txt:\d+: glyph \d+ is ragged"),
    ("dup.txt", r"dup\.txt: duplicate patterns \[0, 2\]"),
    ("sizes.txt", r"glyph 1 is 2x3, the first glyph is 2x2"),
    ("chars.txt", r"unexpected character\(s\) 'O'"),
    ("empty.txt", r"no glyphs found"),
    ("garbage.txt", r"not a text glyph file"),
    ("archive.npy", r"archive\.npy: an \.npz archive, not a \.npy array"),
    ("cutzip.npy", r"cutzip\.npy: not a readable \.npy array"),
])
def test_train_rejects_bad_pattern_files(workdir, bad_files, name, message):
    out = workdir / "never.npz"
    assert_clean_error(run("train", "--algo", "eqprop", "--epochs", "1", "--patterns", bad_files[name],
                           "--out", out, "--quiet"), message)
    assert not out.exists()


@pytest.mark.parametrize("name", ["nonbinary.npy", "ragged.txt", "dup.txt"])
def test_eval_rejects_bad_pattern_files(eqprop_weights, bad_files, name):
    assert_clean_error(run("eval", "--weights", eqprop_weights, "--patterns", bad_files[name], "--flip", "0.1",
                           "--trials", "2"), re.escape(name))


def test_eval_rejects_patterns_of_the_wrong_size(eqprop_weights, bad_files):
    msg = assert_clean_error(run("eval", "--weights", eqprop_weights, "--patterns", bad_files["n64.txt"],
                                 "--flip", "0.1", "--trials", "2"), r"patterns have 64 units")
    assert "has 100" in msg and "W.npz" in msg


@pytest.fixture(scope="module")
def weight_variants(workdir, eqprop_weights) -> dict[str, Path]:
    d = workdir / "weights"
    d.mkdir()
    data = eqprop_weights.read_bytes()
    arrays = dict(np.load(eqprop_weights))
    files = {}

    def raw(name, content: bytes):
        files[name] = d / name
        files[name].write_bytes(content)

    def npz(name, **override):
        files[name] = d / name
        np.savez(files[name], **{**arrays, **override})

    raw("truncated_head.npz", data[:100])
    raw("truncated_half.npz", data[: len(data) // 2])
    raw("truncated_tail.npz", data[:-10])
    corrupted = bytearray(data)
    corrupted[len(data) // 3: len(data) // 3 + 64] = bytes(64)      # zeroed inside the W array
    raw("corrupted.npz", bytes(corrupted))
    raw("random.npz", np.random.default_rng(0).bytes(4096))
    raw("text.npz", b"these are not weights\n")
    raw("empty.npz", b"")
    np.savez(d / "other.npz", x=np.zeros(3))
    files["other.npz"] = d / "other.npz"
    np.save(d / "array.npy", arrays["W"])
    files["array.npy"] = d / "array.npy"
    files["array.npz"] = d / "array.npz"                          # a .npy file under a .npz name
    files["array.npz"].write_bytes(files["array.npy"].read_bytes())
    cfg = json.loads(str(arrays["config"]))
    cfg["network"]["eps"] = 0.25                                   # what the network computes
    npz("edited_config.npz", config=np.array(json.dumps(cfg)))
    meta = json.loads(str(arrays["meta"]))
    meta["fingerprint"] = "0123456789abcdef"
    npz("edited_fingerprint.npz", meta=np.array(json.dumps(meta)))
    npz("bad_meta.npz", meta=np.array("[1, 2]"))
    npz("broken_config.npz", config=np.array("{oops"))
    W = arrays["W"].copy()
    W[0, 1] += 0.5
    npz("asymmetric.npz", W=W)
    npz("wrong_shape.npz", W=arrays["W"][:50, :50])
    return files


@pytest.mark.parametrize("name, message", [
    ("truncated_head.npz", r"not a readable \.npz weight file"),
    ("truncated_half.npz", r"not a readable \.npz weight file"),
    ("truncated_tail.npz", r"not a readable \.npz weight file"),
    ("corrupted.npz", r"not a readable \.npz weight file"),
    ("random.npz", r"not a readable \.npz weight file"),
    ("text.npz", r"not a readable \.npz weight file"),
    ("empty.npz", r"not a readable \.npz weight file"),
    ("array.npy", r"holds a single \.npy array, not a \.npz weight file"),
    ("array.npz", r"holds a single \.npy array, not a \.npz weight file"),
    ("other.npz", r"missing config/meta; not a memprop weight file"),
    ("edited_config.npz", r"config fingerprint \w+ does not match its stored config"),
    ("edited_fingerprint.npz", r"fingerprint 0123456789abcdef does not match"),
    ("bad_meta.npz", r"corrupt metadata"),
    ("broken_config.npz", r"corrupt metadata"),
    ("asymmetric.npz", r"W is not symmetric"),
    ("wrong_shape.npz", r"do not fit n=100"),
])
def test_eval_rejects_bad_weight_files(weight_variants, name, message):
    msg = assert_clean_error(run("eval", "--weights", weight_variants[name], "--flip", "0.1", "--trials", "2"),
                             message)
    assert name in msg                                  # the message names the file


def test_editing_only_training_fields_keeps_the_file_valid(workdir, eqprop_weights):
    arrays = dict(np.load(eqprop_weights))
    cfg = json.loads(str(arrays["config"]))
    cfg["train"]["lr"] = 0.123                           # how it was trained, not what it computes
    path = workdir / "train_edit.npz"
    np.savez(path, **{**arrays, "config": np.array(json.dumps(cfg))})
    assert_ok(run("eval", "--weights", path, "--flip", "0.1", "--trials", "1", "--json"))


@pytest.mark.parametrize("args, message", [
    (["eval", "--flip", "0.7", "--trials", "2"], r"'--flip': 0\.7 is not in the range"),
    (["eval", "--flip", "-0.1", "--trials", "2"], r"'--flip'"),
    (["eval", "--flip", "0.1", "--trials", "0"], r"'--trials': 0 is not in the range"),
    (["eval", "--flip", "0.1", "--trials", "2", "--seed", "-1"], r"'--seed': -1 is not in the range"),
    (["eval", "--flip", "abc"], r"'--flip': 'abc' is not a valid float"),
    (["eval"], r"Missing option '--flip'"),
])
def test_eval_rejects_out_of_range_parameters(eqprop_weights, args, message):
    assert_clean_error(run(args[0], "--weights", eqprop_weights, *args[1:]), message)


@pytest.mark.parametrize("args, message", [
    (["--band", "100"], r"band topology needs 0 < band < n, got band=100 with n=100"),
    (["--band", "250"], r"band=250 with n=100"),
    (["--band", "-1"], r"'--band': -1 is not in the range"),
    (["--seed", "-3"], r"'--seed': -3 is not in the range"),
    (["--epochs", "-1"], r"'--epochs': -1 is not in the range"),
    (["--lr", "0"], r"'--lr': 0"),
])
def test_train_rejects_out_of_range_parameters(workdir, args, message):
    out = workdir / "never.npz"
    assert_clean_error(run("train", "--algo", "eqprop", "--epochs", "1", *args, "--out", out, "--quiet"), message)
    assert not out.exists()


def test_train_rejects_bad_algorithm_and_out_path(workdir):
    assert_clean_error(run("train", "--algo", "sgd", "--out", workdir / "x.npz"), r"'--algo'.*'sgd'")
    assert_clean_error(run("train", "--algo", "hebbian", "--out", workdir / "weights.txt", "--quiet"),
                       r"weights\.txt: weight files are \.npz")


def test_train_rejects_bad_config_files(workdir, tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{nope")
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"network": {"neurons": 10}}))
    rbp_bounded = tmp_path / "rbp.json"
    rbp_bounded.write_text(json.dumps({"network": {"dynamics": "bounded", "activation": "hard_tanh"}}))
    out = workdir / "never.npz"
    common = ["train", "--out", out, "--quiet", "--epochs", "1"]
    assert_clean_error(run(*common, "--algo", "eqprop", "--config", bad_json), r"config is not valid JSON")
    assert_clean_error(run(*common, "--algo", "eqprop", "--config", unknown), r"network\.neurons: Extra inputs")
    assert_clean_error(run(*common, "--algo", "rbp", "--config", rbp_bounded), r"algo 'rbp' runs the additive")
    assert not out.exists()


def test_missing_files(workdir, eqprop_weights, tmp_path):
    missing = tmp_path / "does-not-exist"
    assert_clean_error(run("train", "--algo", "eqprop", "--patterns", f"{missing}.txt", "--out",
                           workdir / "never.npz", "--quiet"), r"does-not-exist\.txt: no such pattern file")
    assert_clean_error(run("train", "--algo", "eqprop", "--patterns", f"{missing}.npy", "--out",
                           workdir / "never.npz", "--quiet"), r"no such pattern file")
    assert_clean_error(run("eval", "--weights", f"{missing}.npz", "--flip", "0.1"),
                       r"does-not-exist\.npz: no such weight file")
    assert_clean_error(run("eval", "--weights", eqprop_weights, "--patterns", f"{missing}.txt", "--flip", "0.1"),
                       r"no such pattern file")
    assert_clean_error(run("train", "--algo", "eqprop", "--config", f"{missing}.json", "--out",
                           workdir / "never.npz"), r"'--config'.*does not exist")


# -- the real console script ------------------------------------------------------------------

def _console_script() -> str:
    candidate = Path(sys.executable).parent / "memprop"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("memprop")
    if found is None:
        pytest.skip("the memprop console script is not installed")
    return found


def test_console_script_subprocess(tmp_path):
    exe = _console_script()
    out = tmp_path / "W.npz"
    train = subprocess.run([exe, "train", "--algo", "eqprop", "--epochs", "2", "--out", str(out), "--quiet"],
                           capture_output=True, text=True, timeout=120)
    assert train.returncode == 0, train.stderr
    assert out.exists() and "wrote" in train.stdout
    ev = subprocess.run([exe, "eval", "--weights", str(out), "--flip", "0.1", "--trials", "3", "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ev.returncode == 0, ev.stderr
    report = json.loads(ev.stdout)
    assert report["algo"] == "eqprop" and report["trials"] == 3 and report["flip"] == 0.1
    assert len(report["per_class"]) == load_patterns().count
    # a user mistake: non-zero exit, one-line error on stderr, nothing on stdout, no traceback
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes(out.read_bytes()[:500])
    bad = subprocess.run([exe, "eval", "--weights", str(truncated), "--flip", "0.1"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("Error: ") and len(bad.stderr.strip().splitlines()) == 1
    assert "cut.npz: not a readable .npz weight file" in bad.stderr
