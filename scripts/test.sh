#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the default test suite. pytest's exit status is the
# script's: 5 (no tests collected) fails like any other error. Extra arguments go to pytest
# (e.g. --runslow for the nightly-size runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# -n auto: one pytest-xdist worker per core; --dist loadfile keeps a file's tests (and its module
# fixtures: builds, trained networks) on one worker.
python -m pytest tests -q -p no:cacheprovider -n auto --dist loadfile "$@"
