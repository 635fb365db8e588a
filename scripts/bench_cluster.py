"""Overhead of the cluster path: `memprop sweep --quick` on a 2-worker Dask LocalCluster (loopback)
against `--jobs 2`, alternated in one run (the ratio of medians; absolute times on a shared
machine are noise). The cluster is started once, before the timed runs, as a real one would be
running already; its start-up time is printed beside the ratio.

    python scripts/bench_cluster.py [--repeats 3] [--out results/bench_cluster.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distributed import LocalCluster

TARGET = 1.15   # issue 14: the cluster path costs at most 15 % over --jobs 2


def sweep_seconds(out: Path, *opts: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from memprop.cli import main; main()", "sweep", "--quick",
                    "--out", str(out), *opts], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    args = parser.parse_args()
    start = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", silence_logs=50) as cluster, tempfile.TemporaryDirectory() as tmp:
        startup = time.perf_counter() - start
        local, dask = [], []
        for k in range(args.repeats):
            local.append(sweep_seconds(Path(tmp) / f"local{k}", "--jobs", "2"))
            dask.append(sweep_seconds(Path(tmp) / f"dask{k}", "--scheduler", cluster.scheduler_address))
    ratio = statistics.median(dask) / statistics.median(local)
    report = {"command": "memprop sweep --quick", "repeats": args.repeats, "jobs2_seconds": local,
              "cluster_seconds": dask, "cluster_startup_seconds": startup, "ratio": ratio, "target": TARGET,
              "met": ratio <= TARGET}
    print(f"sweep --quick: 2-worker LocalCluster / --jobs 2 = {ratio:.2f} (median of {args.repeats}; "
          f"--jobs 2 {[round(s, 1) for s in local]} s, cluster {[round(s, 1) for s in dask]} s; "
          f"cluster start-up {startup:.1f} s, not counted); target <= {TARGET}: {'met' if ratio <= TARGET else 'MISSED'}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
