#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job: train -> fixed point -> bit-exact
# simulation -> bitstream. Extra arguments go to `memprop demo` (e.g. --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
memprop demo "$@"
