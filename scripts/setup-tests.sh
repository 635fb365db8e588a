#!/usr/bin/env bash
# Install everything the tests need (hardware extras included), then run the default suite.
# pytest's exit code is the script's: 5 (no tests collected) fails like any other error.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e '.[dev,hw]'
if ! command -v iverilog >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q iverilog >/dev/null 2>&1 || echo "note: iverilog not installed; Icarus tests will be skipped"
fi
python -m pytest tests -q -p no:cacheprovider
