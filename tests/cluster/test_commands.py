"""sweep, reproduce and sim campaigns give the same JSON (timings aside) with --jobs 1, --jobs 2
and a 2-worker Dask LocalCluster; a campaign survives a killed worker; --resume goes on from
the journal."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

pytest.importorskip("distributed", reason="the cluster extra is not installed (pip install -e .[cluster])")

import psutil  # noqa: E402 - comes with distributed
from click.testing import CliRunner  # noqa: E402

from memprop.cli import main  # noqa: E402
from memprop.model.config import Config  # noqa: E402
from memprop.sim.engine import run_campaign  # noqa: E402
from memprop.sim.simulators import unavailable_reason  # noqa: E402

from .conftest import canonical, without_timings  # noqa: E402

SMALL = dict(network={"n": 8}, numerics="fixed", train={"batch_size": 1}, device={"preset": "linear-64"},
             hw={"lanes": 2})
needs_verilator = pytest.mark.skipif(unavailable_reason("verilator") is not None, reason="verilator unavailable")


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def where(cluster) -> dict[str, tuple[str, ...]]:
    return {"jobs1": ("--jobs", "1"), "jobs2": ("--jobs", "2"), "cluster": ("--scheduler", cluster.scheduler_address)}


def test_sweep_quick_is_the_same_everywhere_and_resumes(cluster, tmp_path):
    reports = {}
    for name, opts in where(cluster).items():
        invoke("sweep", "--quick", "--out", str(tmp_path / name), *opts)
        reports[name] = (tmp_path / name / "sweep.json").read_text()
    assert canonical(reports["jobs2"]) == canonical(reports["jobs1"])
    assert canonical(reports["cluster"]) == canonical(reports["jobs1"])
    assert "a Dask cluster (" in (tmp_path / "cluster" / "sweep.md").read_text()
    # an interruption after four jobs, the last line cut: --resume runs the rest, the report is the same
    book = tmp_path / "cluster" / "journal.jsonl"
    lines = book.read_text().splitlines()
    book.write_text("\n".join(lines[:5]) + "\n" + lines[5][:40])
    invoke("sweep", "--quick", "--out", str(tmp_path / "cluster"), "--scheduler", cluster.scheduler_address, "--resume")
    resumed = (tmp_path / "cluster" / "sweep.json").read_text()
    assert json.loads(resumed)["timing"]["resumed"] == 4
    assert canonical(resumed) == canonical(reports["jobs1"])


@pytest.mark.slow   # 1 min; the sweep above checks the same path in the default suite
def test_reproduce_quick_on_the_cluster_is_the_same_as_one_process(cluster, tmp_path):
    # --jobs 1 against --jobs 2: tests/cli/test_reproduce.py
    for name in ("jobs1", "cluster"):
        invoke("reproduce", "--quick", "--out", str(tmp_path / name), *where(cluster)[name])
    one, dask = ((tmp_path / name / "results.json").read_text() for name in ("jobs1", "cluster"))
    assert canonical(dask) == canonical(one)


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "small.json"
    path.write_text(Config.for_algorithm("eqprop", **SMALL).to_json())
    return path


@pytest.fixture(scope="module")
def campaigns(cluster, small_config, sim_build):
    """The same 8-case campaign (4 jobs of 2 cases on one small design) in 1, 2 and cluster workers."""
    out = {}
    saved = os.environ.get("MEMPROP_SIM_BUILD")
    os.environ["MEMPROP_SIM_BUILD"] = str(sim_build)
    try:
        for name, opts in where(cluster).items():
            text = invoke("sim", "--config", str(small_config), "--cases", "8", "--per-config", "2", "--seed", "3",
                          "--json", *opts)
            out[name] = text.strip().splitlines()[-1]
    finally:
        os.environ.pop("MEMPROP_SIM_BUILD") if saved is None else os.environ.update(MEMPROP_SIM_BUILD=saved)
    return out


@needs_verilator
@pytest.mark.slow   # a Verilator build per worker: ~4 min on 2 cores (--runslow)
def test_a_sim_campaign_is_the_same_everywhere(campaigns):
    one = json.loads(campaigns["jobs1"])
    assert one["cases"] == 8 and one["mismatches"] == 0 and one["groups"] == 4 and one["configs"] == 1
    assert [s for run in one["runs"] for s in run["seeds"]] == [3 * 1_000_003 + k for k in range(8)]
    assert canonical(campaigns["jobs2"]) == canonical(campaigns["jobs1"])
    assert canonical(campaigns["cluster"]) == canonical(campaigns["jobs1"])


def kill_tree(pid: int) -> None:
    """What a crashed worker leaves: the process and the simulator it was running, gone."""
    process = psutil.Process(pid)
    for p in [*process.children(recursive=True), process]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@needs_verilator
@pytest.mark.slow   # a Verilator build per worker: ~4 min on 2 cores (--runslow)
def test_a_campaign_survives_a_killed_worker_and_resumes(campaigns, cluster, client, small_config, sim_build,
                                                         tmp_path):
    cfg = Config.from_json(small_config.read_text())
    pids = client.run(os.getpid)
    book = tmp_path / "journal.jsonl"
    done: dict = {}

    def campaign():
        done["campaign"] = run_campaign(8, seed=3, config=cfg, per_config=2, scheduler=cluster.scheduler_address,
                                        build_root=sim_build, journal=book)

    runner = threading.Thread(target=campaign)
    runner.start()
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and runner.is_alive() and time.monotonic() < deadline:
        busy = [address for address, keys in client.processing().items() if keys and address in pids]
        if busy:
            time.sleep(2.0)                                # well inside the job: the simulator is running
            victim = busy[0]
            kill_tree(pids[victim])
        time.sleep(0.2)
    runner.join(timeout=600)
    assert victim is not None, "no job was seen running"
    assert not runner.is_alive() and "campaign" in done
    assert client.run(os.getpid).get(victim) != pids[victim]    # the killed worker is gone (or restarted)
    summary = done["campaign"].summary("verilator", "rtl")
    expected = json.loads(campaigns["jobs1"])
    seeds = [s for run in summary["runs"] for s in run["seeds"]]
    lost, duplicated = set(range(3 * 1_000_003, 3 * 1_000_003 + 8)) - set(seeds), len(seeds) - len(set(seeds))
    assert (lost, duplicated, summary["cases"]) == (set(), 0, 8)
    assert without_timings(summary) == without_timings(expected)
    keys = [json.loads(line)["key"] for line in book.read_text().splitlines()[1:]]
    assert sorted(keys) == ["s3g0", "s3g1", "s3g2", "s3g3"]       # one journal entry per job
    # the journal holds the whole campaign: resuming runs nothing and gives the same summary
    again = run_campaign(8, seed=3, config=cfg, per_config=2, build_root=sim_build, journal=book, resume=True)
    assert again.resumed == 4 and without_timings(again.summary("verilator", "rtl")) == without_timings(expected)
