"""A 2-worker Dask `LocalCluster` on the loopback address, shared by the cluster tests.

Each worker is a separate process with one thread (as README tells cluster users to start
theirs), restarted by its nanny when a test kills it.
"""

from __future__ import annotations

import json

import pytest

NO_DASK = "the cluster extra is not installed (pip install -e .[cluster])"

#: Keys that hold timings or where the jobs ran: the only parts of a report that may differ.
TIMING_KEYS = frozenset({"timing", "seconds", "cpu_seconds", "sim_seconds", "cycles_per_second", "wall_seconds"})


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def canonical(text: str) -> bytes:
    """A JSON report as bytes, timings aside (the files are compared byte for byte after this)."""
    return json.dumps(without_timings(json.loads(text)), indent=2).encode()


@pytest.fixture(scope="session")
def sim_build(tmp_path_factory):
    """The simulator build root of every campaign in these tests, local or on the cluster: its
    slots keep each configuration's Verilator model from one run to the next."""
    return tmp_path_factory.mktemp("sim-build")


@pytest.fixture(scope="session")
def cluster(sim_build):
    # Port 0, not None: with dashboard_address=None the scheduler still binds its HTTP server to
    # 8787, and two pytest-xdist workers (or any other Dask on the machine) then collide.
    distributed = pytest.importorskip("distributed", reason=NO_DASK)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", silence_logs=50,
                                  env={"MEMPROP_SIM_BUILD": str(sim_build)}) as local:
        yield local


@pytest.fixture(scope="session")
def client(cluster):
    import distributed

    with distributed.Client(cluster.scheduler_address, set_as_default=False) as c:
        yield c
