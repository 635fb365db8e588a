"""The checker can fail: deliberately broken designs are reported failed, with a trace."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from memprop.cli import main
from memprop.formal import parse_vcd

pytestmark = pytest.mark.usefixtures("formal_tools")


def _mutant(tmp_path, name):
    result = CliRunner().invoke(main, ["formal", "--mutant", name, "--json", "--out", str(tmp_path)])
    assert result.exit_code == 1, result.output          # a failed property fails the command
    return json.loads(result.output)


def _failed(report, name):
    failed = [p for p in report["properties"] if p["status"] == "failed"]
    assert failed, report
    assert {p["name"] for p in failed} == {name}
    for p in failed:
        step, values = parse_vcd(p["trace"], ("assert__",))
        assert step == p["step"] > 0
        assert values[name.replace(".", "__").join(("assert__", ""))] == 0   # the trace shows the violation
    return failed


def test_link_that_skips_the_crc_check_executes_a_corrupt_frame(tmp_path):
    report = _mutant(tmp_path, "link-skips-crc")
    assert report["mutant"] == "link-skips-crc" and report["failed"] == 1
    (failed,) = _failed(report, "link.corrupt_frame_never_executes")
    # the counterexample: a bus transaction for a frame whose CRC (recomputed bit by bit) is wrong
    step, values = parse_vcd(failed["trace"], ("mon_crc", "mon_len", "bus__we", "bus__re"))
    assert values["mon_crc"] != 0 and values["bus__we"] | values["bus__re"]


def test_accumulator_one_bit_too_narrow_wraps(tmp_path):
    report = _mutant(tmp_path, "mac-narrow-accumulator")
    failed = _failed(report, "mac.row_sum_exact")
    assert {p["config"] for p in failed} == set(report["configs"])     # every configuration's worst case wraps


def test_fold_column_read_one_cycle_early_is_caught(tmp_path):
    """The folded MAC array's column read advanced a cycle early: col_sum then holds another unit's
    column part when the engine adds it to the row sum."""
    from memprop.formal import default_configs
    from memprop.rtl.mac import mac_latency
    from memprop.rtl.mac_formal import SHADOW_EXTRA
    from memprop.rtl.schedule import formats

    report = _mutant(tmp_path, "mac-fold-early-read")
    assert report["mutant"] == "mac-fold-early-read"
    failed = [p for p in report["properties"] if p["status"] == "failed"]
    assert {p["config"] for p in failed if p["name"] == "mac.col_sum_exact"} == set(report["configs"])
    assert {p["name"] for p in failed} <= {"mac.col_sum_exact", "mac.fold_sum_within_bound"}   # the row path holds
    cfgs = dict(default_configs())

    def signed(value, bits):
        return value - (1 << bits) if value >> (bits - 1) else value

    for p in failed:
        step, values = parse_vcd(p["trace"], ("assert__", "col_sum", "ref_col_value", "ref_in_ends_d"))
        assert step == p["step"] > 0 and values[p["name"].replace(".", "__").join(("assert__", ""))] == 0
        if p["name"] == "mac.col_sum_exact":
            # the trace: a column sum read (the cycle after a row sum) that differs from its unit's shadow
            cfg = cfgs[p["config"]]
            acc = formats(cfg).acc_bits
            assert values[f"ref_in_ends_d{mac_latency(cfg.hw.lanes) + 1}"] == 1
            assert signed(values["col_sum"], acc) != signed(values["ref_col_value"], acc + SHADOW_EXTRA)
