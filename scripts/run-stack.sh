#!/usr/bin/env bash
# Set up (if needed) and run the stack on the bundled models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec python -m wyoming_stt --uri "${STT_URI:-tcp://0.0.0.0:10300}" "$@"
