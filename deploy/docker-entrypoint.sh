#!/bin/sh
# The image's entry point: the first word picks the service, the rest are its arguments.
set -e
cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
  stt) exec python -m wyoming_stt "$@" ;;
  tts) exec python -m wyoming_tts "$@" ;;
  llm) exec python -m wyoming_llm "$@" ;;
  satellite) exec python -m satellite "$@" ;;
  discovery) exec python -m discovery "$@" ;;
  health) exec python -m discovery.health "$@" ;;
  help)
    echo "usage: IMAGE stt|tts|llm|satellite|discovery|health [ARGS...]  (ARGS --help for each)"
    ;;
  *) exec "$cmd" "$@" ;;
esac
