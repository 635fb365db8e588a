"""The demo's measured-ReRAM line: the coarse single-device preset learns in situ only with the carry."""

from memprop.demo import _measured_reram
from memprop.model import patterns


def test_measured_reram_learns_with_carry_not_with_stochastic_rounding():
    result = _measured_reram(patterns.load(), 30, 50)
    assert result["carry"] >= 0.9 and result["stochastic"] <= 0.5
    assert "with carry" in result["line"]
