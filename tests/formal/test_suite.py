"""`memprop formal`: every proof of the default suite, at its small default depth."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from memprop.cli import main

pytestmark = pytest.mark.usefixtures("formal_tools")

#: components whose every property must close by k-induction (not only bounded)
INDUCTION = ("link", "uart", "controller")


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("formal")
    result = CliRunner().invoke(main, ["formal", "--json", "--out", str(out)])
    report = json.loads(result.output)
    return result, report, out


def test_every_property_holds_and_every_cover_is_reached(suite):
    result, report, out = suite
    assert result.exit_code == 0, report["errors"]
    assert report["ok"] and report["failed"] == 0 and not report["errors"]
    assert report["covers"] > 0 and report["covers_reached"] == report["covers"]
    assert (out / "formal.json").is_file() and "| property |" in (out / "formal.md").read_text()


def test_at_least_fifteen_properties_over_every_component(suite):
    _, report, _ = suite
    props = [p for p in report["properties"] if p["kind"] == "assert"]
    assert report["distinct_properties"] >= 15
    components = {p["component"] for p in props if not p["lemma"]}
    assert {"link", "uart", "neuron", "mac"} <= components


def test_link_and_uart_are_proven_by_induction(suite):
    _, report, _ = suite
    for p in report["properties"]:
        if p["kind"] == "assert" and p["component"] in INDUCTION:
            assert p["status"] == "proven" and p["method"] == "k-induction", p


def test_datapath_proofs_run_on_every_default_config(suite):
    _, report, _ = suite
    configs = set(report["configs"])
    for name in ("neuron.update_exact", "mac.row_sum_exact"):
        assert {p["config"] for p in report["properties"] if p["name"] == name} == configs


def test_fold_column_path_is_proven_on_every_default_config(suite):
    """The folded MAC array (mac_fold): the column sums and the bounds close by k-induction, no cover is
    vacuous."""
    _, report, _ = suite
    fold = [p for p in report["properties"] if p["proof"].startswith("mac_fold")]
    asserts = [p for p in fold if p["kind"] == "assert"]
    assert {"mac.col_sum_exact", "mac.col_sum_within_bound", "mac.fold_sum_within_bound",
            "mac.row_sum_exact"} <= {p["name"] for p in asserts if not p["lemma"]}
    for p in asserts:
        assert p["status"] == "proven" and p["method"] == "k-induction", p
    assert {p["config"] for p in asserts if p["name"] == "mac.col_sum_exact"} == set(report["configs"])
    covers = [p for p in fold if p["kind"] == "cover"]
    assert {"mac.col_sum_from_two_rows", "mac.col_sum_at_bound", "mac.twins_of_two_rows"} <= {p["name"] for p in covers}
    assert all(p["status"] == "reached" for p in covers)


@pytest.mark.slow
def test_deeper_proofs(tmp_path):
    """--runslow: every proof at depth 12 (bounded base case and induction both deeper)."""
    result = CliRunner().invoke(main, ["formal", "--depth", "12", "--json", "--out", str(tmp_path)])
    report = json.loads(result.output)
    assert result.exit_code == 0, report["errors"]
    assert report["failed"] == 0 and report["covers_reached"] == report["covers"]
