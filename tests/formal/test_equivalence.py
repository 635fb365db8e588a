"""Synthesised iCE40 and ECP5 netlists of a small engine against the RTL (a bounded miter).

Minutes per architecture (synthesis, reading ~7000 cell instances with their models): --runslow.
"""

from __future__ import annotations

import pytest

from memprop import formal

pytestmark = [pytest.mark.usefixtures("formal_tools"), pytest.mark.slow]


def test_netlists_equal_the_rtl(tmp_path):
    results = formal.run_equivalence(out_dir=tmp_path, depth=6)
    assert [r.arch for r in results] == list(formal.EQUIV_ARCHES)
    for r in results:
        assert r.status == "equivalent", r.line()
        assert r.cells and r.depth == 6


def test_a_wrong_netlist_is_caught(tmp_path):
    """The miter can fail: the iCE40 netlist with its busy output inverted."""
    def invert_busy(text: str) -> str:
        assert "assign busy = \\ctrl.busy ;" in text
        return text.replace("assign busy = \\ctrl.busy ;", "assign busy = ~\\ctrl.busy ;")

    (r,) = formal.run_equivalence(arches=["ice40"], out_dir=tmp_path, depth=2, netlist_patch=invert_busy)
    assert r.status == "failed" and r.trace and r.step == 0
