#!/usr/bin/env bash
# Set up (if needed) and run the whole stack on the bundled models: STT, TTS, the
# conversation service and a satellite, one process each, stopped together by Ctrl-C.
#   ./scripts/run-stack.sh                                  # live, on the default microphone
#   ./scripts/run-stack.sh --wav question.wav --reply-wav answer.wav   # no microphone
# Every option: ./scripts/run-stack.sh --help. SKIP_SETUP=1 skips the set-up step.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SKIP_SETUP:-0}" != "1" ]; then
  bash scripts/setup.sh >&2
fi
. .venv/bin/activate
exec python -m stack "$@"
