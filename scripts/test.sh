#!/usr/bin/env bash
# Set up (if needed) and run every check: ruff, mypy, the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
echo "== ruff"; ruff check .
echo "== mypy"; mypy
echo "== pytest"
python -m pytest -q -p no:cacheprovider "$@"
