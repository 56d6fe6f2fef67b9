#!/usr/bin/env bash
# Set up (if needed) and run every check: ruff, mypy, the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Home Assistant venvs for tests/ha (Python 3.13; in CI a missing 3.13 fails here).
bash scripts/setup-ha.sh
. .venv/bin/activate
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy
echo "== pytest"
python -m pytest -q -p no:cacheprovider "$@"
